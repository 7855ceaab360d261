"""AdamW with BERT's weight-decay exclusions, and the warm-up + decay learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from prefine.training.config import TrainingConfig


def build_optimizer(model: nn.Module, config: TrainingConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW where biases and LayerNorm weights get no decay (google-research/bert's exclusion list).

    Decaying a LayerNorm gain or a bias pulls it towards zero, which the network must fight
    every step, with no regularising benefit: they hold no interactions between inputs.
    """
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim < 2 or "LayerNorm" in name else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # The fused kernel does the whole update in one pass over each tensor (CUDA, and CPU since
    # PyTorch 2.4); the 30k-row embedding table makes the optimizer step a visible share of a
    # small model's step otherwise.
    return torch.optim.AdamW(
        groups,
        lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_epsilon,
        fused=device.type in ("cuda", "cpu"),
    )


def learning_rate_multiplier(step: int, config: TrainingConfig) -> float:
    """Linear warm-up to the peak, then linear or cosine decay to zero at max_steps."""
    warmup = config.resolved_warmup_steps
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if config.schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(config.max_steps - warmup, 1)
    progress = min(max(progress, 0.0), 1.0)
    if config.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 - progress


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainingConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_multiplier(step, config))
