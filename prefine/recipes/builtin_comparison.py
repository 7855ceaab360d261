"""Pre-trained weights against random ones on the data prefine ships: one recipe for every task that declares such a comparison.

A task declares its comparison (`FinetuneTask.builtin_comparison`: what data to write, the data
config, the metric and how to name it); this recipe runs any of them the same way, after the
quickstart has pre-trained its tiny BERT. It writes the data under the quickstart's folder and
fine-tunes the same steps on the same examples from the pre-trained run and from random weights
of the same shape. A seeded comparison is `prefine compare` (every fraction and seed, a dev split
of the training data choosing checkpoints, the test data reporting once) and returns its rows; an
unseeded one fine-tunes once per start, scores the test data and returns both scores with a few
predictions beside their references. Nothing here knows which task it runs.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefine.recipes.compare import run_comparison
from prefine.recipes.finetune import FINETUNE_TRAINING_DEFAULTS, FinetuneRunConfig, run_finetune
from prefine.tasks.interface import BuiltinComparison, FinetuneTask
from prefine.training import TrainingConfig

STARTS = ("pretrained", "scratch")


@dataclass
class ComparisonSettings:
    """What the quickstart decides for every section: the budget per model, seeds and machine settings."""

    steps: int
    seed: int
    seeds: int
    num_threads: int = 0
    progress: bool = True
    max_time: str = ""  # a wall-clock cap per fine-tune ('' for none)


def _training(settings: ComparisonSettings, eval_every: int) -> TrainingConfig:
    return dataclasses.replace(
        FINETUNE_TRAINING_DEFAULTS,
        max_steps=settings.steps,
        max_time=settings.max_time,
        batch_size=32,
        seed=settings.seed,
        num_threads=settings.num_threads,
        progress=settings.progress,
        eval_at_epoch_end=False,
        eval_every=eval_every,
    )


def run_builtin_comparison(
    task: FinetuneTask, comparison: BuiltinComparison, pretrain_dir: Path, out: Path, settings: ComparisonSettings
) -> list[dict] | dict:
    """Write `comparison`'s data under `out`, fine-tune `task` from `pretrain_dir` and from scratch, and print the outcome."""
    train, test, summary = comparison.write_data(out / comparison.data_folder)
    print(summary)
    if comparison.seeded:
        return _seeded(task, comparison, pretrain_dir, out, settings, train, test)
    return _once_per_start(task, comparison, pretrain_dir, out, settings, train, test)


def _seeded(
    task: FinetuneTask, comparison: BuiltinComparison, pretrain_dir: Path, out: Path, settings: ComparisonSettings, train: Path, test: Path
) -> list[dict]:
    # --test, not --eval: the test data only reports; a dev split of the training data chooses checkpoints.
    run = FinetuneRunConfig(
        task=task.name,
        init=str(pretrain_dir),
        train=str(train),
        test=str(test),
        out=str(out / comparison.run_folder),
        registry=str(out / "registry.sqlite"),
    )
    training = _training(settings, eval_every=max(settings.steps // 3, 1))
    rows = run_comparison(task, run, comparison.data, training, list(comparison.fractions), explicit_steps=True, seeds=settings.seeds)
    if not comparison.main:  # the main section's table is read by the quickstart's own interpretation instead
        row = rows[-1]
        interval = (
            ""
            if row["gain_low"] is None
            else f", 95% interval {100 * row['gain_low']:+.1f} to {100 * row['gain_high']:+.1f}: {row['verdict']}"
        )
        print(_summary_line(comparison, row["pretrained"], row["scratch"], row["gain"], interval))
    return rows


def _once_per_start(
    task: FinetuneTask, comparison: BuiltinComparison, pretrain_dir: Path, out: Path, settings: ComparisonSettings, train: Path, test: Path
) -> dict[str, Any]:
    training = _training(settings, eval_every=settings.steps)
    scores: dict[str, float] = {}
    predictions: dict[str, list[dict]] = {}
    for start in STARTS:
        run_dir = out / f"{comparison.run_folder}-{start}"
        shutil.rmtree(run_dir, ignore_errors=True)
        run = FinetuneRunConfig(
            task=task.name,
            init=str(pretrain_dir),
            train=str(train),
            eval=str(test),
            out=str(run_dir),
            registry=str(out / "registry.sqlite"),
            from_scratch=start == "scratch",
        )
        print(f"\n== {task.name}, {start}")
        outcome = run_finetune(task, run, comparison.data, training, explicit_steps=True)
        scores[start] = outcome.metrics[comparison.metric]
        if comparison.examples_shown:
            predictions[start] = json.loads((run_dir / "predictions.json").read_text(encoding="utf-8"))
    # One fine-tune per start (decoding the test set is this section's cost): no interval, so no verdict either.
    gain = scores["pretrained"] - scores["scratch"]
    print("\n" + _summary_line(comparison, scores["pretrained"], scores["scratch"], gain, "; one seed: no interval, no verdict"))
    examples = []
    if comparison.examples_shown:
        for pretrained, scratch in list(zip(predictions["pretrained"], predictions["scratch"]))[: comparison.examples_shown]:
            examples.append({"reference": pretrained["reference"], "pretrained": pretrained["generated"], "scratch": scratch["generated"]})
            print(f"\nreference:   {pretrained['reference']}\npre-trained: {pretrained['generated']}\nfrom scratch: {scratch['generated']}")
    return {"pretrained": scores["pretrained"], "scratch": scores["scratch"], "examples": examples}


def _summary_line(comparison: BuiltinComparison, pretrained: float, scratch: float, gain: float, interval: str) -> str:
    digits = comparison.score_digits
    return (
        f"{comparison.metric_label}: pre-trained {pretrained:.{digits}f}, from scratch {scratch:.{digits}f} "
        f"({gain * comparison.gain_scale:+.1f}{comparison.gain_unit}{interval})"
    )
