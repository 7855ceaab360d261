"""The one training loop that serves pre-training and every fine-tuning task: `train`, run by a `Trainer`.

A task plugs in through three methods (see `TrainingTask`): where its data starts, the batch
at a data position, the loss of a batch, and an evaluation. The loop owns everything else:
AdamW and the schedule, gradient accumulation and clipping, bf16 autocast on CUDA, optional
torch.compile, DistributedDataParallel under torchrun, periodic evaluation and best-checkpoint
selection, early stopping, metrics.jsonl, the progress bar, atomic checkpoints, and Ctrl-C.
`Trainer` holds a run's state as attributes and each phase (set up, step, log, evaluate, save,
finish) as a method; `Trainer.run` shows their order and `Trainer.evaluation_due` when evaluation happens.

Training stops at --max-steps, at the --max-time deadline (whichever comes first), on early
stopping or on Ctrl-C. Under a time budget the learning-rate schedule follows the fraction of
the budget used, and the clock counts the loop's own wall time (steps, evaluations, saves; not
the start-up before it) through the module-level `clock`, which tests replace with a fake one.
Rank 0's clock decides for every rank, so all of them set the same rate and stop at the same step.

Resume is exact: the data position is a pair of integers (epoch, examples consumed) that the
task can seek to directly, masking and shuffling are derived from that position and the seed,
and the checkpoint carries the optimizer, schedule and dropout RNG states. On CPU, the losses
after a resume are bit-identical to those of an uninterrupted run (for step budgets; a time
budget depends on the clock). Checkpoints also record the training time used (`elapsed_seconds`)
and the real tokens seen by all ranks (`tokens_seen`), so a resumed run continues the same
time budget and pre-training checkpoints can be placed on a time or token axis. A run killed
without warning (SIGKILL) resumes the same way from its last checkpoint: what it logged after that
step is dropped and logged again, temporary files of a save it was in are removed, and a run that
had already saved its final checkpoint is not evaluated or saved a second time.

Gradient accumulation: a task that counts its loss-bearing units (`loss_units`, e.g. masked tokens)
gets the count over the whole global batch (all micro-batches, all ranks) and returns its loss as
that share of the global mean, so 1 x 32 and 4 x 8 examples give the same update. A task without
`loss_units` keeps the older contract: each micro-batch's mean loss, averaged over micro-batches.
Under --batch-ramp the number of micro-batches per step grows with the fraction of the budget
used (`micro_batches_per_step`), decided from rank 0's shared clock so every rank agrees.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import torch
from torch import nn
from tqdm import tqdm

from prefine import determinism
from prefine.checkpoint import (
    CHECKPOINTS_DIR,
    METRICS_FILE,
    best_checkpoint,
    checkpoint_name,
    latest_checkpoint,
    load_trainer_state,
    load_weights,
    lock_run_dir,
    remove_stale_temporaries,
    save_checkpoint,
    set_pointer,
    write_text_atomic,
)
from prefine.errors import PrefineError
from prefine.training.config import TrainingConfig, format_duration, parse_best_metric
from prefine.training.distributed import (
    DistributedContext,
    all_reduce_mean,
    all_reduce_sum,
    any_rank,
    barrier,
    broadcast_from_main,
    check_batch_split,
)
from prefine.training.optim import build_optimizer, build_scheduler, micro_batches_per_step
from prefine.training.reporting import Reporter, open_reporter

# The wall clock of time budgets (seconds, monotonic). `train(..., clock=...)` or replacing this
# attribute substitutes a fake clock in tests.
clock: Callable[[], float] = time.monotonic


class TrainingTask(Protocol):
    def start_position(self) -> Any:
        """The data position of step 0: a record with integer fields `epoch` and `offset`."""

    def batch_at(self, position: Any, rank: int, world_size: int) -> tuple[dict[str, Any], Any]:
        """This rank's share of the micro-batch at `position`, and the position after it."""

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """The scalar loss to minimise and per-batch statistics to log (means)."""

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Held-out metrics; the model is already in eval mode under no_grad."""

    # Optional: {"accuracy": "max", "loss": "min", ...}, so --best-metric accuracy needs no ":max".
    metric_directions: dict[str, str]
    # Optional (see the module docstring), detected with hasattr:
    # def loss_units(self, batch) -> dict[str, int]:
    #     """Loss-bearing units per loss term in this micro-batch (masked tokens, sentence pairs...)."""
    # and then loss(model, batch, global_units=...) receives those counts summed over the global batch
    # and returns this micro-batch's share of the global-batch mean loss (a sum divided by them).


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after Ctrl-C or SIGTERM once the checkpoint is safely on disk."""

    def __init__(self, step: int, checkpoint: Path | None):
        super().__init__(f"interrupted at step {step}")
        self.step = step
        self.checkpoint = checkpoint


@dataclass
class TrainingResult:
    step: int
    last_eval: dict[str, float]
    best_value: float | None
    best_checkpoint: Path | None
    last_checkpoint: Path
    stopped_early: bool
    stopped_at_deadline: bool = False
    elapsed_seconds: float = 0.0
    tokens_seen: int = 0


class StopRequest:
    """First Ctrl-C/SIGTERM: finish the step, save, exit. Second Ctrl-C: abort at once.

    An abort during a save is safe too: checkpoints only become visible by an atomic rename.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        tqdm.write("stop requested: finishing this step and saving a checkpoint (Ctrl-C again to abort without saving)")

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class MetricsLog:
    """Append-only metrics.jsonl; on resume, lines past the resumed step are dropped.

    With `report_to` (--report-to) every appended record is mirrored to that tracker too; it is
    opened by `truncate_after`, which is where the loop says which step it starts from.
    """

    def __init__(self, path: Path, enabled: bool, report_to: str = "none"):
        self.path = path
        self.enabled = enabled
        self.report_to = report_to
        self.reporter: Reporter | None = None

    def truncate_after(self, step: int) -> None:
        if self.enabled and self.reporter is None:
            self.reporter = open_reporter(self.report_to, self.path.parent, step)
        if not self.enabled or not self.path.exists():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash mid-append; its step is logged again
            if record.get("step", 0) <= step:
                kept.append(line)
        write_text_atomic(self.path, "".join(line + "\n" for line in kept))

    def append(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            if self.reporter is not None:
                self.reporter.write(record)

    def close(self) -> None:
        if self.reporter is not None:
            self.reporter.close()
            self.reporter = None


class ProgressBar(tqdm):
    """tqdm that prints its final state once: when the last update already showed it, closing does not
    print it again (with a slightly different rate), which logs and captured output showed as a doubled line."""

    _final_shown = False

    def close(self) -> None:
        self._final_shown = not self.disable and self.last_print_n == self.n
        super().close()

    def display(self, msg=None, pos=None):
        if self._final_shown and msg is None:
            return True
        return super().display(msg, pos)


class TimeBudgetBar(ProgressBar):
    """A progress bar that fills with the time budget; `status` is the text after the bar."""

    status = ""

    @property
    def format_dict(self):
        return {**super().format_dict, "status": self.status}


def autocast_context(device: torch.device, precision: str):
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())
    if use_bf16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}


def best_metric_goal(config: TrainingConfig, task: Any) -> tuple[str, str] | None:
    """(metric, "max" or "min") that picks the best checkpoint, from --best-metric or the task's declared directions."""
    if not config.best_metric:
        return None
    name, direction = parse_best_metric(config.best_metric)
    direction = direction or (getattr(task, "metric_directions", None) or {}).get(name)
    if direction is None:
        raise PrefineError(f"--best-metric {name}: say whether higher or lower is better ({name}:max or {name}:min)")
    return name, direction


def _is_improvement(value: float, best: float | None, direction: str) -> bool:
    if best is None:
        return True
    return value > best if direction == "max" else value < best


def _rng_state(device: torch.device) -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore_rng(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def train(
    model: nn.Module,
    task: TrainingTask,
    config: TrainingConfig,
    run_dir: Path,
    checkpoint_config: dict[str, Any],
    context: DistributedContext,
    resume: bool = False,
    clock: Callable[[], float] | None = None,
    on_progress: Callable[[int, Path | None], None] | None = None,
) -> TrainingResult:
    """Train `model` on `task` until max_steps or the max_time deadline, writing checkpoints and metrics under run_dir.

    Under torchrun every rank calls this with the same arguments; only rank 0 writes to run_dir.
    `clock` (seconds) defaults to this module's `clock`, time.monotonic. `on_progress(step,
    checkpoint)` is called on rank 0 at every log line, evaluation and save (with the checkpoint
    just saved, else None): the registry's heartbeat. It must be cheap.
    """
    # One process trains a run folder at a time (see lock_run_dir); the lock goes however training ends.
    run_lock = None
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        run_lock = lock_run_dir(run_dir)
    try:
        return Trainer(model, task, config, run_dir, checkpoint_config, context, resume, clock, on_progress).run()
    finally:
        if run_lock is not None:
            run_lock.close()


EvaluationMoment = Literal["start", "after_step", "end"]


class Trainer:
    """One session of one run: `run()` sets up, takes optimizer steps until a limit, and finishes.

    The phases are methods, in the order `run` calls them: `set_up` (process settings, optimizer and
    schedule, the resumed state, the data position), `train_step` (one optimizer step: micro-batches,
    gradient accumulation, autocast, clipping), `log_if_due`, `evaluate` (when: `evaluation_due`),
    `save` (a checkpoint; when: `save_due`), and `finish` (final evaluation and checkpoint) or
    `interrupt` (Ctrl-C). Everything a checkpoint must carry for an exact resume is an attribute,
    collected by `trainer_state`. Use `train(...)`, which also holds the run folder's lock.
    """

    # Built by set_up, after the process settings they depend on (device, threads, determinism).
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    metrics_log: MetricsLog
    training_model: nn.Module  # what the steps call: the model under DDP and torch.compile when enabled
    ddp_model: nn.parallel.DistributedDataParallel | None = None  # the DDP wrapper, under torchrun
    progress_bar: ProgressBar
    last_checkpoint: Path | None = None

    def __init__(
        self,
        model: nn.Module,
        task: TrainingTask,
        config: TrainingConfig,
        run_dir: Path,
        checkpoint_config: dict[str, Any],
        context: DistributedContext,
        resume: bool = False,
        clock: Callable[[], float] | None = None,
        on_progress: Callable[[int, Path | None], None] | None = None,
    ):
        self.model = model
        self.task = task
        self.config = config
        self.run_dir = run_dir
        self.checkpoint_config = checkpoint_config
        self.context = context
        self.resume = resume
        # Looked up now rather than at import, so tests that replace the module's `clock` are obeyed.
        self.read_clock: Callable[[], float] = clock if clock is not None else globals()["clock"]
        self.on_progress = on_progress
        self.goal = best_metric_goal(config, task)  # a --best-metric without a direction fails before any work
        self.budget = config.max_time_seconds
        self.device = context.device
        # Optional in TrainingTask (see the module docstring): whether the loss is a share of the global batch's units.
        self.loss_units: Callable[[dict[str, Any]], dict[str, int]] | None = getattr(task, "loss_units", None)

        # Where training stands; `trainer_state` saves all of it and `_restore` reads it back.
        self.step = 0
        self.position: Any = None
        self.best_value: float | None = None
        self.best_step = -1
        self.evaluations_without_improvement = 0
        self.elapsed_before = 0.0  # training time used by earlier sessions of this run
        self.tokens_seen = 0
        self.last_eval: dict[str, float] = {}
        self.evaluated_at = -1
        self.resumed_from: Path | None = None
        # Training time used when the scheduler last stepped (rank 0's, shared); read by the schedule under --max-time.
        self.schedule_elapsed = 0.0
        # Rank 0's training time after the last step, the same on every rank: it decides the deadline and the batch ramp.
        self.shared_elapsed = 0.0
        self.loop_started: float | None = None
        self.saved_at: dict[int, Path] = {}  # step -> its checkpoint, so a step is never saved twice
        self.time_up = False
        self.stopped_early = False
        self.step_micro_batches = config.gradient_accumulation_steps
        # The steps since the last log line: summed statistics, their count, tokens_seen and the wall clock when it began.
        self.window_stats: dict[str, float] = {}
        self.window_steps = 0
        self.window_tokens_from = 0
        self.window_start = 0.0
        self.postfix: dict[str, str] = {}  # the latest loss and throughput, shown beside the progress bar

    # ---- the run, phase by phase ----

    def run(self) -> TrainingResult:
        """Set up, step until max_steps, the deadline, early stopping or Ctrl-C, then finish."""
        self.set_up()
        with StopRequest() as stop:
            if self.evaluation_due("start"):
                self.evaluate()
            while not self.limit_reached():
                epoch_before = self.position.epoch
                self.train_step()
                self.log_if_due()
                self.show_progress()
                if self.evaluation_due("after_step", epoch_ended=self.position.epoch > epoch_before):
                    self.evaluate()
                    if self.patience_ran_out():
                        break
                if self.save_due():
                    self.save()
                if any_rank(stop.requested, self.context):
                    self.interrupt()
            self.finish()
        return self.result()

    def set_up(self) -> None:
        """Everything before the first step: process settings, optimizer, schedule, metrics log, the resumed state, the bar."""
        config, context = self.config, self.context
        check_batch_split(config.batch_size, config.gradient_accumulation_steps, context.world_size)
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        if config.deterministic:
            determinism.apply(self.device.type)
        if context.is_main:
            remove_stale_temporaries(self.run_dir)
        self.model.to(self.device)
        self.optimizer = build_optimizer(self.model, config, self.device)
        self.scheduler = build_scheduler(self.optimizer, config, self.schedule_clock)
        self.metrics_log = MetricsLog(self.run_dir / METRICS_FILE, enabled=context.is_main, report_to=config.report_to)
        self.position = self.task.start_position()
        resumed_window: dict[str, Any] = {"stats": {}, "steps": 0}
        if self.resume:
            resumed_window = self._restore()
        else:
            self.metrics_log.truncate_after(-1)
        self.training_model = self._wrap_for_training()
        if self.resumed_from is not None and self.resumed_from.name == f"step-{self.step:08d}":
            self.saved_at[self.step] = self.resumed_from  # a run that stops at once keeps this checkpoint instead of rewriting it
        if not self.resume:
            torch.manual_seed(config.seed)  # dropout; a resumed run restores the saved RNG state instead
        self.model.train()
        # A resumed run whose time budget is already spent trains no further (it only evaluates and saves).
        self.time_up = self.budget is not None and self.elapsed_before >= self.budget
        self.shared_elapsed = self.elapsed_before
        self.progress_bar = self._open_progress_bar()
        self.window_stats = {key: float(value) for key, value in resumed_window["stats"].items()}
        self.window_steps = int(resumed_window["steps"])
        self.window_tokens_from = self.tokens_seen
        self.window_start = time.perf_counter()
        self.loop_started = self.read_clock()

    def _restore(self) -> dict[str, Any]:
        """Load the latest checkpoint's weights and trainer state; returns its unfinished log window."""
        checkpoint = latest_checkpoint(self.run_dir)
        if checkpoint is None:
            raise PrefineError(f"{self.run_dir} has no complete checkpoint to resume from; start it again without --resume")
        state = load_trainer_state(checkpoint)
        self.model.load_state_dict(load_weights(checkpoint))
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError as error:
            raise PrefineError(
                f"{checkpoint}: optimizer state does not match this model ({error}); resume with the run's own settings"
            ) from None
        self.scheduler.load_state_dict(state["scheduler"])
        _restore_rng(state["rng"], self.device)
        self.step = int(state["step"])
        self.position = type(self.position)(epoch=int(state["position"]["epoch"]), offset=int(state["position"]["offset"]))
        self.best_value = state["best_value"] if state["best_step"] >= 0 else None
        self.best_step = int(state["best_step"])
        # A kill between saving a new best checkpoint and moving `best` to it leaves the pointer
        # behind; the checkpoint's own state knows which one is best.
        best_folder = self.run_dir / CHECKPOINTS_DIR / checkpoint_name(self.best_step)
        if self.best_step >= 0 and self.context.is_main and best_folder.is_dir():
            set_pointer(self.run_dir, "best", best_folder)
        self.evaluations_without_improvement = int(state["evaluations_without_improvement"])
        # Checkpoints written before time budgets existed lack these; they count from zero.
        self.elapsed_before = float(state.get("elapsed_seconds", 0.0))
        self.tokens_seen = int(state.get("tokens_seen", 0))
        # An evaluation logged at the checkpoint's step is kept, so it is not run (and logged) twice.
        self.evaluated_at = int(state.get("evaluated_at", -1))
        self.last_eval = dict(state.get("last_eval", {}))
        self.resumed_from = checkpoint
        self.schedule_elapsed = self.elapsed_before
        self.metrics_log.truncate_after(self.step)
        return state.get("log_window", {"stats": {}, "steps": 0})

    def _wrap_for_training(self) -> nn.Module:
        """The module the steps call: the model, under DDP with several processes, compiled with --compile."""
        training_model: nn.Module = self.model
        if self.context.enabled:
            # DDP broadcasts rank 0's weights at construction, so every rank starts (and stays) identical.
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_model = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
            training_model = self.ddp_model
        if self.config.compile:
            # A compiled module is a module (OptimizedModule); torch's annotation says only "callable".
            training_model = cast(nn.Module, torch.compile(training_model, dynamic=True))
        return training_model

    def limit_reached(self) -> bool:
        """--max-steps reached or the --max-time budget spent (early stopping and Ctrl-C leave the loop themselves)."""
        return (self.config.max_steps != 0 and self.step >= self.config.max_steps) or self.time_up

    def train_step(self) -> None:
        """One optimizer step over this step's micro-batches; advances the step, the schedule, the clock and the token count."""
        self.optimizer.zero_grad(set_to_none=True)
        # Rank 0's clock of the last step (shared), so every rank accumulates the same count.
        self.step_micro_batches = micro_batches_per_step(self.step, self.shared_elapsed, self.config)
        micro_batches = []
        step_tokens = 0
        for _ in range(self.step_micro_batches):
            batch, self.position = self.task.batch_at(self.position, self.context.rank, self.context.world_size)
            step_tokens += int(batch.get("num_real_tokens", 0))
            micro_batches.append(batch)
        step_stats = self._accumulate_gradients(micro_batches)
        if self.config.max_grad_norm > 0:
            step_stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm))
        self.optimizer.step()
        # One collective per step: the global batch's real tokens, and rank 0's clock, which decides
        # the time-budgeted learning rate and the deadline for every rank alike.
        main_elapsed = self.elapsed() if self.context.is_main else 0.0
        global_tokens, self.shared_elapsed = all_reduce_sum([float(step_tokens), main_elapsed], self.context)
        self.tokens_seen += int(global_tokens)
        self.schedule_elapsed = self.shared_elapsed
        self.time_up = self.budget is not None and self.shared_elapsed >= self.budget
        self.scheduler.step()
        self.step += 1
        self.window_steps += 1
        for key, value in step_stats.items():
            self.window_stats[key] = self.window_stats.get(key, 0.0) + value

    def _accumulate_gradients(self, micro_batches: list[dict[str, Any]]) -> dict[str, float]:
        """Forward and backward over every micro-batch under autocast; returns the step's loss statistics."""
        loss_kwargs: dict[str, Any] = {}
        # Per-unit losses: each micro-batch's loss is its sum over units divided by the global
        # batch's count. DDP averages over ranks, hence the world_size; micro-batches add up.
        scale = float(self.context.world_size) if self.loss_units is not None else 1.0 / len(micro_batches)
        if self.loss_units is not None:
            loss_kwargs["global_units"] = self._global_loss_units(micro_batches, self.loss_units)
        step_stats: dict[str, float] = {}
        for micro, batch in enumerate(micro_batches):
            batch = _to_device(batch, self.device)
            # Gradients of inner micro-batches stay local; DDP averages them once per step.
            last = micro == len(micro_batches) - 1
            gradient_sync = contextlib.nullcontext() if last or self.ddp_model is None else self.ddp_model.no_sync()
            with gradient_sync, autocast_context(self.device, self.config.precision):
                loss, stats = self.task.loss(self.training_model, batch, **loss_kwargs)
            (loss * scale).backward()
            for key, value in stats.items():
                step_stats[key] = step_stats.get(key, 0.0) + value * scale
        return step_stats

    def _global_loss_units(
        self, micro_batches: list[dict[str, Any]], loss_units: Callable[[dict[str, Any]], dict[str, int]]
    ) -> dict[str, float]:
        """The task's loss-bearing units (masked tokens, sentence pairs...) over the global batch: all micro-batches, all ranks."""
        local_units: dict[str, float] = {}
        for batch in micro_batches:
            for name, count in loss_units(batch).items():
                local_units[name] = local_units.get(name, 0.0) + float(count)
        names = sorted(local_units)
        return dict(zip(names, all_reduce_sum([local_units[name] for name in names], self.context)))

    def log_if_due(self) -> None:
        """Every --log-every steps (and at the last step): the window's mean statistics to metrics.jsonl and the bar."""
        config = self.config
        if not (self.step % config.log_every == 0 or self.step == config.max_steps or self.time_up):
            return
        window_seconds = time.perf_counter() - self.window_start
        # Each rank's statistics describe its own slice; the mean over ranks describes the global batch.
        names = sorted(self.window_stats)
        means = dict(zip(names, all_reduce_mean([self.window_stats[key] / self.window_steps for key in names], self.context)))
        record: dict[str, Any] = {"step": self.step, **{f"train/{key}": value for key, value in means.items()}}
        record["train/lr"] = self.scheduler.get_last_lr()[0]
        if config.batch_ramp > 0:
            record["train/batch_size"] = config.batch_size // config.gradient_accumulation_steps * self.step_micro_batches
        record["train/tokens_per_second"] = (self.tokens_seen - self.window_tokens_from) / max(window_seconds, 1e-9)
        record["train/elapsed_seconds"] = self.shared_elapsed
        record["train/tokens_seen"] = self.tokens_seen
        self.metrics_log.append(record)
        self.report_progress()
        self.postfix = {"loss": f"{means.get('loss', float('nan')):.3f}", "tok_s": f"{record['train/tokens_per_second']:.0f}"}
        if self.budget is None:
            self.progress_bar.set_postfix(self.postfix, refresh=False)
        self.window_stats, self.window_steps, self.window_tokens_from, self.window_start = {}, 0, self.tokens_seen, time.perf_counter()

    def evaluation_due(self, moment: EvaluationMoment, epoch_ended: bool = False) -> bool:
        """Whether to evaluate now; the one place that decides when evaluation happens.

        "start": before the first step, with --eval-at-start. "after_step": every --eval-every steps,
        and with --eval-at-epoch-end when the step finished an epoch. "end": when training stops,
        unless this step was already evaluated (also in the session before a resume).
        """
        config = self.config
        if moment == "start":
            return config.eval_at_start and self.step == 0
        if moment == "end":
            return self.evaluated_at != self.step
        return bool(config.eval_every and self.step % config.eval_every == 0) or (config.eval_at_epoch_end and epoch_ended)

    def evaluate(self) -> dict[str, float]:
        """Evaluate, log the metrics, and save a new best checkpoint when --best-metric improved."""
        self.model.eval()
        with torch.no_grad(), autocast_context(self.device, self.config.precision):
            metrics = self.task.evaluate(self.model)
        self.model.train()
        # Every rank evaluates the same held-out data with the same weights, so the metrics agree by
        # construction; taking rank 0's makes best-checkpoint and early-stopping decisions agree even
        # where GPU kernels are not bit-reproducible.
        metrics = broadcast_from_main(metrics, self.context)
        self.metrics_log.append({"step": self.step, **{f"eval/{key}": value for key, value in metrics.items()}})
        # Set before a best-checkpoint save below, so that checkpoint records this evaluation.
        self.evaluated_at, self.last_eval = self.step, metrics
        if self.goal is not None:
            self._track_best(metrics, *self.goal)
        summary = "  ".join(f"{key} {value:.4g}" for key, value in metrics.items() if isinstance(value, (int, float)))
        if self.context.is_main:
            tqdm.write(f"step {self.step}: eval {summary}")
        return metrics

    def _track_best(self, metrics: dict[str, float], name: str, direction: str) -> None:
        if name not in metrics:
            raise PrefineError(f"--best-metric {name} is not among the evaluation metrics ({', '.join(metrics)}); pick one of them")
        value = metrics[name]
        if _is_improvement(value, self.best_value, direction):
            self.best_value, self.best_step, self.evaluations_without_improvement = value, self.step, 0
            checkpoint = self.save()
            if checkpoint is not None:
                set_pointer(self.run_dir, "best", checkpoint)
        else:
            self.evaluations_without_improvement += 1

    def patience_ran_out(self) -> bool:
        """Early stopping: --early-stopping-patience evaluations in a row without a better --best-metric."""
        patience = self.config.early_stopping_patience
        if not (patience and self.evaluations_without_improvement >= patience):
            return False
        self.stopped_early = True
        if self.context.is_main:
            tqdm.write(f"early stopping: {self.config.best_metric} has not improved for {self.evaluations_without_improvement} evaluations")
        return True

    def save_due(self) -> bool:
        """Every --save-every steps (the last step, a new best and Ctrl-C save on their own)."""
        return bool(self.config.save_every and self.step % self.config.save_every == 0)

    def save(self) -> Path | None:
        """A checkpoint of this step (on rank 0; the others get None), at most once per step."""
        if self.step in self.saved_at:
            return self.saved_at[self.step]
        if self.context.is_main:
            # The best checkpoint survives pruning, also when it was saved before a resume.
            protected = (checkpoint_name(self.best_step),) if self.best_step >= 0 else ()
            self.saved_at[self.step] = save_checkpoint(
                self.run_dir,
                self.step,
                self.model.state_dict(),
                self.checkpoint_config,
                self.trainer_state(),
                self.config.keep_last,
                protected,
            )
            self.report_progress(self.saved_at[self.step])
        return self.saved_at.get(self.step)

    def trainer_state(self) -> dict[str, Any]:
        """Everything besides the weights that an exact resume needs (saved as the checkpoint's trainer state)."""
        return {
            "step": self.step,
            "position": {"epoch": int(self.position.epoch), "offset": int(self.position.offset)},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": _rng_state(self.device),
            "best_value": float(self.best_value) if self.best_value is not None else math.nan,
            "best_step": self.best_step,
            "evaluations_without_improvement": self.evaluations_without_improvement,
            "world_size": self.context.world_size,
            "elapsed_seconds": float(self.elapsed()),
            "tokens_seen": int(self.tokens_seen),
            "evaluated_at": self.evaluated_at,
            "last_eval": {key: float(value) for key, value in self.last_eval.items() if isinstance(value, (int, float))},
            # The steps since the last log line, so a resumed run logs the same means at the same steps.
            # (Under torchrun this is rank 0's share; other ranks resume with it, for that one window.)
            "log_window": {"stats": dict(self.window_stats), "steps": self.window_steps},
        }

    def interrupt(self) -> None:
        """Ctrl-C or SIGTERM on any rank: save this step and raise TrainingInterrupted."""
        checkpoint = self.save()
        self.progress_bar.close()
        # The others wait for rank 0's save: a rank that exits first would make torchrun stop the job mid-write.
        barrier(self.context)
        raise TrainingInterrupted(self.step, checkpoint)

    def finish(self) -> None:
        """After the last step: the deadline message, a final evaluation and checkpoint, and every rank waiting for them."""
        self.progress_bar.close()
        if self.stopped_at_deadline and self.budget is not None and self.context.is_main:
            tqdm.write(f"time budget reached: {format_duration(self.budget)} ({self.step} steps)")
        if self.evaluation_due("end"):
            self.evaluate()
        self.last_checkpoint = self.save()
        barrier(self.context)  # callers on any rank may read the final checkpoint once train returns

    def result(self) -> TrainingResult:
        self.metrics_log.close()
        best = best_checkpoint(self.run_dir) if self.config.best_metric and self.context.is_main else None
        return TrainingResult(
            self.step,
            self.last_eval,
            self.best_value,
            best,
            self.last_checkpoint or self.run_dir,
            self.stopped_early,
            self.stopped_at_deadline,
            self.elapsed(),
            self.tokens_seen,
        )

    # ---- clocks and progress ----

    @property
    def stopped_at_deadline(self) -> bool:
        return self.time_up and not self.stopped_early

    def elapsed(self) -> float:
        """This rank's training time so far: earlier sessions plus this loop's wall time."""
        return self.elapsed_before + (self.read_clock() - self.loop_started if self.loop_started is not None else 0.0)

    def schedule_clock(self) -> float:
        """The training time the learning-rate schedule follows under --max-time (the same on every rank)."""
        return self.schedule_elapsed

    def report_progress(self, checkpoint: Path | None = None) -> None:
        if self.on_progress is not None and self.context.is_main:
            self.on_progress(self.step, checkpoint)

    def _open_progress_bar(self) -> ProgressBar:
        show = self.config.progress and self.context.is_main
        if self.budget is None:
            return ProgressBar(
                total=self.config.max_steps, initial=self.step, unit="step", disable=not show, dynamic_ncols=True, mininterval=1.0
            )
        # The bar fills with the time budget rather than with steps.
        bar = TimeBudgetBar(
            total=self.budget,
            initial=min(self.elapsed_before, self.budget),
            bar_format="{l_bar}{bar}| {status}",
            disable=not show,
            dynamic_ncols=True,
            mininterval=1.0,
        )
        bar.status = self._budget_status(bar.n)
        bar.refresh()
        return bar

    def show_progress(self) -> None:
        """Advance the bar by the step just taken, or under a time budget to the training time used."""
        if self.budget is None:
            self.progress_bar.update(1)
            return
        used = min(self.shared_elapsed, self.budget)
        self.progress_bar.status = self._budget_status(used)
        self.progress_bar.update(used - self.progress_bar.n)

    def _budget_status(self, used: float) -> str:
        """Under a time budget, the text after the bar: "12:03/45:00 (32:57 left), step 1234, loss 3.214, tok_s 5012"."""
        assert self.budget is not None
        steps = f"step {self.step}" + (f"/{self.config.max_steps}" if self.config.max_steps else "")
        budget = self.budget
        timing = f"{tqdm.format_interval(used)}/{tqdm.format_interval(budget)} ({tqdm.format_interval(budget - used)} left)"
        return ", ".join([timing, steps, *(f"{key} {value}" for key, value in self.postfix.items())])
