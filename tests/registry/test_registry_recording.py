"""recorded_run: every way a command can end lands in the registry as the right status."""

from __future__ import annotations

import pytest

from prefine.errors import PrefineError
from prefine.registry import recorded_run


def start_kwargs(tmp_path, name="ko-mini"):
    return dict(
        name=name,
        kind="pretrain",
        config={"seed": 1},
        data_fingerprints={"corpus": "sha"},
        tokenizer_hash="tok",
        artifact_path=tmp_path / name,
    )


def test_normal_exit_completes_with_the_metrics_set(registry, tmp_path):
    with recorded_run(registry, **start_kwargs(tmp_path)) as run:
        assert registry.get(run.id).status == "running"
        run.set_metrics({"eval/loss": 2.0, "eval/mlm_accuracy": 0.3}, ("eval/loss", 2.0))
    finished = registry.get(run.id)
    assert (finished.status, finished.error) == ("completed", None)
    assert finished.metrics == {"eval/loss": 2.0, "eval/mlm_accuracy": 0.3}
    assert finished.key_metric == ("eval/loss", 2.0)
    assert finished.finished_at is not None


def test_handle_reports_the_suffixed_name(registry, tmp_path):
    with recorded_run(registry, **start_kwargs(tmp_path)):
        pass
    with recorded_run(registry, **start_kwargs(tmp_path)) as second:
        assert second.name == "ko-mini-2"


def test_exception_marks_failed_with_the_message_and_propagates(registry, tmp_path):
    with pytest.raises(PrefineError, match="corpus.txt is empty"):
        with recorded_run(registry, **start_kwargs(tmp_path)) as run:
            run.set_metrics({"train/loss": 7.5})
            raise PrefineError("corpus.txt is empty; give a file with text")
    failed = registry.get(run.id)
    assert failed.status == "failed"
    assert failed.error == "PrefineError: corpus.txt is empty; give a file with text"
    assert failed.metrics == {"train/loss": 7.5}  # what was reached before the failure is kept


def test_ctrl_c_marks_interrupted_and_propagates(registry, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with recorded_run(registry, **start_kwargs(tmp_path)) as run:
            raise KeyboardInterrupt
    assert registry.get(run.id).status == "interrupted"


@pytest.mark.parametrize("code, status", [(2, "failed"), ("bad config", "failed"), (0, "completed"), (None, "completed")])
def test_system_exit_status_follows_the_exit_code(registry, tmp_path, code, status):
    with pytest.raises(SystemExit):
        with recorded_run(registry, **start_kwargs(tmp_path)) as run:
            raise SystemExit(code)
    assert registry.get(run.id).status == status
