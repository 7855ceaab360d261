"""--deterministic: its settings reach PyTorch and the libraries, and repeated or resumed runs match bit for bit."""

from __future__ import annotations

import json
import os

import pytest
import torch

from prefine import determinism
from prefine.checkpoint import latest_checkpoint, load_weights
from prefine.training import TrainingInterrupted, train
from tests.training.test_loop import CPU, InterruptingTask, make_run


@pytest.fixture
def restore_torch_settings():
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    saved_env = {name: os.environ.get(name) for name in determinism.ENVIRONMENT}
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    for name, value in saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def test_the_flag_or_resuming_a_deterministic_run_prepares_the_environment_before_torch_loads(tmp_path):
    assert determinism.requested(["pretrain", "--deterministic"])
    assert not determinism.requested(["pretrain", "--out", "x"])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text(json.dumps({"training": {"deterministic": True}}))
    assert determinism.requested(["pretrain", "--resume", str(tmp_path / "run")])
    assert determinism.requested(["pretrain", f"--resume={tmp_path / 'run'}"])
    (tmp_path / "run" / "run.json").write_text(json.dumps({"training": {"deterministic": False}}))
    assert not determinism.requested(["pretrain", "--resume", str(tmp_path / "run")])


def test_training_with_deterministic_turns_on_deterministic_kernels_and_library_settings(
    pretraining_parts, tmp_path, restore_torch_settings, monkeypatch
):
    for name in determinism.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    torch.use_deterministic_algorithms(False)
    model, task, training = make_run(pretraining_parts, deterministic=True, max_steps=1)
    train(model, task, training, tmp_path / "run", {}, CPU)
    assert torch.are_deterministic_algorithms_enabled()
    assert all(os.environ[name] == value for name, value in determinism.ENVIRONMENT.items())


def test_deterministic_runs_at_two_threads_repeat_and_resume_bit_for_bit(pretraining_parts, tmp_path, restore_torch_settings):
    settings = {"deterministic": True, "num_threads": 2, "max_steps": 8}
    finals = []
    for name in ("first", "second"):
        model, task, training = make_run(pretraining_parts, **settings)
        train(model, task, training, tmp_path / name, {}, CPU)
        finals.append(load_weights(latest_checkpoint(tmp_path / name)))

    model, task, training = make_run(pretraining_parts, **settings)
    with pytest.raises(TrainingInterrupted):
        train(model, InterruptingTask(task, at_call=3), training, tmp_path / "resumed", {}, CPU)
    model, task, training = make_run(pretraining_parts, **settings)
    train(model, task, training, tmp_path / "resumed", {}, CPU, resume=True)
    finals.append(load_weights(latest_checkpoint(tmp_path / "resumed")))

    for other in finals[1:]:
        assert all(torch.equal(finals[0][key], other[key]) for key in finals[0])
