"""The shared training loop: exact resume after Ctrl-C, schedules, accumulation, best checkpoint."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from prefine.checkpoint import latest_checkpoint, load_trainer_state
from prefine.errors import PrefineError
from prefine.model import BertForPreTraining, preset_config
from prefine.objectives.masked_lm import PretrainingTask
from prefine.pretraining_data import PretrainingBatches, PretrainingDataConfig
from prefine.training import DistributedContext, TrainingConfig, TrainingInterrupted, train
from prefine.training.optim import learning_rate_multiplier

CPU = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def make_run(parts, model_overrides=None, **training_overrides):
    tokenizer, shards = parts
    data = PretrainingDataConfig(max_seq_length=32)
    training = TrainingConfig(
        **{
            "max_steps": 10,
            "batch_size": 8,
            "learning_rate": 1e-3,
            "log_every": 1,
            "eval_every": 0,
            "save_every": 0,
            "progress": False,
            "seed": 7,
            **training_overrides,
        }
    )
    micro_batch = training.batch_size // training.gradient_accumulation_steps
    batches = PretrainingBatches.from_tokenizer(shards, tokenizer, data, seed=7, global_batch_size=micro_batch)
    torch.manual_seed(7)
    config = preset_config(
        "tiny",
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        max_position_embeddings=64,
        **(model_overrides or {}),
    )
    model = BertForPreTraining(config)  # dropout stays on (0.1): resume must restore its RNG too
    task = PretrainingTask(batches, batches.eval_batches(8), torch.device("cpu"))
    return model, task, training


def train_losses(run_dir: Path) -> dict[int, float]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {line["step"]: line["train/loss"] for line in lines if "train/loss" in line}


class InterruptingTask:
    """Sends this process SIGINT (as Ctrl-C would) when asked for the batch of a given step."""

    def __init__(self, task, at_call: int):
        self.task, self.at_call, self.calls = task, at_call, 0

    def __getattr__(self, name):
        return getattr(self.task, name)

    def batch_at(self, position, rank, world_size):
        self.calls += 1
        if self.calls == self.at_call:
            os.kill(os.getpid(), signal.SIGINT)
        return self.task.batch_at(position, rank, world_size)


def test_resume_after_ctrl_c_equals_uninterrupted_training(pretraining_parts, tmp_path):
    model, task, training = make_run(pretraining_parts)
    train(model, task, training, tmp_path / "straight", {}, CPU)
    expected = train_losses(tmp_path / "straight")

    model, task, training = make_run(pretraining_parts)
    with pytest.raises(TrainingInterrupted) as interrupted:
        train(model, InterruptingTask(task, at_call=4), training, tmp_path / "resumed", {}, CPU)
    assert interrupted.value.step == 4  # the step in flight finished, then the loop saved and stopped
    assert latest_checkpoint(tmp_path / "resumed").name == "step-00000004"

    model, task, training = make_run(pretraining_parts)
    train(model, task, training, tmp_path / "resumed", {}, CPU, resume=True)
    resumed = train_losses(tmp_path / "resumed")
    assert sorted(resumed) == list(range(1, 11))
    assert resumed == expected  # bit-identical, not approximately equal


def test_resume_with_a_growing_batch_equals_uninterrupted_training(pretraining_parts, tmp_path):
    ramp = {"batch_size": 8, "gradient_accumulation_steps": 4, "batch_ramp": 0.6}
    model, task, training = make_run(pretraining_parts, **ramp)
    train(model, task, training, tmp_path / "straight", {}, CPU)
    expected = train_losses(tmp_path / "straight")
    logged = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    # 1, 2, 2, 3, 3, 4, ... micro-batches of 2: the batch grows over the first 60% of the 10 steps.
    assert [line["train/batch_size"] for line in logged if "train/batch_size" in line] == [2, 4, 4, 6, 6, 8, 8, 8, 8, 8]

    model, task, training = make_run(pretraining_parts, **ramp)
    with pytest.raises(TrainingInterrupted) as interrupted:
        train(model, InterruptingTask(task, at_call=6), training, tmp_path / "resumed", {}, CPU)  # inside the 4th step
    assert interrupted.value.step == 4
    # The data position counts the micro-batches really read: 1 + 2 + 2 + 3 of 2 examples.
    assert load_trainer_state(latest_checkpoint(tmp_path / "resumed"))["position"]["offset"] == 16

    model, task, training = make_run(pretraining_parts, **ramp)
    train(model, task, training, tmp_path / "resumed", {}, CPU, resume=True)
    assert train_losses(tmp_path / "resumed") == expected


def test_learning_rate_schedule_warms_up_then_decays():
    config = TrainingConfig(max_steps=100, warmup_steps=10, schedule="linear")
    assert learning_rate_multiplier(0, config) < learning_rate_multiplier(5, config) < learning_rate_multiplier(10, config) == 1.0
    assert learning_rate_multiplier(55, config) == pytest.approx(0.5)
    assert learning_rate_multiplier(100, config) == 0.0
    cosine = TrainingConfig(max_steps=100, warmup_steps=0, schedule="cosine")
    assert learning_rate_multiplier(50, cosine) == pytest.approx(0.5)


def test_no_weight_decay_on_biases_and_layer_norm(pretraining_parts):
    from prefine.training.optim import build_optimizer

    model, _, training = make_run(pretraining_parts)
    decayed, undecayed = build_optimizer(model, training, torch.device("cpu")).param_groups
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    assert all("LayerNorm" not in names[id(p)] and not names[id(p)].endswith("bias") for p in decayed["params"])
    assert any("LayerNorm" in names[id(p)] for p in undecayed["params"]) and undecayed["weight_decay"] == 0.0


def test_bad_batch_configuration_is_a_clear_error():
    with pytest.raises(PrefineError, match="not divisible"):
        TrainingConfig(batch_size=10, gradient_accumulation_steps=3)
    with pytest.raises(PrefineError, match="nothing to grow"):
        TrainingConfig(batch_size=32, batch_ramp=0.5)
    with pytest.raises(PrefineError, match="between 0 and 1"):
        TrainingConfig(batch_size=32, gradient_accumulation_steps=4, batch_ramp=1.5)


def test_resume_without_checkpoint_is_a_clear_error(pretraining_parts, tmp_path):
    model, task, training = make_run(pretraining_parts)
    with pytest.raises(PrefineError, match="no complete checkpoint"):
        train(model, task, training, tmp_path / "empty", {}, CPU, resume=True)


def test_a_run_folder_being_trained_cannot_be_trained_by_a_second_process(pretraining_parts, tmp_path):
    from prefine.checkpoint import lock_run_dir

    (tmp_path / "run").mkdir()
    held = lock_run_dir(tmp_path / "run")  # as the first, still running, process holds it
    model, task, training = make_run(pretraining_parts, max_steps=1)
    with pytest.raises(PrefineError, match=f"is being trained by pid {os.getpid()}; wait for it to finish or stop it"):
        train(model, task, training, tmp_path / "run", {}, CPU)
    assert not (tmp_path / "run" / "checkpoints").exists()
    held.close()
    train(model, task, training, tmp_path / "run", {}, CPU)  # released: now it trains
    assert latest_checkpoint(tmp_path / "run").name == "step-00000001"
