"""The one training loop that serves pre-training and every fine-tuning task.

A task plugs in through three methods (see `TrainingTask`): where its data starts, the batch
at a data position, the loss of a batch, and an evaluation. The loop owns everything else:
AdamW and the schedule, gradient accumulation and clipping, bf16 autocast on CUDA, optional
torch.compile, DistributedDataParallel under torchrun, periodic evaluation and best-checkpoint
selection, early stopping, metrics.jsonl, the progress bar, atomic checkpoints, and Ctrl-C.

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
from typing import Any, Protocol

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
from prefine.training.reporting import open_reporter

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
        self.reporter = None

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
        return _train(model, task, config, run_dir, checkpoint_config, context, resume, clock, on_progress)
    finally:
        if run_lock is not None:
            run_lock.close()


def _train(
    model: nn.Module,
    task: TrainingTask,
    config: TrainingConfig,
    run_dir: Path,
    checkpoint_config: dict[str, Any],
    context: DistributedContext,
    resume: bool,
    clock: Callable[[], float] | None,
    on_progress: Callable[[int, Path | None], None] | None,
) -> TrainingResult:
    read_clock = clock if clock is not None else globals()["clock"]
    goal = best_metric_goal(config, task)
    budget = config.max_time_seconds
    device = context.device
    check_batch_split(config.batch_size, config.gradient_accumulation_steps, context.world_size)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    if config.deterministic:
        determinism.apply(device.type)
    if context.is_main:
        remove_stale_temporaries(run_dir)
    model.to(device)
    optimizer = build_optimizer(model, config, device)
    # Training time used when the scheduler last stepped (rank 0's, shared); read by the schedule under --max-time.
    schedule_elapsed = 0.0
    scheduler = build_scheduler(optimizer, config, lambda: schedule_elapsed)
    metrics_log = MetricsLog(run_dir / METRICS_FILE, enabled=context.is_main, report_to=config.report_to)

    step = 0
    position = task.start_position()
    best_value: float | None = None
    best_step = -1
    evaluations_without_improvement = 0
    elapsed_before = 0.0  # training time used by earlier sessions of this run
    tokens_seen = 0
    last_eval: dict[str, float] = {}
    evaluated_at = -1
    resumed_from: Path | None = None
    resumed_window: dict[str, Any] = {"stats": {}, "steps": 0}
    if resume:
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            raise PrefineError(f"{run_dir} has no complete checkpoint to resume from; start it again without --resume")
        state = load_trainer_state(checkpoint)
        model.load_state_dict(load_weights(checkpoint))
        try:
            optimizer.load_state_dict(state["optimizer"])
        except ValueError as error:
            raise PrefineError(
                f"{checkpoint}: optimizer state does not match this model ({error}); resume with the run's own settings"
            ) from None
        scheduler.load_state_dict(state["scheduler"])
        _restore_rng(state["rng"], device)
        step = int(state["step"])
        position = type(position)(epoch=int(state["position"]["epoch"]), offset=int(state["position"]["offset"]))
        best_value = state["best_value"] if state["best_step"] >= 0 else None
        best_step = int(state["best_step"])
        # A kill between saving a new best checkpoint and moving `best` to it leaves the pointer
        # behind; the checkpoint's own state knows which one is best.
        if best_step >= 0 and context.is_main and (run_dir / CHECKPOINTS_DIR / checkpoint_name(best_step)).is_dir():
            set_pointer(run_dir, "best", run_dir / CHECKPOINTS_DIR / checkpoint_name(best_step))
        evaluations_without_improvement = int(state["evaluations_without_improvement"])
        # Checkpoints written before time budgets existed lack these; they count from zero.
        elapsed_before = float(state.get("elapsed_seconds", 0.0))
        tokens_seen = int(state.get("tokens_seen", 0))
        # An evaluation logged at the checkpoint's step is kept, so it is not run (and logged) twice.
        evaluated_at = int(state.get("evaluated_at", -1))
        last_eval = dict(state.get("last_eval", {}))
        resumed_from = checkpoint
        resumed_window = state.get("log_window", resumed_window)
        schedule_elapsed = elapsed_before
        metrics_log.truncate_after(step)
    else:
        metrics_log.truncate_after(-1)

    training_model: nn.Module = model
    if context.enabled:
        # DDP broadcasts rank 0's weights at construction, so every rank starts (and stays) identical.
        training_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        training_model = torch.compile(training_model, dynamic=True)

    counts_units = hasattr(task, "loss_units")
    loop_started: float | None = None

    def elapsed() -> float:
        """This rank's training time so far: earlier sessions plus this loop's wall time."""
        return elapsed_before + (read_clock() - loop_started if loop_started is not None else 0.0)

    def trainer_state() -> dict[str, Any]:
        return {
            "step": step,
            "position": {"epoch": int(position.epoch), "offset": int(position.offset)},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": _rng_state(device),
            "best_value": float(best_value) if best_value is not None else math.nan,
            "best_step": best_step,
            "evaluations_without_improvement": evaluations_without_improvement,
            "world_size": context.world_size,
            "elapsed_seconds": float(elapsed()),
            "tokens_seen": int(tokens_seen),
            "evaluated_at": evaluated_at,
            "last_eval": {key: float(value) for key, value in last_eval.items() if isinstance(value, (int, float))},
            # The steps since the last log line, so a resumed run logs the same means at the same steps.
            # (Under torchrun this is rank 0's share; other ranks resume with it, for that one window.)
            "log_window": {"stats": dict(window_stats), "steps": window_steps},
        }

    saved_at: dict[int, Path] = {}
    if resumed_from is not None and resumed_from.name == f"step-{step:08d}":
        saved_at[step] = resumed_from  # a run that stops at once keeps this checkpoint instead of rewriting it

    def report_progress(checkpoint: Path | None = None) -> None:
        if on_progress is not None and context.is_main:
            on_progress(step, checkpoint)

    def save() -> Path | None:
        if step in saved_at:
            return saved_at[step]
        if context.is_main:
            # The best checkpoint survives pruning, also when it was saved before a resume.
            protected = (checkpoint_name(best_step),) if best_step >= 0 else ()
            saved_at[step] = save_checkpoint(
                run_dir, step, model.state_dict(), checkpoint_config, trainer_state(), config.keep_last, protected
            )
            report_progress(saved_at[step])
        return saved_at.get(step)

    def evaluate() -> dict[str, float]:
        nonlocal best_value, best_step, evaluations_without_improvement, evaluated_at, last_eval
        model.eval()
        with torch.no_grad(), autocast_context(device, config.precision):
            metrics = task.evaluate(model)
        model.train()
        # Every rank evaluates the same held-out data with the same weights, so the metrics agree by
        # construction; taking rank 0's makes best-checkpoint and early-stopping decisions agree even
        # where GPU kernels are not bit-reproducible.
        metrics = broadcast_from_main(metrics, context)
        metrics_log.append({"step": step, **{f"eval/{key}": value for key, value in metrics.items()}})
        # Set before a best-checkpoint save below, so that checkpoint records this evaluation.
        evaluated_at, last_eval = step, metrics
        if goal is not None:
            if goal[0] not in metrics:
                raise PrefineError(f"--best-metric {goal[0]} is not among the evaluation metrics ({', '.join(metrics)}); pick one of them")
            value = metrics[goal[0]]
            if _is_improvement(value, best_value, goal[1]):
                best_value, best_step, evaluations_without_improvement = value, step, 0
                checkpoint = save()
                if checkpoint is not None:
                    set_pointer(run_dir, "best", checkpoint)
            else:
                evaluations_without_improvement += 1
        summary = "  ".join(f"{key} {value:.4g}" for key, value in metrics.items() if isinstance(value, (int, float)))
        if context.is_main:
            tqdm.write(f"step {step}: eval {summary}")
        return metrics

    if not resume:
        torch.manual_seed(config.seed)  # dropout; a resumed run restores the saved RNG state instead
    model.train()
    stopped_early = False
    # A resumed run whose time budget is already spent trains no further (it only evaluates and saves).
    time_up = budget is not None and elapsed_before >= budget
    shared_elapsed = elapsed_before
    show_progress = config.progress and context.is_main
    postfix: dict[str, str] = {}

    def budget_status(used: float) -> str:
        """Under a time budget, the text after the bar: "12:03/45:00 (32:57 left), step 1234, loss 3.214, tok_s 5012"."""
        steps = f"step {step}" + (f"/{config.max_steps}" if config.max_steps else "")
        timing = f"{tqdm.format_interval(used)}/{tqdm.format_interval(budget)} ({tqdm.format_interval(budget - used)} left)"
        return ", ".join([timing, steps, *(f"{key} {value}" for key, value in postfix.items())])

    if budget is None:
        progress = ProgressBar(
            total=config.max_steps, initial=step, unit="step", disable=not show_progress, dynamic_ncols=True, mininterval=1.0
        )
    else:
        # The bar fills with the time budget rather than with steps.
        progress = TimeBudgetBar(
            total=budget,
            initial=min(elapsed_before, budget),
            bar_format="{l_bar}{bar}| {status}",
            disable=not show_progress,
            dynamic_ncols=True,
            mininterval=1.0,
        )
        progress.status = budget_status(progress.n)
        progress.refresh()

    def show(step_elapsed: float) -> None:
        if budget is None:
            progress.update(1)
            return
        used = min(step_elapsed, budget)
        progress.status = budget_status(used)
        progress.update(used - progress.n)

    window_stats: dict[str, float] = {key: float(value) for key, value in resumed_window["stats"].items()}
    window_steps = int(resumed_window["steps"])
    window_tokens_from = tokens_seen
    window_start = time.perf_counter()
    loop_started = read_clock()
    with StopRequest() as stop:
        if config.eval_at_start and step == 0:
            last_eval = evaluate()
        while (config.max_steps == 0 or step < config.max_steps) and not time_up:
            epoch_before = position.epoch
            optimizer.zero_grad(set_to_none=True)
            step_stats: dict[str, float] = {}
            step_tokens = 0
            micro_batches = []
            # Rank 0's clock of the last step (shared), so every rank accumulates the same count.
            step_micro_batches = micro_batches_per_step(step, shared_elapsed, config)
            for _ in range(step_micro_batches):
                batch, position = task.batch_at(position, context.rank, context.world_size)
                step_tokens += int(batch.get("num_real_tokens", 0))
                micro_batches.append(batch)
            loss_kwargs: dict[str, Any] = {}
            # Per-unit losses: each micro-batch's loss is its sum over units divided by the global
            # batch's count. DDP averages over ranks, hence the world_size; micro-batches add up.
            scale = float(context.world_size) if counts_units else 1.0 / step_micro_batches
            if counts_units:
                local_units: dict[str, float] = {}
                for batch in micro_batches:
                    for name, count in task.loss_units(batch).items():
                        local_units[name] = local_units.get(name, 0.0) + float(count)
                names = sorted(local_units)
                loss_kwargs["global_units"] = dict(zip(names, all_reduce_sum([local_units[name] for name in names], context)))
            for micro, batch in enumerate(micro_batches):
                batch = _to_device(batch, device)
                sync = micro == step_micro_batches - 1 or not context.enabled
                # Gradients of inner micro-batches stay local; DDP averages them once per step.
                with contextlib.nullcontext() if sync else training_model.no_sync(), autocast_context(device, config.precision):
                    loss, stats = task.loss(training_model, batch, **loss_kwargs)
                (loss * scale).backward()
                for key, value in stats.items():
                    step_stats[key] = step_stats.get(key, 0.0) + value * scale
            if config.max_grad_norm > 0:
                step_stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm))
            optimizer.step()
            # One collective per step: the global batch's real tokens, and rank 0's clock, which decides
            # the time-budgeted learning rate and the deadline for every rank alike.
            global_tokens, shared_elapsed = all_reduce_sum([float(step_tokens), elapsed() if context.is_main else 0.0], context)
            tokens_seen += int(global_tokens)
            schedule_elapsed = shared_elapsed
            time_up = budget is not None and shared_elapsed >= budget
            scheduler.step()
            step += 1
            window_steps += 1
            for key, value in step_stats.items():
                window_stats[key] = window_stats.get(key, 0.0) + value

            if step % config.log_every == 0 or step == config.max_steps or time_up:
                window_seconds = time.perf_counter() - window_start
                # Each rank's statistics describe its own slice; the mean over ranks describes the global batch.
                names = sorted(window_stats)
                means = dict(zip(names, all_reduce_mean([window_stats[key] / window_steps for key in names], context)))
                record = {"step": step, **{f"train/{key}": value for key, value in means.items()}}
                record["train/lr"] = scheduler.get_last_lr()[0]
                if config.batch_ramp > 0:
                    record["train/batch_size"] = config.batch_size // config.gradient_accumulation_steps * step_micro_batches
                record["train/tokens_per_second"] = (tokens_seen - window_tokens_from) / max(window_seconds, 1e-9)
                record["train/elapsed_seconds"] = shared_elapsed
                record["train/tokens_seen"] = tokens_seen
                metrics_log.append(record)
                report_progress()
                postfix = {"loss": f"{means.get('loss', float('nan')):.3f}", "tok_s": f"{record['train/tokens_per_second']:.0f}"}
                if budget is None:
                    progress.set_postfix(postfix, refresh=False)
                window_stats, window_steps, window_tokens_from, window_start = {}, 0, tokens_seen, time.perf_counter()
            show(shared_elapsed)

            epoch_ended = position.epoch > epoch_before
            if (config.eval_every and step % config.eval_every == 0) or (config.eval_at_epoch_end and epoch_ended):
                last_eval = evaluate()
                if config.early_stopping_patience and evaluations_without_improvement >= config.early_stopping_patience:
                    stopped_early = True
                    if context.is_main:
                        tqdm.write(
                            f"early stopping: {config.best_metric} has not improved for {evaluations_without_improvement} evaluations"
                        )
                    break
            if config.save_every and step % config.save_every == 0:
                save()
            if any_rank(stop.requested, context):
                checkpoint = save()
                progress.close()
                # The others wait for rank 0's save: a rank that exits first would make torchrun stop the job mid-write.
                barrier(context)
                raise TrainingInterrupted(step, checkpoint)
        progress.close()
        stopped_at_deadline = time_up and not stopped_early
        if stopped_at_deadline and context.is_main:
            tqdm.write(f"time budget reached: {format_duration(budget)} ({step} steps)")
        if evaluated_at != step:
            last_eval = evaluate()
        last_checkpoint = save()
        barrier(context)  # callers on any rank may read the final checkpoint once train returns
    metrics_log.close()
    best = best_checkpoint(run_dir) if config.best_metric and context.is_main else None
    return TrainingResult(
        step, last_eval, best_value, best, last_checkpoint or run_dir, stopped_early, stopped_at_deadline, elapsed(), tokens_seen
    )
