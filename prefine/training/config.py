"""The training loop's configuration: optimisation, schedule, evaluation and checkpoint cadence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prefine.config import option
from prefine.errors import PrefineError


@dataclass
class TrainingConfig:
    max_steps: int = option(1000, "optimizer steps to train for (a resumed run continues up to this)")
    batch_size: int = option(32, "examples per optimizer step across all processes (the global batch)")
    gradient_accumulation_steps: int = option(1, "micro-batches per optimizer step; each holds batch_size / (this x processes) examples")
    learning_rate: float = option(1e-4, "peak learning rate of AdamW")
    weight_decay: float = option(0.01, "AdamW weight decay (never applied to biases and LayerNorm)")
    adam_beta1: float = option(0.9, "AdamW beta1")
    adam_beta2: float = option(0.999, "AdamW beta2")
    adam_epsilon: float = option(1e-6, "AdamW epsilon")
    warmup_steps: int = option(-1, "linear warm-up steps; -1 means warmup_ratio x max_steps")
    warmup_ratio: float = option(0.06, "warm-up length as a fraction of max_steps when warmup_steps is -1")
    schedule: Literal["linear", "cosine", "constant"] = option("linear", "learning-rate decay after warm-up")
    max_grad_norm: float = option(1.0, "gradient clipping norm; 0 disables clipping")
    eval_every: int = option(200, "evaluate every N steps (0: only at the end)")
    eval_at_start: bool = option(False, "evaluate once before the first step, so curves start from the untrained model")
    eval_at_epoch_end: bool = option(False, "also evaluate whenever an epoch of the training data ends")
    save_every: int = option(500, "save a checkpoint every N steps (always at the end and on Ctrl-C)")
    keep_last: int = option(2, "checkpoints to keep (the best one is always kept too)")
    log_every: int = option(10, "append training loss to metrics.jsonl every N steps")
    best_metric: str = option("", "evaluation metric that picks the best checkpoint, e.g. accuracy or loss (empty: keep the latest)")
    early_stopping_patience: int = option(0, "stop after N evaluations without improving best_metric (0: never)")
    seed: int = option(42, "seed for weight init, data order, masking and dropout")
    device: str = option("auto", "cpu, cuda, cuda:1, ... or auto (CUDA when available)")
    precision: Literal["auto", "fp32", "bf16"] = option("auto", "auto: bf16 autocast on CUDA GPUs that support it, fp32 elsewhere")
    compile: bool = option(False, "wrap the model in torch.compile (faster steps after a slow first one)")
    num_threads: int = option(0, "CPU threads for PyTorch (0: PyTorch's default)")
    progress: bool = option(True, "show a progress bar")

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise PrefineError(f"--max-steps must be at least 1 (got {self.max_steps})")
        if self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise PrefineError("--batch-size and --gradient-accumulation-steps must be at least 1")
        if self.batch_size % self.gradient_accumulation_steps:
            raise PrefineError(
                f"--batch-size {self.batch_size} is not divisible by --gradient-accumulation-steps {self.gradient_accumulation_steps}; "
                "choose values that divide evenly"
            )

    @property
    def resolved_warmup_steps(self) -> int:
        return self.warmup_steps if self.warmup_steps >= 0 else int(self.warmup_ratio * self.max_steps)


# Fields that may change when a run is resumed: they steer how long and how visibly it trains,
# not what it computes per step. Changing anything else would make the resumed run a different run.
RESUMABLE_OVERRIDES = frozenset(
    {"max_steps", "eval_every", "save_every", "keep_last", "log_every", "device", "num_threads", "progress", "compile", "early_stopping_patience"}
)
