"""Seekable pre-training batches: any batch is a pure function of (seed, epoch, offset).

The training loop's data position is two integers, `DataPosition(epoch, offset)`, with offset
counting examples consumed in that epoch. Epoch e's instances are rebuilt from an RNG seeded by
(seed, e) and shuffled; the global batch at offset o is instances [o, o + global_batch_size);
its masks come from a torch generator seeded by (seed, e, o). So resuming needs no RNG state
and no replay of earlier batches: seek to the stored position and continue.

Masks are drawn for the whole global batch and rank r then takes its contiguous slice of
global_batch_size // world_size examples, padded to the longest sequence in the slice, so the
examples (and their masks) do not depend on how many processes share the batch.

Sequence layout: [CLS] A [SEP] B [SEP] with token_type_ids 0 for [CLS] A [SEP] and 1 for B [SEP];
single-segment instances are [CLS] A [SEP] (with a [SEP] between documents inside A), or with
separate_documents one row [CLS] document [SEP] per document A packs: the same text
per batch in more and shorter rows, each read as fine-tuning will read it.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import torch
from tokenizers import Tokenizer

from prefine.data_position import DataPosition
from prefine.errors import PrefineError
from prefine.labels import IGNORE_LABEL
from prefine.pretraining_data.config import PretrainingDataConfig
from prefine.pretraining_data.frequencies import log_frequencies
from prefine.pretraining_data.instances import (
    Instances,
    build_instances,
    documents_spanned,
    nsp_coverage_warning,
    ragged_indices,
    split_at_documents,
)
from prefine.pretraining_data.masking import continuation_lookup, mask_tokens
from prefine.pretraining_data.shards import TokenShards, split_documents, token_counts
from prefine.tokenizer import SpecialTokenIds, special_token_ids

# Seed-sequence tags that keep training and evaluation random streams apart.
TRAIN_STREAM = 0
EVAL_STREAM = 1


def _tensor(batch: dict[str, torch.Tensor | int], name: str) -> torch.Tensor:
    """A batch's tensor field (batches also carry int counts such as num_real_tokens)."""
    value = batch[name]
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"batch field {name!r} is a {type(value).__name__}, not a tensor")
    return value


def torch_generator(*seed_parts: int) -> torch.Generator:
    """A torch generator whose state is a hash of the given integers (no correlated nearby seeds)."""
    words = np.random.SeedSequence([int(part) for part in seed_parts]).generate_state(2, dtype=np.uint32)
    generator = torch.Generator()
    generator.manual_seed((int(words[0]) << 31) ^ int(words[1]))
    return generator


class PretrainingBatches:
    """Batches of masked, padded pre-training examples at any DataPosition."""

    def __init__(
        self,
        shards: TokenShards,
        doc_ids: np.ndarray,
        config: PretrainingDataConfig,
        special_ids: SpecialTokenIds,
        vocab_size: int,
        is_continuation: np.ndarray | None,
        seed: int,
        global_batch_size: int,
        eval_doc_ids: np.ndarray | None = None,
    ):
        if config.whole_word_masking and is_continuation is None:
            raise ValueError("whole-word masking needs is_continuation")
        self.shards = shards
        self.doc_ids = np.asarray(doc_ids, dtype=np.int64)
        self.eval_doc_ids = np.asarray([] if eval_doc_ids is None else eval_doc_ids, dtype=np.int64)
        self.config = config
        self.special_ids = special_ids
        self.vocab_size = vocab_size
        # Random replacements are drawn from the ids above every special token.
        self.first_normal_token_id = max(dataclasses.astuple(special_ids)) + 1
        self.is_continuation = is_continuation
        self.seed = seed
        self.global_batch_size = global_batch_size
        self.document_token_starts = shards.document_token_starts()
        self._epoch: int | None = None
        self._instances: Instances | None = None
        self._eval_batches: dict[int, list[dict]] = {}
        self._train_token_counts: np.ndarray | None = None
        if config.sentence_pairs and (message := nsp_coverage_warning(shards, self.doc_ids)):
            warnings.warn(message, stacklevel=2)
        self.instances_per_epoch(0)  # fail now, not mid-run, if the corpus cannot fill one batch

    @classmethod
    def from_tokenizer(
        cls, shards: TokenShards, tokenizer: Tokenizer, config: PretrainingDataConfig, seed: int, global_batch_size: int
    ) -> PretrainingBatches:
        """Split documents with config.eval_fraction and read special ids and word pieces from `tokenizer`."""
        train_doc_ids, eval_doc_ids = split_documents(shards, config.eval_fraction, seed)
        return cls(
            shards,
            train_doc_ids,
            config,
            special_token_ids(tokenizer),
            tokenizer.get_vocab_size(with_added_tokens=True),
            continuation_lookup(tokenizer) if config.whole_word_masking else None,
            seed,
            global_batch_size,
            eval_doc_ids=eval_doc_ids,
        )

    def _epoch_instances(self, epoch: int) -> Instances:
        if self._epoch != epoch:
            instances = build_instances(self.shards, self.doc_ids, self.config, np.random.default_rng([self.seed, TRAIN_STREAM, epoch]))
            if len(instances) < self.global_batch_size:
                raise PrefineError(
                    f"the training documents give only {len(instances)} instances at --max-seq-length "
                    f"{self.config.max_seq_length}, fewer than one batch of {self.global_batch_size}; "
                    "add text or lower --max-seq-length (or the batch size)"
                )
            self._epoch, self._instances = epoch, instances
        assert self._instances is not None
        return self._instances

    def instances_per_epoch(self, epoch: int) -> int:
        return len(self._epoch_instances(epoch))

    def batches_per_epoch(self, epoch: int) -> int:
        """Full global batches in the epoch; the last partial one is dropped."""
        return self.instances_per_epoch(epoch) // self.global_batch_size

    def batch_at(self, position: DataPosition, rank: int = 0, world_size: int = 1) -> tuple[dict[str, torch.Tensor | int], DataPosition]:
        """Rank `rank`'s share of the global batch at `position`, and the position after it."""
        if self.global_batch_size % world_size:
            raise PrefineError(f"batch size {self.global_batch_size} is not divisible by {world_size} processes; change one of them")
        epoch, offset = position
        if offset + self.global_batch_size > self.instances_per_epoch(epoch):
            epoch, offset = epoch + 1, 0
        instances = self._epoch_instances(epoch).take(slice(offset, offset + self.global_batch_size))
        batch = self._masked_batch(instances, torch_generator(self.seed, TRAIN_STREAM, epoch, offset))
        per_rank = self.global_batch_size // world_size
        batch = _rows(batch, slice(rank * per_rank, (rank + 1) * per_rank))
        next_offset = offset + self.global_batch_size
        if next_offset + self.global_batch_size > self.instances_per_epoch(epoch):
            return batch, DataPosition(epoch + 1, 0)
        return batch, DataPosition(epoch, next_offset)

    def eval_batches(self, batch_size: int) -> list[dict[str, torch.Tensor | int]]:
        """Held-out batches, identical on every call (fixed instances and masks), so eval metrics compare over training.

        Empty when there are no evaluation documents (a one-document corpus). The same list is returned each call.
        """
        if batch_size in self._eval_batches:
            return self._eval_batches[batch_size]
        if not len(self.eval_doc_ids):
            return []
        rng = np.random.default_rng([self.seed, EVAL_STREAM])
        instances = build_instances(self.shards, self.eval_doc_ids, self.config, rng)
        instances = instances.take(slice(0, self.config.max_eval_instances))
        if not len(instances):
            raise PrefineError("the held-out documents give no evaluation instances; add text or raise --eval-fraction")
        batches = [
            self._masked_batch(instances.take(slice(first, first + batch_size)), torch_generator(self.seed, EVAL_STREAM, index))
            for index, first in enumerate(range(0, len(instances), batch_size))
        ]
        self._eval_batches[batch_size] = batches
        return batches

    def unigram_baseline(self, eval_batches: list[dict[str, torch.Tensor | int]]) -> tuple[float, float] | None:
        """(loss in nats, accuracy) of a model that knows only word frequencies, on these batches' masked tokens.

        The frequencies are the training documents' (add-one smoothed); the accuracy is that of
        always predicting the most frequent token. Masked LM at first learns exactly this, so a
        held-out MLM loss still close to it means the encoder has learned little about context
        yet. None when the batches mask nothing.
        """
        labels = [_tensor(batch, "mlm_labels") for batch in eval_batches]
        targets = torch.cat([batch_labels[batch_labels != IGNORE_LABEL] for batch_labels in labels]) if labels else None
        if targets is None or not len(targets):
            return None
        counts = self.train_token_counts()
        log_probability = log_frequencies(torch.from_numpy(counts), torch.float64)
        return float(-log_probability[targets].mean()), float((targets == int(counts.argmax())).double().mean())

    def train_token_counts(self) -> np.ndarray:
        """How often each id occurs in the training documents; counted once (a pass over the corpus)."""
        if self._train_token_counts is None:
            self._train_token_counts = token_counts(self.shards, self.doc_ids)
        return self._train_token_counts

    def _masked_batch(self, instances: Instances, generator: torch.Generator) -> dict[str, torch.Tensor | int]:
        row_instance = None
        if self.config.separate_documents:
            instances, row_instance = split_at_documents(instances, self.document_token_starts)
        collated = collate(instances, self.shards, self.document_token_starts, self.special_ids, self.is_continuation)
        if row_instance is not None:
            collated["row_instance"] = torch.from_numpy(row_instance)
        masked_ids, mlm_labels = mask_tokens(
            collated["input_ids"],
            collated.pop("special_tokens_mask"),
            self.config,
            self.vocab_size,
            generator,
            first_normal_token_id=self.first_normal_token_id,
            word_start_mask=collated.pop("word_start_mask", None),
            mask_token_id=self.special_ids.mask,
        )
        collated["input_ids"] = masked_ids
        collated["mlm_labels"] = mlm_labels
        return {**collated, "num_real_tokens": int(collated["attention_mask"].sum())}


def _rows(batch: dict[str, torch.Tensor | int], instances: slice) -> dict[str, torch.Tensor | int]:
    """The rows of instances `instances` of a batch, with padding columns beyond their longest sequence dropped.

    An instance is one row, or with separate_documents one row per document it packs
    ("row_instance" says which instance each row came from).
    """
    rows: slice | torch.Tensor = instances
    if "row_instance" in batch:
        row_instance = _tensor(batch, "row_instance")
        rows = (row_instance >= instances.start) & (row_instance < instances.stop)
    attention_mask = _tensor(batch, "attention_mask")[rows]
    length = int(attention_mask.sum(dim=1).max())
    sliced: dict[str, torch.Tensor | int] = {
        name: value[rows, :length] if value.dim() == 2 else value[rows] for name, value in batch.items() if isinstance(value, torch.Tensor)
    }
    sliced["num_real_tokens"] = int(attention_mask.sum())
    return sliced


def collate(
    instances: Instances,
    shards: TokenShards,
    document_token_starts: np.ndarray,
    special_ids: SpecialTokenIds,
    is_continuation: np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    """Lay instances out as padded [B, L] tensors with vectorized gathers from the token memmap.

    Returns input_ids, token_type_ids, attention_mask (LongTensor[B, L]), special_tokens_mask
    (BoolTensor[B, L], True at [CLS]/[SEP]/[PAD] positions, decided by position so literal
    "[SEP]" text cannot fool it), next_sentence_label (LongTensor[B]) and, given
    is_continuation, word_start_mask (BoolTensor[B, L]).
    """
    num_rows = len(instances)
    a_length = instances.a_end - instances.a_start
    b_length = instances.b_end - instances.b_start
    # Packed MLM segments may run across documents; each boundary gets a [SEP].
    a_first_document, a_last_document = documents_spanned(instances, document_token_starts)
    a_separators = a_last_document - a_first_document
    b_column = 2 + a_length + a_separators  # after [CLS] A [SEP]
    lengths = b_column + b_length + (b_length > 0)
    width = int(lengths.max())
    columns = np.arange(width)
    inside = columns < lengths[:, None]

    # Start from [SEP] everywhere inside each sequence; after writing [CLS] and the text tokens,
    # exactly the separator positions still hold it.
    input_ids = np.where(inside, special_ids.sep, special_ids.pad).astype(np.int64)
    input_ids[:, 0] = special_ids.cls
    is_text = np.zeros((num_rows, width), dtype=bool)

    a_rows, a_within = ragged_indices(a_length)
    a_positions = instances.a_start[a_rows] + a_within
    a_documents = np.searchsorted(document_token_starts, a_positions, side="right") - 1
    a_columns = 1 + a_within + (a_documents - a_first_document[a_rows])
    b_rows, b_within = ragged_indices(b_length)
    rows = np.concatenate([a_rows, b_rows])
    text_columns = np.concatenate([a_columns, b_column[b_rows] + b_within])
    positions = np.concatenate([a_positions, instances.b_start[b_rows] + b_within])
    input_ids[rows, text_columns] = shards.tokens[positions]
    is_text[rows, text_columns] = True

    batch = {
        "input_ids": torch.from_numpy(input_ids),
        "token_type_ids": torch.from_numpy((inside & (columns >= b_column[:, None]) & (b_length > 0)[:, None]).astype(np.int64)),
        "attention_mask": torch.from_numpy(inside.astype(np.int64)),
        "special_tokens_mask": torch.from_numpy(~is_text),
        "next_sentence_label": torch.from_numpy(instances.nsp_label.astype(np.int64)),
    }
    if is_continuation is not None:
        batch["word_start_mask"] = torch.from_numpy(is_text & ~is_continuation[input_ids])
    return batch
