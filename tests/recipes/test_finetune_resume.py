"""`prefine finetune --resume`: an interrupted fine-tune continues bit-exactly, for every task.

A run is interrupted by Ctrl-C (SIGINT while the loop asks for a batch), resumed with
`--resume`, and compared with an uninterrupted run of the same command: same logged losses,
same final weights, same evaluation, one registry row.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import pytest
import torch

from prefine.checkpoint import latest_checkpoint, load_weights
from prefine.cli import main
from prefine.tasks.classification import ClassificationTask
from tests.conftest import REVIEW_FILLER, REVIEW_NEGATIVE, REVIEW_POSITIVE, write_review_tsv, write_tiny_bert_run


@pytest.fixture
def command(tmp_path) -> list[str]:
    train, dev = str(write_review_tsv(tmp_path / "train.tsv", 96, 1)), str(write_review_tsv(tmp_path / "dev.tsv", 32, 2))
    init = write_tiny_bert_run(tmp_path / "init", REVIEW_POSITIVE + REVIEW_NEGATIVE + REVIEW_FILLER, vocab_size=100)
    return [
        "finetune",
        "--init",
        str(init),
        "--train",
        train,
        "--eval",
        dev,
        "--epochs",
        "4",
        "--min-steps",
        "1",
        "--eval-every",
        "4",
        "--save-every",
        "3",
        "--max-seq-length",
        "32",
        "--batch-size",
        "16",
        "--log-every",
        "1",
        "--num-threads",
        "1",
        "--no-progress",
        "--seed",
        "3",
        "--registry",
        str(tmp_path / "registry.sqlite"),
    ]


def logged(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def interrupt_at_batch(monkeypatch, call: int) -> None:
    original = ClassificationTask.batch_at
    calls = {"count": 0}

    def batch_at(self, position, rank, world_size):
        calls["count"] += 1
        if calls["count"] == call:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, position, rank, world_size)

    monkeypatch.setattr(ClassificationTask, "batch_at", batch_at)


def test_interrupted_fine_tune_resumes_bit_exactly(tmp_path, command, monkeypatch, capsys):
    assert main([*command, "--out", str(tmp_path / "whole")]) == 0

    interrupt_at_batch(monkeypatch, 10)
    assert main([*command, "--out", str(tmp_path / "parts")]) == 130
    # The hint is the command to paste: this subcommand, resuming this run's folder.
    assert f"continue with: prefine finetune --resume {tmp_path / 'parts'}" in capsys.readouterr().err
    stopped_at = int(latest_checkpoint(tmp_path / "parts").name.removeprefix("step-"))
    assert 0 < stopped_at < 24
    monkeypatch.undo()

    assert main(["finetune", "--resume", str(tmp_path / "parts"), "--registry", str(tmp_path / "registry.sqlite")]) == 0
    whole, parts = logged(tmp_path / "whole"), logged(tmp_path / "parts")
    assert _losses(whole) == _losses(parts) and len(_losses(whole)) == 24
    final_whole, final_parts = load_weights(latest_checkpoint(tmp_path / "whole")), load_weights(latest_checkpoint(tmp_path / "parts"))
    assert all(torch.equal(final_whole[name], final_parts[name]) for name in final_whole)
    assert json.loads((tmp_path / "whole" / "eval_metrics.json").read_text()) == json.loads(
        (tmp_path / "parts" / "eval_metrics.json").read_text()
    )
    with sqlite3.connect(tmp_path / "registry.sqlite") as registry:
        statuses = registry.execute("SELECT name, status FROM runs WHERE kind = 'finetune' ORDER BY name").fetchall()
    assert statuses == [("parts", "completed"), ("whole", "completed")]


def _losses(lines: list[dict]) -> dict[int, float]:
    return {line["step"]: line["train/loss"] for line in lines if "train/loss" in line}


def test_resume_refuses_changed_settings_and_missing_runs(tmp_path, command, capsys):
    assert main(["finetune", "--resume", str(tmp_path / "nothing")]) == 2
    assert "nothing is not a prefine run" in capsys.readouterr().err
    assert main([*command, "--out", str(tmp_path / "run"), "--max-steps", "2"]) == 0
    assert main(["finetune", "--resume", str(tmp_path / "run"), "--learning-rate", "0.5"]) == 2
    assert "cannot change --learning-rate when resuming" in capsys.readouterr().err
    assert main([*command, "--out", str(tmp_path / "run")]) == 2
    assert "already holds a run; continue it with --resume" in capsys.readouterr().err
