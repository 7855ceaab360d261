"""Shared fixtures: an empty registry in a temp folder, and a small lineage tree recorded in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefine.registry import RunRecord, RunRegistry


@pytest.fixture(autouse=True)
def no_registry_env(monkeypatch):
    # A developer's own PREFINE_REGISTRY must never leak into (or be written by) the tests.
    monkeypatch.delenv("PREFINE_REGISTRY", raising=False)


@pytest.fixture
def registry(tmp_path) -> RunRegistry:
    with RunRegistry(tmp_path / "runs" / "registry.sqlite") as opened:
        yield opened


@pytest.fixture
def metrics_log():
    """`metrics_log(run_dir, records)`: write a metrics.jsonl the way training does."""
    return write_metrics_log


def write_metrics_log(run_dir: Path, records: list[dict]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


def record_run(registry: RunRegistry, name: str, kind: str, parent: RunRecord | None, config: dict | None = None) -> RunRecord:
    artifact = registry.path.parent / name
    artifact.mkdir(parents=True, exist_ok=True)
    return registry.start_run(
        name=name,
        kind=kind,
        parent_id=parent.id if parent else None,
        config=config or {"kind": kind},
        data_fingerprints={"train": f"sha256:{name}"},
        tokenizer_hash="tok-1",
        artifact_path=artifact,
    )


@pytest.fixture
def make_run():
    """`make_run(registry, name, kind, parent, config=None)`: record a run with a real artifact folder."""
    return record_run


@pytest.fixture
def lineage_tree(registry) -> dict[str, RunRecord]:
    """import minilm -> pretrain ko-mini -> {finetune ko-mini-sentiment -> ko-mini-sentiment-v2, ko-mini-qa}."""
    minilm = record_run(registry, "minilm", "import", None)
    registry.finish_run(minilm.id, "completed")
    ko_mini = record_run(
        registry, "ko-mini", "pretrain", minilm, {"model": {"hidden_size": 64, "layers": 2}, "optim": {"lr": 1e-4}, "seed": 1}
    )
    write_metrics_log(
        ko_mini.artifact_path,
        [
            {"step": 10, "train/loss": 5.0, "train/lr": 1e-4},
            {"step": 10, "eval/loss": 4.5, "eval/mlm_accuracy": 0.1},
            {"step": 20, "train/loss": 3.0, "train/lr": 5e-5},
            {"step": 20, "eval/loss": 2.1, "eval/mlm_accuracy": 0.31},
        ],
    )
    registry.finish_run(ko_mini.id, "completed", {"eval/loss": 2.1, "eval/mlm_accuracy": 0.31}, ("eval/loss", 2.1))
    sentiment = record_run(
        registry,
        "ko-mini-sentiment",
        "finetune",
        ko_mini,
        {"model": {"hidden_size": 64, "layers": 2}, "optim": {"lr": 3e-5}, "seed": 1, "task": "sentiment"},
    )
    write_metrics_log(
        sentiment.artifact_path,
        [
            {"step": 5, "train/loss": 0.9},
            {"step": 5, "eval/loss": 0.8, "eval/accuracy": 0.7},
            {"step": 10, "eval/loss": 0.5, "eval/accuracy": 0.91},
        ],
    )
    registry.finish_run(sentiment.id, "completed", {"eval/loss": 0.5, "eval/accuracy": 0.91}, ("eval/accuracy", 0.91))
    qa = record_run(registry, "ko-mini-qa", "finetune", ko_mini)
    sentiment_v2 = record_run(registry, "ko-mini-sentiment-v2", "finetune", sentiment)
    registry.finish_run(sentiment_v2.id, "failed", error="ValueError: unknown label 'neutral'")
    return {run.name: registry.get(run.id) for run in (minilm, ko_mini, sentiment, qa, sentiment_v2)}
