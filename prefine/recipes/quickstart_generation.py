"""The quickstart's generation section: write a docstring's summary line, pre-trained start against random.

After the quickstart has pre-trained its tiny BERT on the built-in corpus, this fine-tunes two
encoder-decoders on the built-in generation task (docstring body -> its one-line summary, see
`prefine.corpus.builtin_generation`): one warm-started from the pre-trained run, one from random
weights of the same shape, for the same steps on the same pairs. It prints ROUGE-L of both on the
held-out modules and three held-out examples side by side with their references.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from prefine.corpus.builtin_generation import write_builtin_generation_task

MAX_TRAIN_PAIRS = 1200  # enough for a tiny model's minute of fine-tuning; bounded so the section's time is too
MAX_TEST_PAIRS = 60
EXAMPLES_SHOWN = 3


def run_generation_comparison(pretrain_dir: Path, out: Path, finetune_steps: int, seed: int, num_threads: int, progress: bool) -> dict:
    """Fine-tune the generation task from `pretrain_dir` and from scratch; returns {"pretrained": rougeL, "scratch": rougeL, "examples": [...]}."""
    from prefine.recipes.finetune import FINETUNE_TRAINING_DEFAULTS, FinetuneRunConfig, run_finetune
    from prefine.tasks.generation import GenerationDataConfig
    from prefine.tasks.interface import get_task

    task_dir = out / "generation-task"
    train_path, test_path = write_builtin_generation_task(task_dir, MAX_TRAIN_PAIRS, MAX_TEST_PAIRS)
    train_count = sum(1 for _ in open(train_path, encoding="utf-8"))
    test_count = sum(1 for _ in open(test_path, encoding="utf-8"))
    print(
        f"{train_count} training / {test_count} test docstrings (test modules unseen in fine-tuning, test docstrings unseen in pre-training)"
    )
    data = GenerationDataConfig(source_column="document", target_column="summary", max_source_length=128, max_target_length=32)
    training = dataclasses.replace(
        FINETUNE_TRAINING_DEFAULTS,
        max_steps=finetune_steps,
        batch_size=32,
        seed=seed,
        num_threads=num_threads,
        progress=progress,
        eval_at_epoch_end=False,
        eval_every=finetune_steps,
    )
    task = get_task("generation")
    scores: dict = {}
    for start in ("pretrained", "scratch"):
        run_dir = out / f"generation-{start}"
        shutil.rmtree(run_dir, ignore_errors=True)
        run = FinetuneRunConfig(
            task="generation",
            init=str(pretrain_dir),
            train=str(train_path),
            eval=str(test_path),
            out=str(run_dir),
            registry=str(out / "registry.sqlite"),
            from_scratch=start == "scratch",
        )
        print(f"\n== generation, {start}")
        outcome = run_finetune(task, run, data, training, explicit_steps=True)
        scores[start] = outcome.metrics["rougeL"]
        scores[f"{start}_predictions"] = json.loads((run_dir / "predictions.json").read_text(encoding="utf-8"))
    print(
        f"\nROUGE-L on held-out docstrings: pre-trained {scores['pretrained']:.1f}, from scratch {scores['scratch']:.1f} "
        f"({scores['pretrained'] - scores['scratch']:+.1f})"
    )
    examples = []
    for pretrained, scratch in list(zip(scores["pretrained_predictions"], scores["scratch_predictions"]))[:EXAMPLES_SHOWN]:
        examples.append({"reference": pretrained["reference"], "pretrained": pretrained["generated"], "scratch": scratch["generated"]})
        print(f"\nreference:   {pretrained['reference']}\npre-trained: {pretrained['generated']}\nfrom scratch: {scratch['generated']}")
    return {"pretrained": scores["pretrained"], "scratch": scores["scratch"], "examples": examples}
