"""`--report-to tensorboard`: the loop's metrics.jsonl records mirrored into TensorBoard event files in the run folder."""

from __future__ import annotations

import importlib.util
import json

import pytest

from prefine.cli import build_parser
from prefine.errors import PrefineError
from prefine.training import TrainingConfig, train
from tests.training.test_loop import CPU, make_run

pytest.importorskip("tensorboard", reason="the tensorboard extra is part of the test extra")


def scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the run folder's event files, as TensorBoard itself reads them (purged steps dropped)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def logged(run_dir, key: str) -> list[tuple[int, float]]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(line["step"], line[key]) for line in lines if key in line]


def test_event_files_hold_the_same_curves_as_metrics_jsonl(pretraining_parts, tmp_path):  # noqa: F811
    model, task, training = make_run(pretraining_parts, max_steps=6, eval_every=3, report_to="tensorboard")
    train(model, task, training, tmp_path / "run", {}, CPU)
    assert list((tmp_path / "run").glob("events.out.tfevents.*"))
    curves = scalars(tmp_path / "run")
    for key in ("train/loss", "train/lr", "train/tokens_per_second", "eval/mlm_accuracy"):
        expected = logged(tmp_path / "run", key)
        assert expected, key
        assert [step for step, _ in curves[key]] == [step for step, _ in expected]
        assert [value for _, value in curves[key]] == pytest.approx([value for _, value in expected], rel=1e-6)


def test_a_resumed_run_replaces_the_steps_logged_after_its_checkpoint(pretraining_parts, tmp_path):  # noqa: F811
    import shutil

    run = tmp_path / "run"
    model, task, training = make_run(pretraining_parts, max_steps=6, save_every=2, report_to="tensorboard")
    train(model, task, training, run, {}, CPU)
    # As if the process died after logging step 6 but before saving it: the run resumes from step 4.
    shutil.rmtree(run / "checkpoints" / "step-00000006")
    (run / "checkpoints" / "latest").write_text("step-00000004\n")
    model, task, training = make_run(pretraining_parts, max_steps=8, save_every=2, report_to="tensorboard")
    train(model, task, training, run, {}, CPU, resume=True)
    curve = scalars(run)["train/loss"]
    assert [step for step, _ in curve] == list(range(1, 9))
    assert [value for _, value in curve] == pytest.approx([value for _, value in logged(run, "train/loss")], rel=1e-6)


def test_nothing_is_written_unless_asked(pretraining_parts, tmp_path):  # noqa: F811
    model, task, training = make_run(pretraining_parts, max_steps=2)
    train(model, task, training, tmp_path / "run", {}, CPU)
    assert not list((tmp_path / "run").glob("events.out.tfevents.*"))


def test_a_missing_tensorboard_package_names_the_extra(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "tensorboard" else real_find_spec(name, *args))
    with pytest.raises(PrefineError, match=r"pip install 'prefine\[tensorboard\]'"):
        TrainingConfig(report_to="tensorboard")


@pytest.mark.parametrize("command", ["pretrain", "finetune", "compare"])
def test_every_training_command_takes_report_to(command):
    subparsers = next(action for action in build_parser()._actions if action.dest == "command")
    help_text = subparsers.choices[command].format_help()
    assert "--report-to" in help_text and "tensorboard" in help_text
