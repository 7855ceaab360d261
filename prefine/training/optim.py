"""AdamW with BERT's weight-decay exclusions and optional layer-wise learning-rate decay, and the warm-up + decay learning-rate schedule.

A step budget (--max-steps alone) schedules by step count. A time budget (--max-time) schedules
by the fraction of the budget used, max(step / max_steps, elapsed / max_time), so the warm-up
and decay stretch over whatever number of steps the machine manages and the learning rate
reaches its end value at the deadline (cramming's budget-based schedule). The same fraction
grows the batch under --batch-ramp (`micro_batches_per_step`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch
from torch import nn

from prefine.training.config import TrainingConfig

# `encoder.layer.3.` in any model of BERT's names (a classifier's `bert.encoder.layer.3.`, an
# encoder-decoder's `encoder.encoder.layer.3.` and `decoder.bert.encoder.layer.3.`).
_BLOCK = re.compile(r"(?:^|\.)encoder\.layer\.(\d+)\.")


def layer_depths(model: nn.Module) -> dict[str, int]:
    """Each parameter's depth for layer-wise decay: embeddings (and their projection) 0, block i at i + 1, everything else on top."""
    blocks = {name: int(match.group(1)) for name, _ in model.named_parameters() if (match := _BLOCK.search(name))}
    top = max(blocks.values(), default=-1) + 2
    return {
        name: blocks[name] + 1 if name in blocks else 0 if ".embeddings." in f".{name}" or ".embeddings_project." in f".{name}" else top
        for name, _ in model.named_parameters()
    }


def build_optimizer(model: nn.Module, config: TrainingConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW where biases and LayerNorm weights get no decay (google-research/bert's exclusion list).

    Decaying a LayerNorm gain or a bias pulls it towards zero, which the network must fight
    every step, with no regularising benefit: they hold no interactions between inputs.

    With --layer-lr-decay below 1, parameters are grouped by depth as well (`layer_depths`), each
    group's learning rate scaled by decay ** (top depth - depth); the schedule multiplies every
    group alike. The full-rate groups come first, so the logged learning rate is the peak one.
    """
    depths = layer_depths(model) if config.layer_lr_decay < 1.0 else {}
    top = max(depths.values(), default=0)
    groups: dict[tuple[int, bool], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        no_decay = parameter.ndim < 2 or "LayerNorm" in name
        groups.setdefault((top - depths.get(name, top), no_decay), []).append(parameter)
    param_groups = [
        {
            "params": params,
            "weight_decay": 0.0 if no_decay else config.weight_decay,
            "lr": config.learning_rate * config.layer_lr_decay**steps_down,
        }
        for (steps_down, no_decay), params in sorted(groups.items())
    ]
    # The fused kernel does the whole update in one pass over each tensor (CUDA, and CPU since
    # PyTorch 2.4); the 30k-row embedding table makes the optimizer step a visible share of a
    # small model's step otherwise.
    return torch.optim.AdamW(
        param_groups,
        lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_epsilon,
        fused=device.type in ("cuda", "cpu"),
    )


def _decay(progress: float, schedule: str) -> float:
    """The multiplier after warm-up at `progress` (0 to 1) through the decay."""
    if schedule == "constant":
        return 1.0
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 - progress


def learning_rate_multiplier(step: int, config: TrainingConfig) -> float:
    """Linear warm-up to the peak, then linear or cosine decay to zero at max_steps (step budgets)."""
    warmup = config.resolved_warmup_steps
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return _decay((step - warmup) / max(config.max_steps - warmup, 1), config.schedule)


def budget_progress(step: int, elapsed_seconds: float, config: TrainingConfig) -> float:
    """The fraction of the training budget used (0 to 1): the larger of the step and time fractions."""
    fractions = [0.0]
    if config.max_steps > 0:
        fractions.append(step / config.max_steps)
    if config.max_time_seconds is not None:
        fractions.append(elapsed_seconds / config.max_time_seconds)
    return min(max(fractions), 1.0)


def micro_batches_per_step(step: int, elapsed_seconds: float, config: TrainingConfig) -> int:
    """How many micro-batches the optimizer step at this point of the budget accumulates.

    Without --batch-ramp, always gradient_accumulation_steps. With it, the count rises linearly
    with the fraction of the budget used, from 1 at the start to gradient_accumulation_steps once
    batch_ramp of the budget is spent (cramming: small batches make the most of early training,
    when the gradient's direction matters more than its precision; large ones reduce noise later).
    """
    full = config.gradient_accumulation_steps
    if config.batch_ramp <= 0 or full == 1:
        return full
    ramp = min(budget_progress(step, elapsed_seconds, config) / config.batch_ramp, 1.0)
    return 1 + int(ramp * (full - 1) + 0.5)


def budget_learning_rate_multiplier(step: int, elapsed_seconds: float, config: TrainingConfig) -> float:
    """The schedule under --max-time: warm-up and decay follow the fraction of the budget used.

    Warm-up is a fraction of the budget: warmup_ratio, or warmup_steps / max_steps when both
    are given; the multiplier rises linearly over it, then decays over the rest to 0 when the
    budget is spent. With a time budget and no step limit, warmup_steps >= 0 still counts
    steps (a fixed number of steps is what stabilises early training, whatever the machine):
    the multiplier is then the smaller of that step ramp and the decay over the whole budget.
    """
    progress = budget_progress(step, elapsed_seconds, config)
    if config.warmup_steps >= 0 and config.max_steps == 0:
        ramp = (step + 1) / (config.warmup_steps + 1) if step < config.warmup_steps else 1.0
        return min(ramp, _decay(progress, config.schedule))
    warmup = config.warmup_ratio if config.warmup_steps < 0 else config.warmup_steps / config.max_steps
    warmup = min(max(warmup, 0.0), 1.0)
    if progress < warmup:
        return progress / warmup
    return _decay((progress - warmup) / (1.0 - warmup) if warmup < 1.0 else 1.0, config.schedule)


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainingConfig, elapsed_seconds: Callable[[], float] | None = None
) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule as a LambdaLR, stepped once per optimizer step.

    Under --max-time, `elapsed_seconds` gives the training time used when the scheduler steps
    (the loop passes rank 0's clock, so every rank sets the same rate). The lambdas are plain
    functions either way, so the state dict (and old checkpoints) hold the same keys.
    """
    if config.max_time_seconds is None:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_multiplier(step, config))
    if elapsed_seconds is None:
        raise ValueError("a time-budgeted schedule needs the elapsed training time")
    clock = elapsed_seconds
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: budget_learning_rate_multiplier(step, clock(), config))
