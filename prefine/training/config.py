"""The training loop's configuration: optimisation, schedule, evaluation and checkpoint cadence."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Literal

from prefine.config import option
from prefine.errors import PrefineError
from prefine.training.reporting import REPORTERS, check_report_to


@dataclass
class TrainingConfig:
    max_steps: int = option(
        1000, "optimizer steps to train for (a resumed run continues up to this); 0: no step limit, only with --max-time"
    )
    max_time: str = option(
        "",
        "wall-time budget of the training loop, e.g. 45m, 1h30m, 90s, 1.5h or a number of seconds (a resumed run continues the same "
        "budget); warm-up and decay then follow the fraction of the budget used, so training ends annealed at the deadline with a "
        "final evaluation and checkpoint; with --max-steps too, the first limit reached stops",
    )
    batch_size: int = option(32, "examples per optimizer step across all processes (the global batch)")
    gradient_accumulation_steps: int = option(1, "micro-batches per optimizer step; each holds batch_size / (this x processes) examples")
    batch_ramp: float = option(
        0.0,
        "grow the batch during training (cramming's batch ramp): over this fraction of the budget (steps, or time under --max-time) "
        "the micro-batches per step rise linearly from 1 to --gradient-accumulation-steps, so the batch grows from "
        "batch_size / gradient_accumulation_steps to batch_size; 0 keeps the batch fixed",
    )
    learning_rate: float = option(
        1e-4,
        "peak learning rate of AdamW (pre-training: 1e-3, 3e-4 with --objective electra; fine-tuning's 0 picks one by model width: "
        "1e-3 at hidden 128, 3e-4 at 256, 5e-5 at 768)",
    )
    layer_lr_decay: float = option(
        1.0,
        "layer-wise learning-rate decay: the top block trains at the learning rate, each block below at this times the one above, "
        "the embeddings below the bottom block likewise; task heads and anything outside the encoder's blocks keep the full rate "
        "(ELECTRA fine-tunes with 0.8); 1 is off",
    )
    weight_decay: float = option(0.01, "AdamW weight decay (never applied to biases and LayerNorm)")
    adam_beta1: float = option(0.9, "AdamW beta1")
    adam_beta2: float = option(0.999, "AdamW beta2")
    adam_epsilon: float = option(1e-6, "AdamW epsilon")
    warmup_steps: int = option(-1, "linear warm-up steps; -1 means warmup_ratio x max_steps (under --max-time: warmup_ratio of the budget)")
    warmup_ratio: float = option(0.06, "warm-up length as a fraction of max_steps (or of the --max-time budget) when warmup_steps is -1")
    schedule: Literal["linear", "cosine", "constant"] = option("linear", "learning-rate decay after warm-up")
    max_grad_norm: float = option(1.0, "gradient clipping norm; 0 disables clipping")
    eval_every: int = option(200, "evaluate every N steps (0: only at the end)")
    eval_at_start: bool = option(False, "evaluate once before the first step, so curves start from the untrained model")
    eval_at_epoch_end: bool = option(False, "also evaluate whenever an epoch of the training data ends")
    save_every: int = option(500, "save a checkpoint every N steps (always at the end and on Ctrl-C)")
    keep_last: int = option(2, "checkpoints to keep (the best one is always kept too)")
    log_every: int = option(10, "append training loss to metrics.jsonl every N steps")
    best_metric: str = option(
        "",
        "evaluation metric that picks the best checkpoint, with the direction that is better: accuracy:max, loss:min "
        "(a task's own metrics know their direction, so plain accuracy works there; empty: the task's default, or the latest)",
    )
    early_stopping_patience: int = option(0, "stop after N evaluations without improving best_metric (0: never)")
    seed: int = option(42, "seed for weight init, data order, masking and dropout")
    device: str = option("auto", "cpu, cuda, cuda:1, ... or auto (CUDA when available)")
    precision: Literal["auto", "fp32", "bf16"] = option("auto", "auto: bf16 autocast on CUDA GPUs that support it, fp32 elsewhere")
    compile: bool = option(False, "wrap the model in torch.compile (faster steps after a slow first one)")
    num_threads: int = option(0, "CPU threads for PyTorch (0: PyTorch's default)")
    deterministic: bool = option(
        False,
        "bit-identical results on CPU for the same seed, data and settings, repeated or resumed, at a fixed --num-threads "
        "(deterministic algorithms; docs/runs-and-reproducibility.md says what it pins and what is known of its cost)",
    )
    progress: bool = option(True, "show a progress bar")
    report_to: str = option(
        "none",
        "also write the metrics logged to metrics.jsonl to an experiment tracker: none, or tensorboard (event files in the run "
        "folder; view with tensorboard --logdir runs/; needs the tensorboard extra)",
        choices=REPORTERS,
    )

    def __post_init__(self) -> None:
        budget = self.max_time_seconds  # parses --max-time: a bad duration fails here, before any work
        if not 0.0 < self.layer_lr_decay <= 1.0:
            raise PrefineError(
                f"--layer-lr-decay {self.layer_lr_decay} must be in (0, 1]: "
                "the factor between one block's learning rate and the next one up's"
            )
        if not 0.0 <= self.batch_ramp <= 1.0:
            raise PrefineError(f"--batch-ramp {self.batch_ramp} must be a fraction of the budget between 0 and 1")
        if self.batch_ramp > 0 and self.gradient_accumulation_steps == 1:
            raise PrefineError(
                "--batch-ramp grows the batch from one micro-batch to --gradient-accumulation-steps of them; with 1 there is nothing "
                "to grow: set --gradient-accumulation-steps above 1 (e.g. --batch-size 128 --gradient-accumulation-steps 4)"
            )
        parse_best_metric(self.best_metric)  # a bad direction, too
        check_report_to(self.report_to)  # an unknown tracker, or its package missing
        if self.max_steps < 0 or (self.max_steps == 0 and budget is None):
            raise PrefineError(f"--max-steps must be at least 1 (or use --max-time); got {self.max_steps}")
        if self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise PrefineError("--batch-size and --gradient-accumulation-steps must be at least 1")
        if self.batch_size % self.gradient_accumulation_steps:
            raise PrefineError(
                f"--batch-size {self.batch_size} is not divisible by --gradient-accumulation-steps {self.gradient_accumulation_steps}; "
                "choose values that divide evenly"
            )

    @property
    def max_time_seconds(self) -> float | None:
        """The --max-time budget in seconds, or None when training is limited by steps alone."""
        return None if self.max_time in ("", None) else parse_duration(self.max_time, "--max-time")

    @property
    def resolved_warmup_steps(self) -> int:
        return self.warmup_steps if self.warmup_steps >= 0 else int(self.warmup_ratio * self.max_steps)


def with_time_budget(config: TrainingConfig, explicit_steps: bool) -> TrainingConfig:
    """The config to train with once --max-time is known: no step limit (max_steps 0) when a time
    budget is set and the user did not give --max-steps, so the recipe's default step count does
    not end a time-budgeted run early; otherwise `config` unchanged (both limits: the first stops).

    Recipes call it after building (or resuming) their TrainingConfig, with
    `explicit_steps=args.max_steps is not None`.
    """
    if config.max_time_seconds is not None and not explicit_steps and config.max_steps != 0:
        return dataclasses.replace(config, max_steps=0)
    return config


_DURATION_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([dhms])", re.IGNORECASE)


def parse_duration(text: str, flag: str = "--max-time") -> float:
    """Seconds in a duration such as `45m`, `1h30m`, `90s`, `2h`, `1.5h`, `1h 30m` or a plain `600` (seconds)."""
    value = str(text).strip()
    seconds: float | None = None
    try:
        seconds = float(value)
    except ValueError:
        position, total, units = 0, 0.0, []
        for match in _DURATION_PART.finditer(value):
            if match.start() != position:
                break
            total += float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
            units.append(match.group(2).lower())
            position = match.end()
        if value and position == len(value) and len(units) == len(set(units)):
            seconds = total
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise PrefineError(f"{flag} {text!r} is not a positive duration; write it like 45m, 1h30m, 90s, 1.5h or a number of seconds")
    return seconds


def format_duration(seconds: float) -> str:
    """`45m 0s`, `1h 30m 0s`, `12s`: how the loop reports a time budget."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


# Fields that may change when a run is resumed: they steer how long and how visibly it trains,
# not what it computes per step. Changing anything else would make the resumed run a different run.
RESUMABLE_OVERRIDES = frozenset(
    {
        "max_steps",
        "max_time",
        "eval_every",
        "save_every",
        "keep_last",
        "log_every",
        "device",
        "num_threads",
        "progress",
        "compile",
        "early_stopping_patience",
        "report_to",
    }
)


def parse_best_metric(text: str) -> tuple[str, str | None]:
    """("accuracy", "max") from "accuracy:max"; the direction is None when not given."""
    name, _, direction = text.partition(":")
    if direction and direction not in ("max", "min"):
        raise PrefineError(f"--best-metric {text}: the direction after ':' must be max or min, e.g. {name}:max")
    return name, direction or None


def resolve_best_metric(text: str, directions: dict[str, str]) -> str:
    """`text` with its direction made explicit ("accuracy" -> "accuracy:max") from a task's declared directions.

    Guessing from the name would keep the worst checkpoint of a metric such as WER that should go
    down, so a metric the task does not declare needs its direction spelled out.
    """
    if not text:
        return text
    name, direction = parse_best_metric(text)
    direction = direction or directions.get(name)
    if direction is None:
        known = ", ".join(directions) or "none declared"
        raise PrefineError(
            f"--best-metric {name}: say whether higher or lower is better ({name}:max or {name}:min); the task's metrics are {known}"
        )
    return f"{name}:{direction}"
