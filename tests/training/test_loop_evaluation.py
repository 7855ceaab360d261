"""The loop's evaluation duties and accumulation, on a toy regression task small enough to reason about.

Evaluation at epoch ends, early stopping, the best checkpoint by a declared direction (a metric
that must go down and is not called "loss"), and gradient accumulation giving the same update
as one big batch when the loss is a mean over equally sized micro-batches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from prefine.checkpoint import read_pointer
from prefine.errors import PrefineError
from prefine.tasks.batching import SeekableBatches
from prefine.training import DistributedContext, TrainingConfig, train

CPU = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


class PointBatches(SeekableBatches):
    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, seed: int = 0):
        super().__init__(len(inputs), batch_size, seed)
        self.inputs, self.targets = inputs, targets

    def collate(self, indices: np.ndarray) -> dict[str, Any]:
        index = torch.from_numpy(np.asarray(indices, dtype=np.int64))
        return {"x": self.inputs[index], "y": self.targets[index], "num_real_tokens": len(indices)}


class LinearTask:
    """y = x @ w; evaluations either score held-out points or replay a scripted sequence of values."""

    def __init__(self, batches: PointBatches, scripted: list[float] | None = None, metric_directions: dict[str, str] | None = None):
        self.batches = batches
        self.scripted = list(scripted or [])
        self.evaluated_at_calls = 0
        if metric_directions is not None:
            self.metric_directions = metric_directions

    def start_position(self):
        return self.batches.start_position()

    def batch_at(self, position, rank, world_size):
        return self.batches.batch_at(position, rank, world_size)

    def loss(self, model: nn.Module, batch: dict[str, Any]):
        loss = ((model(batch["x"]).squeeze(-1) - batch["y"]) ** 2).mean()
        return loss, {"loss": float(loss.detach())}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        self.evaluated_at_calls += 1
        if self.scripted:
            return {"error": self.scripted.pop(0)}
        with torch.no_grad():
            return {"error": float(((model(self.batches.inputs).squeeze(-1) - self.batches.targets) ** 2).mean())}


def points(count: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(count, 4, generator=generator)
    return inputs, inputs @ torch.tensor([1.0, -2.0, 0.5, 3.0])


def config(**overrides) -> TrainingConfig:
    values = dict(
        max_steps=12,
        batch_size=8,
        learning_rate=0.05,
        warmup_steps=0,
        eval_every=0,
        save_every=0,
        keep_last=1,
        log_every=1,
        progress=False,
        seed=0,
        weight_decay=0.0,
    )
    return TrainingConfig(**{**values, **overrides})


def linear_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(4, 1)


def eval_steps(run_dir: Path) -> list[int]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [line["step"] for line in lines if "eval/error" in line]


def test_evaluation_at_every_epoch_end(tmp_path):
    # 40 points in batches of 8: an epoch ends every 5 steps.
    task = LinearTask(PointBatches(*points(), batch_size=8), metric_directions={"error": "min"})
    train(linear_model(), task, config(eval_at_epoch_end=True), tmp_path / "run", {}, CPU)
    assert eval_steps(tmp_path / "run") == [5, 10, 12]


def test_early_stopping_after_patience_evaluations_without_improvement(tmp_path):
    scripted = [0.9, 0.5, 0.6, 0.55, 0.4]  # best at the 2nd evaluation, then two without improvement
    task = LinearTask(PointBatches(*points(), batch_size=8), scripted, {"error": "min"})
    result = train(
        linear_model(), task, config(max_steps=20, eval_every=2, best_metric="error", early_stopping_patience=2), tmp_path / "run", {}, CPU
    )
    assert result.stopped_early and result.step == 8
    assert eval_steps(tmp_path / "run") == [2, 4, 6, 8]
    assert read_pointer(tmp_path / "run", "best").name == "step-00000004"


@pytest.mark.parametrize("direction, best_step", [("min", 4), ("max", 6)])
def test_best_checkpoint_follows_the_declared_direction_not_the_name(tmp_path, direction, best_step):
    scripted = [0.9, 0.5, 2.0, 0.7]  # "error" is not called loss; only the direction says which is best
    task = LinearTask(PointBatches(*points(), batch_size=8), scripted)
    train(linear_model(), task, config(max_steps=8, eval_every=2, best_metric=f"error:{direction}"), tmp_path / direction, {}, CPU)
    assert read_pointer(tmp_path / direction, "best").name == f"step-{best_step:08d}"


def test_a_metric_without_a_direction_is_refused_before_training(tmp_path):
    task = LinearTask(PointBatches(*points(), batch_size=8))
    with pytest.raises(PrefineError, match="error:max or error:min"):
        train(linear_model(), task, config(best_metric="error"), tmp_path / "run", {}, CPU)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_accumulation_equals_one_big_batch(tmp_path):
    inputs, targets = points(64)
    weights = []
    for accumulation in (1, 4):
        model = linear_model()
        task = LinearTask(PointBatches(inputs, targets, batch_size=32 // accumulation))
        train(
            model,
            task,
            config(batch_size=32, gradient_accumulation_steps=accumulation, max_steps=6, max_grad_norm=0.0),
            tmp_path / f"acc{accumulation}",
            {},
            CPU,
        )
        weights.append(torch.cat([parameter.detach().flatten() for parameter in model.parameters()]))
    assert torch.allclose(weights[0], weights[1], atol=1e-6)
    initial = torch.cat([parameter.detach().flatten() for parameter in linear_model().parameters()])
    assert (weights[0] - initial).abs().max() > 0.1  # the updates were real


def test_the_best_checkpoint_survives_pruning_after_a_resume(tmp_path):
    run_dir = tmp_path / "run"
    first = LinearTask(PointBatches(*points(), batch_size=8), [0.2, 0.9], {"error": "min"})  # best at step 2
    train(linear_model(), first, config(max_steps=4, eval_every=2, save_every=2, keep_last=1, best_metric="error"), run_dir, {}, CPU)
    assert read_pointer(run_dir, "best").name == "step-00000002"
    # As if killed after saving step 2 but before `best` pointed at it: the checkpoint's state knows.
    (run_dir / "checkpoints" / "best").unlink()
    # The resumed process has saved nothing yet itself; its later saves must still keep step 2.
    later = LinearTask(PointBatches(*points(), batch_size=8), [0.8, 0.7], {"error": "min"})
    train(
        linear_model(),
        later,
        config(max_steps=8, eval_every=2, save_every=2, keep_last=1, best_metric="error"),
        run_dir,
        {},
        CPU,
        resume=True,
    )
    assert read_pointer(run_dir, "best").name == "step-00000002"
    assert sorted(path.name for path in (run_dir / "checkpoints").glob("step-*")) == ["step-00000002", "step-00000008"]


def test_the_progress_bar_prints_its_final_state_once():
    import io

    from prefine.training.loop import ProgressBar

    for shown_by_last_update in (True, False):
        out = io.StringIO()
        bar = ProgressBar(total=5, file=out, mininterval=0.0 if shown_by_last_update else 3600.0, unit="step")
        for _ in range(5):
            bar.update(1)
        bar.close()
        lines = [line for line in out.getvalue().replace("\r", "\n").splitlines() if "5/5" in line]
        assert len(lines) == 1, out.getvalue()
