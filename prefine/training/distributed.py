"""Process-group setup for torchrun: which rank this process is, its device, and collectives.

`torchrun` exports RANK, WORLD_SIZE and LOCAL_RANK; when they are absent the run is a single
process and every helper here degrades to a no-op, so the training loop has one code path.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from prefine.errors import PrefineError


@dataclass
class DistributedContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    if preference == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PrefineError(f"--device {preference} was asked for but PyTorch sees no CUDA GPU; use --device cpu")
    return device


def init_distributed(device_preference: str, timeout_minutes: float = 10.0) -> DistributedContext:
    """Join torchrun's process group (nccl on CUDA, gloo on CPU) or describe the single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_preference, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        # A timeout turns a rank that died (or never arrived) into an error on the others
        # instead of a hang that holds every GPU of the job forever.
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            timeout=datetime.timedelta(minutes=timeout_minutes),
        )
    return DistributedContext(rank, world_size, local_rank, device)


def all_reduce_sum(values: list[float], context: DistributedContext) -> list[float]:
    if not context.enabled:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=context.device if context.device.type == "cuda" else "cpu")
    dist.all_reduce(tensor)
    return tensor.tolist()


def any_rank(flag: bool, context: DistributedContext) -> bool:
    """True on every rank when any rank says True (all ranks must agree on stopping)."""
    return all_reduce_sum([float(flag)], context)[0] > 0


def shutdown(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
