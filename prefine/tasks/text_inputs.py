"""Texts as model inputs, shared by every text task: tokenize once, store flat, pad per batch, predict in file order.

`encode_examples` tokenizes texts (or text pairs) once with the fast tokenizer, exactly like the
NSP inputs of pre-training: [CLS] A [SEP] B [SEP] with segment 0 up to the first [SEP], cut to a
maximum length. The result, `EncodedExamples`, keeps every example's tokens back to back in one
array, so a subset or a padded batch is a few numpy operations and no per-token Python.
`ExampleBatches` serves seekable, length-grouped training batches of them (see `batching`), and
`predict_logits` runs a model over them longest first and puts the outputs back in input order.
Classification, generation and tasks written outside the package (docs/adding-a-task.md) all
encode their texts here; none imports another task for it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn

from prefine.errors import PrefineError
from prefine.tasks.batching import SeekableBatches, length_grouped
from prefine.tokenizer import copy_tokenizer

ENCODE_CHUNK = 10_000  # texts per encode_batch call: big enough for Rust's parallelism, bounded memory


@dataclass
class EncodedExamples:
    """Tokenized examples, stored flat: example i is tokens offsets[i]:offsets[i + 1]."""

    input_ids: np.ndarray  # int32, all examples back to back
    token_type_ids: np.ndarray  # int8, same layout
    offsets: np.ndarray  # int64, N + 1 entries
    labels: np.ndarray | None = None  # int64 class ids or float32 targets, one per example

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, indices: np.ndarray) -> EncodedExamples:
        """The examples at `indices`, in that order (e.g. a fraction of the training set)."""
        indices = np.asarray(indices, dtype=np.int64)
        lengths = self.lengths[indices]
        new_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        # Token k of the subset comes from old position k + (old start - new start) of its example.
        token_positions = np.arange(int(new_offsets[-1])) + np.repeat(self.offsets[indices] - new_offsets[:-1], lengths)
        return EncodedExamples(
            self.input_ids[token_positions],
            self.token_type_ids[token_positions],
            new_offsets,
            None if self.labels is None else self.labels[indices],
        )

    def example_ids(self, index: int) -> list[int]:
        return self.input_ids[self.offsets[index] : self.offsets[index + 1]].tolist()

    def collate(self, indices: np.ndarray, pad_id: int) -> dict[str, Any]:
        """The examples at `indices`, padded to the longest of them, as model inputs (no per-token Python)."""
        lengths = self.lengths[indices]
        width = int(lengths.max(initial=1))
        real = np.arange(width) < lengths[:, None]
        token_positions = (self.offsets[indices][:, None] + np.arange(width))[real]  # row-major, like real's True cells
        input_ids = np.full((len(indices), width), pad_id, dtype=np.int64)
        token_type_ids = np.zeros((len(indices), width), dtype=np.int64)
        input_ids[real] = self.input_ids[token_positions]
        token_type_ids[real] = self.token_type_ids[token_positions]
        batch: dict[str, Any] = {
            "input_ids": torch.from_numpy(input_ids),
            "token_type_ids": torch.from_numpy(token_type_ids),
            "attention_mask": torch.from_numpy(real.astype(np.int64)),
            "num_real_tokens": int(lengths.sum()),
        }
        if self.labels is not None:
            batch["labels"] = torch.from_numpy(self.labels[indices])
        return batch


def truncating_copy(tokenizer: Tokenizer, max_seq_length: int) -> Tokenizer:
    # A private copy: enabling truncation on the caller's tokenizer would silently change
    # every later use of it (saving it, pre-training shards, QA windows).
    copy = copy_tokenizer(tokenizer)
    copy.no_padding()
    copy.enable_truncation(max_seq_length, strategy="longest_first")
    return copy


def encode_examples(
    texts: Sequence[str],
    text_pairs: Sequence[str] | None,
    tokenizer: Tokenizer,
    max_seq_length: int,
    labels: np.ndarray | None = None,
    prepared_encoder: bool = False,
) -> EncodedExamples:
    """Tokenize texts (or text pairs) with [CLS]/[SEP] and segment ids, truncated to max_seq_length.

    With `prepared_encoder`, `tokenizer` already is a `truncating_copy` (a predictor makes it once).
    """
    if text_pairs is not None and len(text_pairs) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(text_pairs)} text pairs")
    encoder = tokenizer if prepared_encoder else truncating_copy(tokenizer, max_seq_length)
    # encode_batch_fast (tokenizers >= 0.20) skips the character offsets, which these inputs never need.
    encode_batch = getattr(encoder, "encode_batch_fast", encoder.encode_batch)
    id_chunks, type_chunks, length_chunks = [], [], []
    for start in range(0, len(texts), ENCODE_CHUNK):
        chunk = texts[start : start + ENCODE_CHUNK]
        inputs: list[Any] = list(zip(chunk, text_pairs[start : start + ENCODE_CHUNK])) if text_pairs is not None else list(chunk)
        encodings = encode_batch(inputs)
        ids = [encoding.ids for encoding in encodings]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        total = int(lengths.sum())
        id_chunks.append(np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=total))
        type_chunks.append(
            np.fromiter(itertools.chain.from_iterable(encoding.type_ids for encoding in encodings), dtype=np.int8, count=total)
        )
        length_chunks.append(lengths)
    lengths = np.concatenate(length_chunks) if length_chunks else np.zeros(0, dtype=np.int64)
    return EncodedExamples(
        input_ids=np.concatenate(id_chunks) if id_chunks else np.zeros(0, dtype=np.int32),
        token_type_ids=np.concatenate(type_chunks) if type_chunks else np.zeros(0, dtype=np.int8),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        labels=labels,
    )


class ExampleBatches(SeekableBatches):
    """Training batches of labelled encoded examples, length-grouped and padded per batch (see SeekableBatches)."""

    def __init__(
        self,
        examples: EncodedExamples,
        batch_size: int,
        pad_id: int,
        seed: int,
        group_by_length: bool = True,
        shuffle: bool = True,
    ):
        if examples.labels is None:
            raise ValueError("training examples need labels")
        if not len(examples):
            raise PrefineError("the training data holds no examples; point at a file with data")
        super().__init__(len(examples), batch_size, seed, shuffle)
        self.examples = examples
        self.pad_id = pad_id
        self.group_by_length = group_by_length

    def arrange(self, order: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        return length_grouped(order, self.examples.lengths, self.batch_size, rng) if self.group_by_length else order

    def collate(self, indices: np.ndarray) -> dict[str, Any]:
        return self.examples.collate(indices, self.pad_id)


def sequential_batches(examples: EncodedExamples, batch_size: int, pad_id: int) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
    """(indices, batch) over every example once, longest first, so little padding is computed."""
    order = np.argsort(-examples.lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        yield indices, examples.collate(indices, pad_id)


def predict_logits(model: nn.Module, examples: EncodedExamples, batch_size: int, device: torch.device, pad_id: int = 0) -> np.ndarray:
    """Logits [N, num_labels] in the order of `examples`, from a model with a sequence-level head.

    The pad id only fills masked positions, which no real token attends to, so it does not
    change the logits; it is a parameter for tidiness with vocabularies whose [PAD] is not 0.
    The model's mode is the caller's: the loop and a loaded predictor put it in eval mode once,
    and prediction never flips it (a server shares one model between requests).
    """
    order_parts, logit_parts = [], []
    with torch.no_grad():
        for indices, batch in sequential_batches(examples, batch_size, pad_id):
            output = model(
                input_ids=batch["input_ids"].to(device, non_blocking=True),
                token_type_ids=batch["token_type_ids"].to(device, non_blocking=True),
                attention_mask=batch["attention_mask"].to(device, non_blocking=True),
            )
            order_parts.append(indices)
            logit_parts.append(output.logits.float())  # kept on the device: one transfer at the end
    if not logit_parts:
        num_labels = model.num_labels
        if not isinstance(num_labels, int):
            raise TypeError(f"{type(model).__name__} has no integer num_labels; predict_logits needs a sequence-level head")
        return np.zeros((0, num_labels), dtype=np.float32)
    sorted_logits = torch.cat(logit_parts).cpu().numpy()
    logits = np.empty_like(sorted_logits)
    logits[np.concatenate(order_parts)] = sorted_logits
    return logits
