"""How many steps `prefine finetune` takes: --epochs, raised to --min-steps for small training sets; --max-steps wins."""

from __future__ import annotations

import json
from pathlib import Path

from prefine.cli import main
from tests.conftest import REVIEW_FILLER, REVIEW_NEGATIVE, REVIEW_POSITIVE, write_review_tsv, write_tiny_bert_run


def last_step(run_dir: Path) -> int:
    return max(json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines())


def test_a_small_training_set_gets_at_least_min_steps_and_max_steps_overrides_both(tmp_path, capsys):
    train = str(write_review_tsv(tmp_path / "train.tsv", 32, 1))
    dev = str(write_review_tsv(tmp_path / "dev.tsv", 16, 2))
    init = str(write_tiny_bert_run(tmp_path / "init", REVIEW_POSITIVE + REVIEW_NEGATIVE + REVIEW_FILLER, vocab_size=100))
    base = [
        "finetune",
        "--init",
        init,
        "--train",
        train,
        "--eval",
        dev,
        "--max-seq-length",
        "32",
        "--batch-size",
        "16",
        "--log-every",
        "1",
        "--num-threads",
        "1",
        "--no-progress",
        "--registry",
        str(tmp_path / "registry.sqlite"),
    ]

    # 32 examples in batches of 16: one epoch is 2 steps, which --min-steps raises to 7.
    assert main([*base, "--epochs", "1", "--min-steps", "7", "--out", str(tmp_path / "raised")]) == 0
    assert last_step(tmp_path / "raised") == 7
    assert "7 steps of 16 (3.5 epochs: at least --min-steps 7)" in capsys.readouterr().out
    # Four epochs are 8 steps, already more than the minimum.
    assert main([*base, "--epochs", "4", "--min-steps", "7", "--out", str(tmp_path / "epochs")]) == 0
    assert last_step(tmp_path / "epochs") == 8
    assert "8 steps of 16 at learning rate" in capsys.readouterr().out
    # An explicit --max-steps is exactly what runs.
    assert main([*base, "--max-steps", "3", "--min-steps", "7", "--out", str(tmp_path / "explicit")]) == 0
    assert last_step(tmp_path / "explicit") == 3


def test_a_step_count_that_cannot_train_is_refused_in_one_line_before_any_work(tmp_path, capsys):
    train = str(write_review_tsv(tmp_path / "train.tsv", 32, 1))
    init = str(write_tiny_bert_run(tmp_path / "init", REVIEW_POSITIVE + REVIEW_NEGATIVE + REVIEW_FILLER, vocab_size=100))
    for flags, expected in (
        (["--min-steps", "0"], "--min-steps 0 must be at least 1"),
        (["--epochs", "0"], "--epochs 0.0 must be positive"),
    ):
        out = tmp_path / f"run{flags[1]}"
        assert main(["finetune", "--init", init, "--train", train, "--out", str(out), "--no-progress", *flags]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1 and expected in captured.err, captured.err
        assert not out.exists()
