"""Tiny runs of every built-in kind for the `prefine serve` tests: fill-mask, classification, QA.

The pre-training run is written with the checkpoint API (as `prefine pretrain` leaves it); the
fine-tuned runs come from the real `prefine finetune` (a few steps: the tests check that the
server answers what the run's own predictor answers, not that the model is good) and are
recorded in a registry, so they can be addressed by name and listed on /runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from pathlib import Path

import pytest
import torch

from prefine.checkpoint import save_checkpoint, write_run
from prefine.cli import main
from prefine.model import BertConfig, BertForPreTraining
from prefine.registry import RunRegistry
from prefine.tokenizer import TokenizerConfig, save_tokenizer, tokenizer_fingerprint, train_tokenizer

GOOD = ["great", "good", "lovely"]
BAD = ["bad", "awful", "boring"]
PLACES = ["house", "garden", "road"]
TIMES = ["today", "at night", "once again"]
COLORS = ["red", "blue", "green", "yellow"]
THINGS = ["apple", "sky", "car", "ball"]
TRAINING = ["--max-steps", "3", "--batch-size", "8", "--num-threads", "1", "--no-progress", "--seed", "0"]


def review(rng: random.Random) -> tuple[str, str]:
    good = rng.random() < 0.5
    return f"the cat sees a {rng.choice(GOOD if good else BAD)} {rng.choice(PLACES)} {rng.choice(TIMES)}", "pos" if good else "neg"


def squad(count: int, seed: int) -> dict:
    rng = random.Random(seed)
    paragraphs = []
    for number in range(count):
        thing, color = rng.choice(THINGS), rng.choice(COLORS)
        context = f"It was a quiet day. The {thing} is {color}."
        paragraphs.append(
            {
                "context": context,
                "qas": [
                    {
                        "id": f"q{number}",
                        "question": f"What color is the {thing}?",
                        "answers": [{"text": color, "answer_start": context.index(color, context.index(thing))}],
                    }
                ],
            }
        )
    return {"version": "1.1", "data": [{"title": "colors", "paragraphs": paragraphs}]}


@dataclasses.dataclass
class ServedRuns:
    root: Path
    registry: Path
    pretrain: Path
    sentiment: Path
    qa: Path


@pytest.fixture(scope="session")
def served_runs(tmp_path_factory) -> ServedRuns:
    root = tmp_path_factory.mktemp("serve-runs")
    rng = random.Random(0)
    reviews = [review(rng) for _ in range(48)]
    (root / "train.tsv").write_text("document\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in reviews), encoding="utf-8")
    questions = squad(24, seed=1)
    (root / "train.json").write_text(json.dumps(questions), encoding="utf-8")

    texts = [text for text, _ in reviews] + [p["context"] + " " + p["qas"][0]["question"] for p in questions["data"][0]["paragraphs"]]
    tokenizer = train_tokenizer(texts, TokenizerConfig(vocab_size=200, min_frequency=1), show_progress=False)
    pretrain = root / "tiny-pre"
    save_tokenizer(tokenizer, pretrain / "tokenizer")
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    model = BertForPreTraining(config)
    checkpoint_config = {
        **dataclasses.asdict(config),
        "model_type": "bert",
        "architectures": ["BertForPreTraining"],
        "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
    }
    write_run(pretrain, {"kind": "pretrain", "model": dataclasses.asdict(config)})
    save_checkpoint(pretrain, 1, model.state_dict(), checkpoint_config, trainer_state=None, keep_last=1)

    registry = root / "registry.sqlite"
    # Recorded as `prefine pretrain` would, with a short learning curve, so the fine-tuned runs
    # get it as their parent and /runs has a lineage and a curve to show.
    (pretrain / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": step, "train/loss": 6.0 - step, "train/lr": 1e-3}) + "\n" for step in (1, 2, 3))
        + json.dumps({"step": 3, "eval/mlm_accuracy": 0.25})
        + "\n",
        encoding="utf-8",
    )
    with RunRegistry(registry) as store:
        record = store.start_run(
            name="tiny-pre",
            kind="pretrain",
            config={"model": dataclasses.asdict(config)},
            data_fingerprints=None,
            tokenizer_hash=None,
            artifact_path=pretrain,
        )
        store.finish_run(record.id, "completed", {"eval/mlm_accuracy": 0.25}, ("eval/mlm_accuracy", 0.25))
    assert (
        main(
            [
                "finetune",
                "--init",
                str(pretrain),
                "--train",
                str(root / "train.tsv"),
                "--out",
                str(root / "sentiment"),
                "--text-column",
                "document",
                "--label-column",
                "label",
                "--max-seq-length",
                "32",
                "--eval",
                str(root / "train.tsv"),
                "--registry",
                str(registry),
                *TRAINING,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "finetune",
                "--task",
                "qa",
                "--init",
                str(pretrain),
                "--train",
                str(root / "train.json"),
                "--out",
                str(root / "colors"),
                "--max-length",
                "64",
                "--doc-stride",
                "32",
                "--max-query-length",
                "16",
                "--registry",
                str(registry),
                *TRAINING,
            ]
        )
        == 0
    )
    return ServedRuns(root, registry, pretrain, root / "sentiment", root / "colors")


class RunningServer:
    """A real `prefine serve` process on a free port; `url` is where it listens."""

    def __init__(self, *arguments: str):
        import re
        import subprocess
        import sys
        import threading

        repository = Path(__file__).resolve().parents[2]
        environment = {**os.environ, "PYTHONPATH": str(repository) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "prefine", "serve", "--port", "0", "--num-threads", "1", *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=environment,
            cwd=repository,
        )
        self.lines: list[str] = []
        self.url = ""
        started = threading.Event()

        def read_output() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.lines.append(line)
                found = re.search(r" on (http://\S+)", line)
                if found and not self.url:
                    self.url = found.group(1)
                    started.set()
            started.set()

        self.reader = threading.Thread(target=read_output, daemon=True)
        self.reader.start()
        started.wait(timeout=180)
        if not self.url:
            self.stop()
            raise AssertionError("prefine serve did not start:\n" + "".join(self.lines))

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, timeout: float = 60) -> int:
        import signal
        import subprocess

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.reader.join(timeout=10)
        return code
