"""Seekable fine-tuning batches: any batch is a pure function of (seed, epoch, offset).

Every epoch is a fresh order drawn from (seed, epoch), so a data position can be recomputed
without replaying the batches before it (exact resume is a seek). `batch_size` is the global
micro-batch of all ranks together; each rank takes a contiguous slice of it. A single process
keeps the last, partial batch of an epoch (fine-tuning sets are small, and every example
counts); with several processes the partial batch is dropped, so every rank gets an equal share.
Tasks subclass `SeekableBatches` and say how to arrange an epoch and how to collate examples;
their loop adapters inherit `TrainsOnBatches`, which serves the loop from those batches.
`length_grouped` is the epoch arrangement every text task uses: batches of similar lengths, so
padding stays small, in a random batch order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prefine.data_position import DataPosition
from prefine.errors import PrefineError

# Every length-grouped chunk holds this many batches: large enough that batches come out of
# similar lengths, small enough that the order stays random (Hugging Face's LengthGroupedSampler uses 50).
LENGTH_GROUP_BATCHES = 50


def length_grouped(order: np.ndarray, lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None) -> np.ndarray:
    """Sort `order` by length within chunks of LENGTH_GROUP_BATCHES batches, then shuffle whole batches."""
    chunk = batch_size * LENGTH_GROUP_BATCHES
    grouped = np.concatenate([part[np.argsort(-lengths[part], kind="stable")] for part in np.split(order, range(chunk, len(order), chunk))])
    num_full = len(grouped) // batch_size
    full_batches = grouped[: num_full * batch_size].reshape(num_full, batch_size)
    if rng is not None and num_full:
        full_batches = full_batches[rng.permutation(num_full)]
        # The batch holding the longest example goes first, so running out of memory happens at
        # step 1 rather than hours in (the same trick as Hugging Face's LengthGroupedSampler).
        longest = int(np.argmax(lengths[full_batches].max(axis=1)))
        full_batches[[0, longest]] = full_batches[[longest, 0]]
    # A partial batch stays last, so every batch but the last starts at a multiple of batch_size.
    return np.concatenate([full_batches.reshape(-1), grouped[num_full * batch_size :]])


class SeekableBatches:
    unit = "examples"  # what one item is called in messages ("windows" for QA)

    def __init__(self, num_items: int, batch_size: int, seed: int, shuffle: bool = True):
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self._cached_epoch: int | None = None
        self._cached_order = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return self.num_items

    def start_position(self) -> DataPosition:
        return DataPosition(0, 0)

    def arrange(self, order: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """Reorder an epoch's shuffled indices (e.g. group by length); the identity by default."""
        return order

    def collate(self, indices: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The item indices of `epoch` in training order."""
        if self._cached_epoch != epoch:
            rng = np.random.default_rng([self.seed, epoch]) if self.shuffle else None
            order = rng.permutation(self.num_items) if rng is not None else np.arange(self.num_items)
            self._cached_epoch, self._cached_order = epoch, self.arrange(order, rng)
        return self._cached_order

    def items_per_epoch(self, world_size: int) -> int:
        if world_size == 1:
            return self.num_items
        usable = self.num_items // self.batch_size * self.batch_size
        if not usable:
            raise PrefineError(
                f"the training data has {self.num_items} {self.unit}, fewer than one batch of {self.batch_size} "
                f"for {world_size} processes; lower --batch-size"
            )
        return usable

    def batch_at(self, position: DataPosition, rank: int, world_size: int) -> tuple[dict[str, Any], DataPosition]:
        if self.batch_size % world_size:
            raise PrefineError(
                f"a batch of {self.batch_size} {self.unit} cannot be split evenly over {world_size} processes; change --batch-size"
            )
        epoch_size = self.items_per_epoch(world_size)
        epoch, offset = position.epoch, position.offset
        if offset >= epoch_size:
            epoch, offset = epoch + 1, 0
        indices = self.epoch_order(epoch)[offset : min(offset + self.batch_size, epoch_size)]
        share = len(indices) // world_size
        batch = self.collate(indices[rank * share : (rank + 1) * share])
        offset += len(indices)
        next_position = DataPosition(epoch + 1, 0) if offset >= epoch_size else DataPosition(epoch, offset)
        return batch, next_position


class TrainsOnBatches:
    """The data half of the loop's `TrainingTask` protocol, served by a task's `SeekableBatches`."""

    train_batches: SeekableBatches

    def start_position(self) -> DataPosition:
        return self.train_batches.start_position()

    def batch_at(self, position: DataPosition, rank: int, world_size: int) -> tuple[dict[str, Any], DataPosition]:
        return self.train_batches.batch_at(position, rank, world_size)
