"""The training stage: one loop, its config, optimizer/schedule and distributed setup."""

from prefine.training.config import RESUMABLE_OVERRIDES, TrainingConfig, with_time_budget
from prefine.training.distributed import DistributedContext, init_distributed, resolve_device
from prefine.training.loop import Trainer, TrainingInterrupted, TrainingResult, TrainingTask, autocast_context, train

__all__ = [
    "RESUMABLE_OVERRIDES",
    "DistributedContext",
    "Trainer",
    "TrainingConfig",
    "TrainingInterrupted",
    "TrainingResult",
    "TrainingTask",
    "autocast_context",
    "init_distributed",
    "resolve_device",
    "train",
    "with_time_budget",
]
