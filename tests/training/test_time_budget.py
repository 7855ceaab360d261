"""--max-time: duration parsing, the budget-based schedule, stopping at the deadline, resuming the same budget.

Every test runs on a fake clock that the task advances by a set number of seconds per batch
(and per evaluation), so the "wall time" of a run is exact and no test depends on real timing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from prefine.checkpoint import TRAINER_STATE_FILE, latest_checkpoint, load_trainer_state, load_weights
from prefine.config import add_dataclass_arguments, from_args
from prefine.errors import PrefineError
from prefine.training import RESUMABLE_OVERRIDES, DistributedContext, TrainingConfig, TrainingInterrupted, train
from prefine.training.config import format_duration, parse_duration, with_time_budget
from prefine.training.optim import budget_learning_rate_multiplier, learning_rate_multiplier

CPU = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
PEAK = 0.01
TOKENS_PER_BATCH = 5


class FakeClock:
    """Seconds that move only when told to; starts far from zero so absolute readings would show."""

    def __init__(self, now: float = 5000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Position:
    epoch: int
    offset: int


class ClockedTask:
    """A tiny regression task; each batch costs `batch_seconds` of fake time (a number, or one per call),
    each evaluation `eval_seconds`, the set-up before the loop `startup_seconds`. `interrupt_at_call`
    sends SIGINT as Ctrl-C would."""

    def __init__(
        self, clock: FakeClock, batch_seconds=1.0, eval_seconds: float = 0.0, interrupt_at_call: int = 0, startup_seconds: float = 0.0
    ):
        self.clock, self.batch_seconds, self.eval_seconds, self.interrupt_at_call = clock, batch_seconds, eval_seconds, interrupt_at_call
        self.startup_seconds = startup_seconds
        self.calls = 0
        self.evaluated_at_clock: list[float] = []

    def start_position(self) -> Position:
        self.clock.advance(self.startup_seconds)  # the loop asks for it while setting up, before training starts
        return Position(0, 0)

    def batch_at(self, position: Position, rank: int, world_size: int):
        self.calls += 1
        if self.calls > 100:
            raise RuntimeError("runaway run: the time budget never stopped it")
        if self.calls == self.interrupt_at_call:
            os.kill(os.getpid(), signal.SIGINT)
        seconds = self.batch_seconds if isinstance(self.batch_seconds, (int, float)) else self.batch_seconds[self.calls - 1]
        self.clock.advance(seconds)
        generator = torch.Generator().manual_seed(position.offset)
        x = torch.randn(4, 3, generator=generator)
        y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
        return {"x": x, "y": y, "num_real_tokens": TOKENS_PER_BATCH}, Position(position.epoch, position.offset + 4)

    def loss(self, model: nn.Module, batch):
        loss = nn.functional.mse_loss(model(batch["x"]), batch["y"])
        return loss, {"loss": float(loss.detach())}

    def evaluate(self, model: nn.Module):
        self.clock.advance(self.eval_seconds)
        self.evaluated_at_clock.append(self.clock.now)
        x = torch.randn(8, 3, generator=torch.Generator().manual_seed(123))
        return {"loss": float(nn.functional.mse_loss(model(x), x @ torch.tensor([[1.0], [-2.0], [0.5]])))}


def config(**overrides) -> TrainingConfig:
    values = {
        "max_steps": 0,
        "max_time": "10s",
        "batch_size": 4,
        "learning_rate": PEAK,
        "warmup_steps": 0,
        "schedule": "linear",
        "log_every": 1,
        "eval_every": 0,
        "save_every": 0,
        "keep_last": 10,
        "progress": False,
        "seed": 3,
        **overrides,
    }
    return TrainingConfig(**values)


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(3, 1)


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def train_records(run_dir: Path) -> dict[int, dict]:
    return {record["step"]: record for record in records(run_dir) if "train/loss" in record}


def same_run(logged: dict[int, dict]) -> dict[int, dict]:
    """The logged values that must not depend on an interruption (tokens/s is real throughput)."""
    return {step: {key: value for key, value in record.items() if key != "train/tokens_per_second"} for step, record in logged.items()}


# --- durations and the configuration ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45m", 2700), ("1h30m", 5400), ("90s", 90), ("2h", 7200), ("1.5h", 5400), ("600", 600), ("2.5", 2.5), ("1h 30m", 5400), ("1H", 3600)],
)
def test_durations_parse_to_seconds(text, seconds):
    assert parse_duration(text) == seconds
    assert TrainingConfig(max_time=text).max_time_seconds == seconds


@pytest.mark.parametrize("text", ["soon", "45", "0", "-5m", "1h30", "10x", "1h1h", "m", " ", "inf", "nan"])
def test_bad_durations_are_one_clear_line(text):
    if text == "45":  # a plain number is seconds, not an error
        assert TrainingConfig(max_time=text).max_time_seconds == 45
        return
    with pytest.raises(PrefineError) as error:
        TrainingConfig(max_time=text)
    message = str(error.value)
    assert message.startswith(f"--max-time {text!r} is not a positive duration")
    assert "45m" in message and "1h30m" in message and "\n" not in message


def test_no_time_budget_by_default():
    assert TrainingConfig().max_time_seconds is None


def test_max_steps_zero_means_no_step_limit_only_with_a_time_budget():
    with pytest.raises(PrefineError, match=r"--max-steps must be at least 1 \(or use --max-time\)"):
        TrainingConfig(max_steps=0)
    with pytest.raises(PrefineError, match=r"--max-steps must be at least 1 \(or use --max-time\)"):
        TrainingConfig(max_steps=-1, max_time="1h")
    assert TrainingConfig(max_steps=0, max_time="1h").max_time_seconds == 3600


def test_with_time_budget_drops_the_default_step_limit_only():
    budgeted = TrainingConfig(max_steps=10_000, max_time="45m")
    assert with_time_budget(budgeted, explicit_steps=False).max_steps == 0
    assert with_time_budget(budgeted, explicit_steps=True).max_steps == 10_000  # both given: the first reached stops
    steps_only = TrainingConfig(max_steps=10_000)
    assert with_time_budget(steps_only, explicit_steps=False) == steps_only


def test_max_time_is_a_flag_and_a_resumable_override():
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, TrainingConfig)
    assert "--max-time" in parser.format_help()
    assert from_args(TrainingConfig, parser.parse_args(["--max-time", "1h30m"])).max_time_seconds == 5400
    with pytest.raises(PrefineError, match="--max-time 'later'"):
        from_args(TrainingConfig, parser.parse_args(["--max-time", "later"]))
    assert "max_time" in RESUMABLE_OVERRIDES  # `--resume RUN --max-time 2h` extends a budget


def test_format_duration():
    assert format_duration(2700) == "45m 0s"
    assert format_duration(5430) == "1h 30m 30s"
    assert format_duration(12.4) == "12s"


# --- the schedule ----------------------------------------------------------------------------


def test_step_only_schedule_is_unchanged():
    # The values of the step schedule before time budgets existed, pinned.
    linear = TrainingConfig(max_steps=100, warmup_steps=10, schedule="linear")
    assert [learning_rate_multiplier(step, linear) for step in (0, 5, 10, 55, 100, 150)] == [1 / 11, 6 / 11, 1.0, 0.5, 0.0, 0.0]
    ratio = TrainingConfig(max_steps=60, warmup_ratio=0.1, schedule="cosine")
    assert learning_rate_multiplier(5, ratio) == 6 / 7 and learning_rate_multiplier(6, ratio) == 1.0
    assert learning_rate_multiplier(33, ratio) == pytest.approx(0.5)
    constant = TrainingConfig(max_steps=10, warmup_steps=2, schedule="constant")
    assert [learning_rate_multiplier(step, constant) for step in (0, 1, 2, 9)] == [1 / 3, 2 / 3, 1.0, 1.0]


def test_step_only_training_ignores_the_clock(tmp_path):
    # Without --max-time the rate depends on the step alone, however long the steps take.
    steps = config(max_time="", max_steps=8, warmup_steps=2)
    train(model(), ClockedTask(FakeClock(), batch_seconds=1.0), steps, tmp_path / "fast", {}, CPU, clock=None)
    fast = train_records(tmp_path / "fast")
    slow_clock = FakeClock()
    train(model(), ClockedTask(slow_clock, batch_seconds=[1, 50, 3, 700, 2, 9, 1, 1]), steps, tmp_path / "slow", {}, CPU, clock=slow_clock)
    slow = train_records(tmp_path / "slow")
    assert [fast[step]["train/lr"] for step in fast] == [slow[step]["train/lr"] for step in slow]
    assert [slow[step]["train/lr"] for step in range(1, 9)] == pytest.approx(
        [PEAK * learning_rate_multiplier(step, steps) for step in range(1, 9)]
    )
    assert [fast[step]["train/loss"] for step in fast] == [slow[step]["train/loss"] for step in slow]


def test_budget_schedule_warms_up_and_decays_over_the_fraction_used():
    ratio = config(max_time="100s", warmup_steps=-1, warmup_ratio=0.2)
    assert budget_learning_rate_multiplier(0, 10.0, ratio) == pytest.approx(0.5)  # half-way through the warm-up fifth
    assert budget_learning_rate_multiplier(0, 20.0, ratio) == pytest.approx(1.0)
    assert budget_learning_rate_multiplier(0, 60.0, ratio) == pytest.approx(0.5)
    assert budget_learning_rate_multiplier(0, 100.0, ratio) == 0.0
    assert budget_learning_rate_multiplier(0, 250.0, ratio) == 0.0  # past the deadline: never negative
    cosine = config(max_time="100s", schedule="cosine")
    assert budget_learning_rate_multiplier(0, 50.0, cosine) == pytest.approx(0.5)
    # Both limits: the fraction used is the larger one; warmup_steps is then a fraction of max_steps.
    both = config(max_time="100s", max_steps=40, warmup_steps=4)
    assert budget_learning_rate_multiplier(2, 1.0, both) == pytest.approx(0.5)
    assert budget_learning_rate_multiplier(22, 10.0, both) == pytest.approx(0.5)  # steps dominate: (22/40 - 0.1) / 0.9
    assert budget_learning_rate_multiplier(1, 55.0, both) == pytest.approx(0.5)  # time dominates
    # A time budget without a step limit: warmup_steps counts steps, then the decay over the budget takes over.
    steps_warmup = config(max_time="100s", warmup_steps=4)
    assert [budget_learning_rate_multiplier(step, 1.0 * step, steps_warmup) for step in (0, 1, 3)] == pytest.approx([0.2, 0.4, 0.8])
    assert budget_learning_rate_multiplier(4, 50.0, steps_warmup) == pytest.approx(0.5)


def test_learning_rate_follows_the_elapsed_fraction_of_the_budget(tmp_path):
    clock = FakeClock()
    # Steps of uneven length: the rate follows time, not the step count.
    task = ClockedTask(clock, batch_seconds=[1, 1, 3, 5, 2, 4, 4, 4])
    result = train(model(), task, config(max_time="20s"), tmp_path / "run", {}, CPU, clock=clock)
    logged = train_records(tmp_path / "run")
    elapsed = {step: record["train/elapsed_seconds"] for step, record in logged.items()}
    assert elapsed == {1: 1, 2: 2, 3: 5, 4: 10, 5: 12, 6: 16, 7: 20}
    assert logged[4]["train/lr"] == pytest.approx(PEAK / 2)  # half the budget used: half the peak (linear, no warm-up)
    for step, record in logged.items():
        assert record["train/lr"] == pytest.approx(PEAK * (1 - elapsed[step] / 20))
    assert logged[7]["train/lr"] == pytest.approx(0.0, abs=1e-12)  # annealed at the deadline
    assert result.step == 7 and result.stopped_at_deadline


# --- stopping and resuming -------------------------------------------------------------------


def test_the_batch_grows_with_the_fraction_of_the_time_budget_used(tmp_path):
    clock = FakeClock()
    task = ClockedTask(clock, batch_seconds=1.0)  # each micro-batch of 4 costs a second
    result = train(
        model(), task, config(batch_size=16, gradient_accumulation_steps=4, batch_ramp=0.5), tmp_path / "run", {}, CPU, clock=clock
    )
    logged = train_records(tmp_path / "run")
    # Budget used before each step: 0, 1, 3 and 6 of 10 seconds, i.e. 0, 20%, 60% and (past) 100% of the ramp.
    assert [logged[step]["train/batch_size"] for step in sorted(logged)] == [4, 8, 12, 16]
    assert result.step == 4 and task.calls == 10


def test_training_stops_at_the_deadline_with_a_final_evaluation_and_checkpoint(tmp_path, capsys):
    clock = FakeClock()
    task = ClockedTask(clock, batch_seconds=1.0, eval_seconds=0.5)
    result = train(model(), task, config(max_time="10s", log_every=3), tmp_path / "run", {}, CPU, clock=clock)

    assert result.step == 10 and result.stopped_at_deadline and not result.stopped_early
    assert "time budget reached: 10s (10 steps)" in capsys.readouterr().out
    assert task.evaluated_at_clock == [5010.5]  # one final evaluation, after the last step
    checkpoint = latest_checkpoint(tmp_path / "run")
    assert checkpoint.name == "step-00000010" and result.last_checkpoint == checkpoint
    state = load_trainer_state(checkpoint)
    assert state["elapsed_seconds"] == 10.5  # the final evaluation counts too
    assert state["tokens_seen"] == 10 * TOKENS_PER_BATCH == result.tokens_seen
    lines = records(tmp_path / "run")
    assert [line["step"] for line in lines if "train/loss" in line] == [3, 6, 9, 10]  # the deadline's step is logged
    assert lines[-1]["step"] == 10 and "eval/loss" in lines[-1]
    final_train = train_records(tmp_path / "run")[10]
    assert final_train["train/elapsed_seconds"] == 10 and final_train["train/tokens_seen"] == 50


def test_evaluations_count_against_the_budget_and_start_up_does_not(tmp_path):
    clock = FakeClock()
    task = ClockedTask(clock, batch_seconds=1.0, eval_seconds=1.5, startup_seconds=100.0)
    # Steps 1-4: 4 s; evaluation: 5.5 s; steps 5-8: 9.5 s; evaluation: 11 s; step 9 ends past the deadline.
    result = train(model(), task, config(max_time="10s", eval_every=4), tmp_path / "run", {}, CPU, clock=clock)
    assert result.step == 9 and result.stopped_at_deadline
    assert load_trainer_state(latest_checkpoint(tmp_path / "run"))["elapsed_seconds"] == 13.5  # with the final evaluation

    clock = FakeClock()
    task = ClockedTask(clock, batch_seconds=1.0, eval_seconds=1.5, startup_seconds=100.0)
    # The evaluation before the first step is part of the loop: 1.5 s, steps 1-4: 5.5 s, evaluation: 7 s, steps 5-7: 10 s.
    result = train(model(), task, config(max_time="10s", eval_every=4, eval_at_start=True), tmp_path / "at-start", {}, CPU, clock=clock)
    assert result.step == 7 and result.elapsed_seconds == 11.5


def test_first_limit_reached_stops(tmp_path):
    clock = FakeClock()
    steps_first = train(model(), ClockedTask(clock), config(max_time="10s", max_steps=6), tmp_path / "steps", {}, CPU, clock=clock)
    assert steps_first.step == 6 and not steps_first.stopped_at_deadline
    assert train_records(tmp_path / "steps")[3]["train/lr"] == pytest.approx(PEAK * 0.5)  # 3 of 6 steps beats 3 of 10 s

    clock = FakeClock()
    time_first = train(model(), ClockedTask(clock), config(max_time="10s", max_steps=25), tmp_path / "time", {}, CPU, clock=clock)
    assert time_first.step == 10 and time_first.stopped_at_deadline
    assert latest_checkpoint(tmp_path / "time").name == "step-00000010"


def test_resume_after_an_interrupt_continues_the_same_budget(tmp_path):
    clock = FakeClock()
    straight = train(model(), ClockedTask(clock), config(), tmp_path / "straight", {}, CPU, clock=clock)
    assert straight.step == 10

    clock = FakeClock()
    with pytest.raises(TrainingInterrupted) as interrupted:
        train(model(), ClockedTask(clock, interrupt_at_call=4), config(), tmp_path / "resumed", {}, CPU, clock=clock)
    assert interrupted.value.step == 4
    assert load_trainer_state(interrupted.value.checkpoint)["elapsed_seconds"] == 4.0

    # The next session's clock reads something else entirely; only the time used in it counts.
    clock = FakeClock(now=123.0)
    resumed = train(model(), ClockedTask(clock), config(), tmp_path / "resumed", {}, CPU, resume=True, clock=clock)
    assert resumed.step == 10 and resumed.stopped_at_deadline  # 4 s before + 6 s now, not 10 more seconds
    assert clock.now == 129.0
    state = load_trainer_state(latest_checkpoint(tmp_path / "resumed"))
    assert state["elapsed_seconds"] == 10.0 and state["tokens_seen"] == 10 * TOKENS_PER_BATCH
    # The same budget, the same schedule: the resumed losses and rates are those of the uninterrupted run.
    assert same_run(train_records(tmp_path / "resumed")) == same_run(train_records(tmp_path / "straight"))
    torch.testing.assert_close(
        load_weights(latest_checkpoint(tmp_path / "resumed")), load_weights(latest_checkpoint(tmp_path / "straight")), rtol=0, atol=0
    )


def test_resume_with_a_larger_budget_trains_on_and_a_spent_budget_does_not(tmp_path):
    clock = FakeClock()
    train(model(), ClockedTask(clock), config(max_time="6s"), tmp_path / "run", {}, CPU, clock=clock)
    assert latest_checkpoint(tmp_path / "run").name == "step-00000006"

    spent = train(model(), ClockedTask(clock), config(max_time="6s"), tmp_path / "run", {}, CPU, resume=True, clock=clock)
    assert spent.step == 6 and spent.stopped_at_deadline

    extended = train(model(), ClockedTask(clock), config(max_time="15s"), tmp_path / "run", {}, CPU, resume=True, clock=clock)
    assert extended.step == 15
    logged = train_records(tmp_path / "run")
    assert sorted(logged) == list(range(1, 16))
    assert logged[15]["train/elapsed_seconds"] == 15 and logged[15]["train/tokens_seen"] == 15 * TOKENS_PER_BATCH


def test_checkpoints_without_time_and_tokens_still_resume(tmp_path):
    clock = FakeClock()
    steps = config(max_time="", max_steps=4)
    train(model(), ClockedTask(clock), steps, tmp_path / "run", {}, CPU, clock=clock)
    checkpoint = latest_checkpoint(tmp_path / "run")
    state = load_trainer_state(checkpoint)
    assert state["elapsed_seconds"] == 4.0 and state["tokens_seen"] == 4 * TOKENS_PER_BATCH
    del state["elapsed_seconds"], state["tokens_seen"]  # as a checkpoint from before time budgets
    torch.save(state, checkpoint / TRAINER_STATE_FILE)

    result = train(model(), ClockedTask(clock), config(max_time="", max_steps=6), tmp_path / "run", {}, CPU, resume=True, clock=clock)
    assert result.step == 6
    state = load_trainer_state(latest_checkpoint(tmp_path / "run"))
    assert state["elapsed_seconds"] == 2.0 and state["tokens_seen"] == 2 * TOKENS_PER_BATCH  # counted from zero


# --- several processes -----------------------------------------------------------------------


def test_under_torchrun_rank_0s_clock_stops_every_rank_at_the_same_step(tmp_path):
    repo_root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo_root)}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(Path(__file__).with_name("time_budget_worker.py")),
        "--run-dir",
        str(tmp_path / "run"),
        "--max-time",
        "6s",
    ]
    # The timeout only turns a hang (ranks that disagree on when to stop) into a failure.
    result = subprocess.run(command, cwd=repo_root, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (json.loads((tmp_path / f"run-rank{rank}.json").read_text()) for rank in (0, 1))
    # Rank 1's own clock never moved, yet it stopped with rank 0 at the deadline...
    assert rank0["step"] == rank1["step"] == 6 and rank0["stopped_at_deadline"] and rank1["stopped_at_deadline"]
    # ...having applied rank 0's time-based rates (different rates would have left different weights).
    assert rank0["weights"] == rank1["weights"]
    assert rank0["tokens_seen"] == rank1["tokens_seen"] == 6 * 2 * TOKENS_PER_BATCH  # both ranks' tokens
    state = load_trainer_state(latest_checkpoint(tmp_path / "run"))
    assert state["elapsed_seconds"] == 6.0 and state["step"] == 6


def test_the_progress_bar_fills_with_the_time_budget(tmp_path, capsys):
    clock = FakeClock()
    train(model(), ClockedTask(clock, batch_seconds=30.0), config(max_time="5m", progress=True), tmp_path / "run", {}, CPU, clock=clock)
    bar = capsys.readouterr().err.replace("\r", "\n")
    assert "100%" in bar and "05:00/05:00 (00:00 left), step 10, loss" in bar
