"""The crash harness, short: a real pre-training (and fine-tuning) run SIGKILLed inside every save and registry write, resumed each time."""

from __future__ import annotations

from pathlib import Path

from scripts.crash_soak import CRASH_POINTS, HarnessConfig, run_harness
from tests.conftest import synthetic_documents, write_bert_text, write_review_tsv


def test_killed_and_resumed_run_equals_the_uninterrupted_one(tmp_path: Path):
    corpus = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(120))
    config = HarnessConfig(tmp_path / "harness", corpus, max_steps=12, save_every=3, eval_every=4, log_every=2, keep_last=2)
    report = run_harness(config, crash_points=list(CRASH_POINTS))
    assert report.failures == []
    # Every crash point was reached and killed the run there (none finished first), and it still recovered.
    assert report.kills == len(CRASH_POINTS), report.summary()
    assert not any(site.startswith("not reached") for site in report.kill_sites)
    assert report.checks_passed >= 30


def test_killed_and_resumed_fine_tune_equals_the_uninterrupted_one(tmp_path: Path):
    corpus = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(60))
    config = HarnessConfig(
        tmp_path / "harness",
        corpus,
        max_steps=12,
        save_every=3,
        eval_every=4,
        log_every=2,
        keep_last=2,
        stage="finetune",
        train_data=write_review_tsv(tmp_path / "train.tsv", 96, 1),
        eval_data=write_review_tsv(tmp_path / "dev.tsv", 24, 2),
    )
    points = [("checkpoint-written", 1), ("checkpoint-pointed", 2), ("registry-write", 2)]
    report = run_harness(config, crash_points=points)
    assert report.failures == []
    assert report.kills == len(points), report.summary()
    assert report.checks_passed >= 15
