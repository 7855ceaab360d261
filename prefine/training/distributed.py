"""Process-group setup for torchrun: which rank this process is, its device, and collectives.

`torchrun` exports RANK, WORLD_SIZE and LOCAL_RANK; when they are absent the run is a single
process and every helper here degrades to a no-op, so the training loop has one code path.

Every collective here must be reached by all ranks in the same order; the loop only calls them
at points that depend on the step count alone (never on one rank's data), so no rank can wait
for a collective the others will never enter.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

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


def check_batch_split(batch_size: int, gradient_accumulation_steps: int, world_size: int) -> int:
    """Examples per process per micro-batch; a PrefineError when the global batch cannot be shared evenly.

    Every rank computes the same answer from the same flags, so all of them fail together here,
    before any of them can block in a collective waiting for the others.
    """
    micro_batch = batch_size // gradient_accumulation_steps
    if batch_size % gradient_accumulation_steps or micro_batch % world_size:
        raise PrefineError(
            f"global batch {batch_size} cannot be split into {gradient_accumulation_steps} accumulation steps x {world_size} processes "
            f"evenly; make --batch-size a multiple of {gradient_accumulation_steps * world_size} (or change --gradient-accumulation-steps "
            "or the number of processes)"
        )
    return micro_batch // world_size


def _collective_device() -> torch.device:
    # gloo reduces CPU tensors; nccl only reduces tensors on this process's GPU.
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(values: list[float], context: DistributedContext) -> list[float]:
    if not context.enabled:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(tensor)
    return tensor.tolist()


def all_reduce_mean(values: list[float], context: DistributedContext) -> list[float]:
    return [value / context.world_size for value in all_reduce_sum(values, context)]


def any_rank(flag: bool, context: DistributedContext) -> bool:
    """True on every rank when any rank says True (all ranks must agree on stopping)."""
    return all_reduce_sum([float(flag)], context)[0] > 0


def barrier(context: DistributedContext) -> None:
    """Wait until every rank gets here (e.g. until rank 0 has written what the others will read)."""
    if context.enabled:
        dist.barrier()


def wait_for_main(context: DistributedContext, timeout_hours: float = 24.0) -> None:
    """Barrier for rank 0's one-off preparation (tokenizer training, the token cache), which may take
    far longer than the process group's timeout. A rank that crashes meanwhile still ends the job:
    torchrun stops the others when one exits with an error."""
    if not context.enabled:
        return
    group = dist.new_group(backend="gloo", timeout=datetime.timedelta(hours=timeout_hours))
    dist.barrier(group=group)
    dist.destroy_process_group(group)


def broadcast_from_main(value: Any, context: DistributedContext) -> Any:
    """Rank 0's `value` on every rank (any picklable object)."""
    if not context.enabled:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def global_mean_weights(local_counts: list[int]) -> list[float]:
    """For losses averaged over a varying number of items per rank (masked tokens, NSP pairs):
    the factor local_count x world_size / count over all ranks, one per count.

    DDP averages gradients over ranks, so without it the gradient would be a mean of per-rank
    means, which weighs a rank's tokens more when it happens to hold fewer of them. Scaling each
    rank's mean by this factor makes the average the mean over the whole global batch: the same
    gradient as one process holding the whole batch. It reads the process group torchrun set up
    (no context needed by the task) and is exactly 1.0 for a single process with items.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [1.0 if count else 0.0 for count in local_counts]
    totals = torch.tensor(local_counts, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(totals)
    world_size = dist.get_world_size()
    return [count * world_size / total if total else 0.0 for count, total in zip(local_counts, totals.tolist())]
