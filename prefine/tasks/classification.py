"""Sentence and sentence-pair classification (and regression): data, batches, the task, prediction.

The pieces, in the order a fine-tuning run uses them:

1. `load_classification_data` reads the training and evaluation sets (see `task_data`),
   finds the text, text-pair and label columns when they are not given, decides between
   classification and regression, fixes the label order (`LabelSet`) and tokenizes every text
   once with the fast tokenizer (`encode_examples`). Pairs are encoded exactly like the NSP
   inputs of pre-training: [CLS] A [SEP] B [SEP] with segment 0 up to the first [SEP].
2. `ClassificationBatches` serves training batches from a data position (epoch, examples
   consumed), so a resumed run sees exactly the batches the interrupted one would have seen.
   Batches group examples of similar length and are padded only to their own longest
   example: a sentiment set where most reviews are short and a few are long pays for the long
   ones only in the few batches that hold them.
3. `ClassificationTask` plugs into the training loop; `evaluate` scores the eval set with
   `predict_logits`, which runs length-sorted batches and puts the outputs back in file order.
4. `write_predictions` writes labels and class probabilities as JSONL or TSV.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn

from prefine.config import option
from prefine.errors import PrefineError
from prefine.metrics.classification import classification_metrics, format_metrics_table, regression_metrics
from prefine.model import BertConfig
from prefine.tasks.batching import SeekableBatches, TrainsOnBatches, length_grouped
from prefine.tasks.interface import (
    Evaluation,
    FinetuneTask,
    Predictor,
    PreparedData,
    is_line_input,
    notice_once,
    read_text_lines,
    register_task,
    subsample_indices,
)
from prefine.tasks.selection import DevSplit, stratified_dev_indices, write_split
from prefine.tasks.task_data import RecordTable, read_records
from prefine.training.loop import TrainingTask

# Column names that obviously hold the text, in order of preference. Pair layouts are tried
# first, so QNLI's (question, sentence) is read as a pair and not as the lone "sentence".
TEXT_PAIR_COLUMNS = (
    ("sentence1", "sentence2"),
    ("premise", "hypothesis"),
    ("question1", "question2"),
    ("question", "sentence"),
    ("question", "passage"),
    ("text_a", "text_b"),
    ("text1", "text2"),
)
TEXT_COLUMNS = ("sentence", "text", "content", "document", "review", "comment", "sentence1", "premise", "question", "text_a", "text1")
LABEL_COLUMNS = ("label", "labels", "gold_label", "class", "sentiment", "score", "target")
ENCODE_CHUNK = 10_000  # texts per encode_batch call: big enough for Rust's parallelism, bounded memory


@dataclass
class ClassificationDataConfig:
    text_column: str | None = option(None, "column holding the text (default: detected, e.g. sentence, text, review, sentence1, premise)")
    text_pair_column: str | None = option(
        None, "column holding the second text of a pair task (default: the partner of a detected pair column, e.g. sentence2 or hypothesis)"
    )
    label_column: str | None = option(None, "column holding the label (default: detected, e.g. label, class, sentiment, score)")
    max_seq_length: int = option(
        128,
        "longest input in tokens, [CLS] and [SEP] included; classification truncates longer texts (the longer text of a pair first), "
        "NER reads longer sentences in overlapping windows (--stride)",
    )
    task_type: Literal["auto", "classification", "regression"] = option(
        "auto", "auto: regression when every training label is a number and some are not whole (3.8), classification otherwise"
    )
    dataset_split: str = option(
        "train", "split to train on when the training data is a Hugging Face dataset (the eval set defaults to validation)"
    )

    def __post_init__(self) -> None:
        if self.max_seq_length < 4:
            raise PrefineError(f"--max-seq-length {self.max_seq_length} leaves no room for text beside [CLS] and [SEP]; use 64 or more")


# ---------------------------------------------------------------------------------------------
# Columns


@dataclass
class ClassificationColumns:
    text: str
    text_pair: str | None
    label: str | None


def _find(candidates: Sequence[str], available: list[str]) -> str | None:
    by_lowercase = {name.lower(): name for name in available}
    return next((by_lowercase[name] for name in candidates if name in by_lowercase), None)


def _partner_column(text_column: str, available: list[str]) -> str | None:
    for first, second in TEXT_PAIR_COLUMNS:
        if text_column.lower() == first:
            partner = _find([second], available)
            if partner is not None:
                return partner
    return None


def choose_columns(table: RecordTable, config: ClassificationDataConfig, need_label: bool = True) -> ClassificationColumns:
    """The text, text-pair and label columns: the configured ones (checked) or detected ones (announced)."""
    available = table.column_names
    listing = ", ".join(available)
    detected = []
    if config.text_column is not None:
        table.column(config.text_column, "text column", "--text-column")
        text = config.text_column
    else:
        pair_first = [first for first, second in TEXT_PAIR_COLUMNS if _find([first], available) and _find([second], available)]
        text = _find(pair_first[:1] or TEXT_COLUMNS, available)
        if text is None:
            raise PrefineError(
                f"cannot tell which column of {table.source} holds the text (columns: {listing}); choose one with --text-column"
            )
        detected.append(f"text '{text}'")
    if config.text_pair_column is not None:
        table.column(config.text_pair_column, "text pair column", "--text-pair-column")
        text_pair = config.text_pair_column
    else:
        text_pair = _partner_column(text, available)
        if text_pair is not None:
            detected.append(f"text pair '{text_pair}'")
    if config.label_column is not None:
        if need_label or config.label_column in available:
            table.column(config.label_column, "label column", "--label-column")
        label = config.label_column if config.label_column in available else None
    else:
        label = _find([name for name in LABEL_COLUMNS if name not in (text.lower(), (text_pair or "").lower())], available)
        if label is None and need_label:
            raise PrefineError(
                f"cannot tell which column of {table.source} holds the label (columns: {listing}); choose one with --label-column"
            )
        if label is not None:
            detected.append(f"label '{label}'")
    if detected:
        notice_once(
            f"{table.source}: using {', '.join(detected)} (detected; override with --text-column, --text-pair-column, --label-column)"
        )
    return ClassificationColumns(text, text_pair, label)


# ---------------------------------------------------------------------------------------------
# Labels


def _as_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _no_location(index: int) -> str:
    return f"record {index + 1}"


@dataclass
class LabelSet:
    """The classes in id order (or a regression target), stored with the model as id2label/label2id.

    Class ids are assigned in a fixed order so that the same training data always gives the
    same head: numerically when every label is a number ("2" before "10", so GLUE's 0/1 become
    ids 0/1), otherwise in string order ("negative" before "positive").
    """

    names: list[str]
    is_regression: bool = False

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.names)

    @classmethod
    def from_training_labels(
        cls,
        raw_labels: Sequence[str],
        task_type: str = "auto",
        source: str = "the training data",
        locate: Callable[[int], str] = _no_location,
    ) -> LabelSet:
        labels = [label.strip() for label in raw_labels]
        for index, label in enumerate(labels):
            if not label:
                raise PrefineError(f"{source} has an empty label ({locate(index)}); fill it in or drop the row")
        unique = sorted(set(labels))
        numbers = {label: _as_number(label) for label in unique}
        all_numeric = all(value is not None for value in numbers.values())
        if task_type == "regression" or (task_type == "auto" and all_numeric and any(not value.is_integer() for value in numbers.values())):
            if not all_numeric:
                label = next(label for label in unique if numbers[label] is None)
                raise PrefineError(
                    f"{source} has the label '{label}' ({locate(labels.index(label))}), which is not a number; regression needs numeric labels (or use --task-type classification)"
                )
            return cls([], is_regression=True)
        if len(unique) < 2:
            raise PrefineError(
                f"{source} has a single label value ('{unique[0] if unique else ''}'); a classifier needs at least two classes in the training data"
            )
        names = sorted(unique, key=lambda label: (numbers[label], label)) if all_numeric else unique
        return cls(names)

    def encode(self, raw_labels: Sequence[str], source: str, locate: Callable[[int], str] = _no_location) -> np.ndarray:
        """Class ids (int64) or regression targets (float32); an unknown label names its line."""
        labels = [label.strip() for label in raw_labels]
        if self.is_regression:
            values = [_as_number(label) for label in labels]
            for index, value in enumerate(values):
                if value is None:
                    raise PrefineError(
                        f"{source} has the label '{labels[index]}' ({locate(index)}), which is not a number; this is a regression task"
                    )
            return np.asarray(values, dtype=np.float32)
        label_to_id = {name: index for index, name in enumerate(self.names)}
        ids = [label_to_id.get(label, -1) for label in labels]
        if -1 in ids:
            first = ids.index(-1)
            unseen = sum(1 for value in ids if value == -1)
            raise PrefineError(
                f"{source} has label '{labels[first]}' ({locate(first)}) not seen in training (labels: {', '.join(self.names)}); "
                f"{unseen} row(s) have unseen labels: add such examples to the training data or remove them from {source}"
            )
        return np.asarray(ids, dtype=np.int64)

    def to_json(self) -> dict[str, Any]:
        """The keys Hugging Face's config.json uses, so an exported model keeps its label names."""
        names = ["LABEL_0"] if self.is_regression else self.names
        return {
            "problem_type": "regression" if self.is_regression else "single_label_classification",
            "id2label": {str(index): name for index, name in enumerate(names)},
            "label2id": {name: index for index, name in enumerate(names)},
        }

    @classmethod
    def from_json(cls, values: dict[str, Any], source: str = "config.json") -> LabelSet:
        if values.get("problem_type") == "regression":
            return cls([], is_regression=True)
        id2label = values.get("id2label")
        if not isinstance(id2label, dict) or not id2label:
            raise PrefineError(f"{source} has no id2label mapping; it was not written by a classification fine-tuning run")
        try:
            by_id = {int(key): str(name) for key, name in id2label.items()}
        except ValueError:
            raise PrefineError(f"{source}: id2label keys must be class ids (0, 1, ...), got {', '.join(map(str, id2label))}") from None
        if sorted(by_id) != list(range(len(by_id))) or len(set(by_id.values())) != len(by_id):
            raise PrefineError(f"{source}: id2label {id2label} must map the ids 0..n-1 to distinct labels; fix the mapping")
        return cls([by_id[index] for index in range(len(by_id))])


# ---------------------------------------------------------------------------------------------
# Encoding


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
    copy = Tokenizer.from_str(tokenizer.to_str())
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
    # encode_batch_fast (tokenizers >= 0.20) skips the character offsets, which classification never needs.
    encode_batch = getattr(encoder, "encode_batch_fast", encoder.encode_batch)
    id_chunks, type_chunks, length_chunks = [], [], []
    for start in range(0, len(texts), ENCODE_CHUNK):
        inputs = texts[start : start + ENCODE_CHUNK]
        if text_pairs is not None:
            inputs = list(zip(inputs, text_pairs[start : start + ENCODE_CHUNK]))
        encodings = encode_batch(list(inputs))
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


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass
class ClassificationInputs:
    """The texts (and raw labels) of one source, in file order."""

    texts: list[str]
    text_pairs: list[str] | None
    raw_labels: list[str] | None
    table: RecordTable
    columns: ClassificationColumns


def read_classification_inputs(
    source: str,
    config: ClassificationDataConfig,
    split: str | None = None,
    columns: ClassificationColumns | None = None,
    need_label: bool = True,
) -> ClassificationInputs:
    """Read a source with the given columns (those of training, for eval and prediction) or detected ones.

    With `need_label=False` (prediction) a source without the label column is fine.
    """
    table = read_records(source, split)
    if columns is None:
        columns = choose_columns(table, config, need_label)
    texts = table.text_column(columns.text, "text column", "--text-column")
    text_pairs = table.text_column(columns.text_pair, "text pair column", "--text-pair-column") if columns.text_pair else None
    raw_labels = None
    if columns.label is not None and (need_label or columns.label in table.columns):
        raw_labels = table.text_column(columns.label, "label column", "--label-column")
    return ClassificationInputs(texts, text_pairs, raw_labels, table, columns)


def load_classification_data(
    train_path: str,
    eval_path: str | None,
    config: ClassificationDataConfig,
    tokenizer: Tokenizer,
) -> tuple[EncodedExamples, EncodedExamples | None, LabelSet, ClassificationColumns]:
    """Read, label and tokenize the training set and (with the same columns) the evaluation set."""
    train = read_classification_inputs(train_path, config, config.dataset_split)
    label_set = LabelSet.from_training_labels(train.raw_labels, config.task_type, train.table.source, train.table.where)  # type: ignore[arg-type]
    train_labels = label_set.encode(train.raw_labels, train.table.source, train.table.where)  # type: ignore[arg-type]
    train_examples = encode_examples(train.texts, train.text_pairs, tokenizer, config.max_seq_length, train_labels)
    at_limit = int((train_examples.lengths >= config.max_seq_length).sum())
    if at_limit:
        notice_once(
            f"{train.table.source}: {at_limit} of {len(train_examples)} examples reach --max-seq-length {config.max_seq_length} and may be truncated"
        )
    eval_examples = None
    if eval_path is not None:
        held_out = read_classification_inputs(eval_path, config, "validation", columns=train.columns)
        eval_labels = label_set.encode(held_out.raw_labels, held_out.table.source, held_out.table.where)  # type: ignore[arg-type]
        eval_examples = encode_examples(held_out.texts, held_out.text_pairs, tokenizer, config.max_seq_length, eval_labels)
    return train_examples, eval_examples, label_set, train.columns


# ---------------------------------------------------------------------------------------------
# Batches


class ClassificationBatches(SeekableBatches):
    """Training batches of encoded examples, length-grouped and padded per batch (see SeekableBatches)."""

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


# ---------------------------------------------------------------------------------------------
# Prediction


def predict_logits(model: nn.Module, examples: EncodedExamples, batch_size: int, device: torch.device, pad_id: int = 0) -> np.ndarray:
    """Logits [N, num_labels] in the order of `examples`.

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
        return np.zeros((0, model.num_labels), dtype=np.float32)
    sorted_logits = torch.cat(logit_parts).cpu().numpy()
    logits = np.empty_like(sorted_logits)
    logits[np.concatenate(order_parts)] = sorted_logits
    return logits


def probabilities_from_logits(logits: np.ndarray, label_set: LabelSet) -> np.ndarray:
    """Class probabilities [N, K] (softmax), or the predicted scores [N] of a regression."""
    if label_set.is_regression:
        return logits[:, 0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def _tsv_cell(text: str) -> str:
    # Tabs and line breaks inside a text would shift or split the row; JSONL keeps them verbatim.
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def write_predictions(
    texts: Sequence[str],
    probabilities: np.ndarray,
    label_set: LabelSet,
    out: TextIO,
    format: Literal["jsonl", "tsv"] = "jsonl",
    text_pairs: Sequence[str] | None = None,
) -> None:
    """One prediction per text, in input order: the label and every class probability (or the score)."""
    if format not in ("jsonl", "tsv"):
        raise PrefineError(f"unknown prediction format '{format}'; use jsonl or tsv")
    names = label_set.names
    if label_set.is_regression:
        predicted: list[str] = []
        rows = np.asarray(probabilities, dtype=np.float64).reshape(-1, 1).tolist()
    else:
        predicted = [names[index] for index in np.asarray(probabilities).argmax(axis=1)]
        rows = np.asarray(probabilities, dtype=np.float64).round(6).tolist()
    pairs = text_pairs if text_pairs is not None else itertools.repeat(None)
    if format == "tsv":
        header = ["text"] + (["text_pair"] if text_pairs is not None else [])
        header += ["score"] if label_set.is_regression else ["label"] + [f"prob_{name}" for name in names]
        out.write("\t".join(header) + "\n")
    for index, (text, pair, row) in enumerate(zip(texts, pairs, rows)):
        if format == "jsonl":
            record: dict[str, Any] = {"text": text}
            if pair is not None:
                record["text_pair"] = pair
            if label_set.is_regression:
                record["score"] = row[0]
            else:
                record["label"] = predicted[index]
                record["probabilities"] = dict(zip(names, row))
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            cells = [_tsv_cell(text)] + ([_tsv_cell(pair)] if pair is not None else [])
            cells += [repr(row[0])] if label_set.is_regression else [predicted[index]] + [f"{value:.6f}" for value in row]
            out.write("\t".join(cells) + "\n")


# ---------------------------------------------------------------------------------------------
# The task


class ClassificationTask(TrainsOnBatches):
    """Adapts `ClassificationBatches` and an eval set to the loop's `TrainingTask` protocol.

    `evaluate` returns the flat numbers the loop logs and selects checkpoints by; the full
    report (per-class scores, confusion matrix) of the latest evaluation is kept in
    `last_full_metrics` for the recipe to save and print.
    """

    metric_directions = {
        "loss": "min",
        "accuracy": "max",
        "macro_f1": "max",
        "binary_f1": "max",
        "mse": "min",
        "pearson": "max",
        "spearman": "max",
    }

    def __init__(
        self,
        train_batches: ClassificationBatches,
        eval_examples: EncodedExamples | None,
        label_set: LabelSet,
        eval_batch_size: int,
        device: torch.device,
    ):
        if eval_examples is not None and eval_examples.labels is None:
            raise ValueError("evaluation examples need labels")
        self.train_batches = train_batches
        self.eval_examples = eval_examples
        self.label_set = label_set
        self.eval_batch_size = eval_batch_size
        self.device = device
        self.last_full_metrics: dict[str, Any] = {}

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        output = model(
            input_ids=batch["input_ids"],
            token_type_ids=batch["token_type_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        )
        stats = {"loss": float(output.loss.detach())}
        if not self.label_set.is_regression:
            with torch.no_grad():
                stats["accuracy"] = float((output.logits.argmax(-1) == batch["labels"]).float().mean())
        return output.loss, stats

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        if self.eval_examples is None:
            return {}
        logits = predict_logits(model, self.eval_examples, self.eval_batch_size, self.device, self.train_batches.pad_id)
        self.last_full_metrics = evaluation_metrics(logits, self.eval_examples.labels, self.label_set)  # type: ignore[arg-type]
        headline = ("loss", "mse", "pearson", "spearman") if self.label_set.is_regression else ("loss", "accuracy", "macro_f1", "binary_f1")
        return {key: float(self.last_full_metrics[key]) for key in headline if key in self.last_full_metrics}


def evaluation_metrics(logits: np.ndarray, labels: np.ndarray, label_set: LabelSet) -> dict[str, Any]:
    """The eval loss (the training objective on held-out data) and the task's metrics."""
    if label_set.is_regression:
        metrics = regression_metrics(labels, logits[:, 0])
        return {"loss": metrics["mse"], **metrics}  # MSE is the regression objective itself
    loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)))
    return {"loss": loss, **classification_metrics(labels, logits.argmax(axis=1), label_set.names)}


# ---------------------------------------------------------------------------------------------
# The task on the fine-tuning interface


def read_prediction_texts(
    source: str, config: ClassificationDataConfig, columns: ClassificationColumns, stdin: TextIO
) -> tuple[list[str], list[str] | None]:
    """Texts (and pairs) to label: stdin or a plain .txt file hold one text per line ('text<TAB>pair' for pair runs)."""
    if is_line_input(source):
        texts = read_text_lines(source, stdin)
        if not columns.text_pair:
            return texts, None
        split = [text.split("\t", 1) for text in texts]
        if any(len(parts) != 2 for parts in split):
            raise PrefineError("this run classifies text pairs; give one 'text<TAB>pair' per line")
        return [parts[0] for parts in split], [parts[1] for parts in split]
    inputs = read_classification_inputs(source, config, "test", columns=dataclasses.replace(columns, label=None), need_label=False)
    return inputs.texts, inputs.text_pairs


class ClassificationPredictor(Predictor):
    def __init__(self, task, model, tokenizer, saved, head, device):
        super().__init__(task, model, tokenizer, saved, head, device)
        self.label_set = LabelSet.from_json(head)
        self.columns = ClassificationColumns(**saved["columns"])
        self.input_fields = ("text", "text_pair") if self.columns.text_pair else ("text",)
        self.pad_id = tokenizer.token_to_id("[PAD]")
        # Truncation is configured once here, not per call: a server would otherwise re-serialise
        # the tokenizer on every request.
        self.encoder = truncating_copy(tokenizer, self.data.max_seq_length)

    def probabilities(self, texts: Sequence[str], pairs: Sequence[str] | None, batch_size: int) -> np.ndarray:
        examples = encode_examples(texts, pairs, self.encoder, self.data.max_seq_length, prepared_encoder=True)
        return probabilities_from_logits(predict_logits(self.model, examples, batch_size, self.device, self.pad_id), self.label_set)

    def predict_records(self, records: list[dict[str, Any]], batch_size: int = 64) -> list[dict[str, Any]]:
        texts, pairs = [], []
        for index, record in enumerate(records):
            text, pair = record.get("text"), record.get("text_pair")
            if not isinstance(text, str):
                raise PrefineError(f'input {index + 1} has no "text" string')
            if self.columns.text_pair and not isinstance(pair, str):
                raise PrefineError(f'input {index + 1}: this model classifies text pairs; give "text" and "text_pair"')
            texts.append(text)
            pairs.append(pair)
        probabilities = self.probabilities(texts, pairs if self.columns.text_pair else None, batch_size)
        if self.label_set.is_regression:
            return [{"score": float(score)} for score in probabilities]
        names = self.label_set.names
        return [
            {"label": names[int(row.argmax())], "probabilities": {name: float(value) for name, value in zip(names, row)}}
            for row in probabilities
        ]

    def evaluate_source(self, source: str, batch_size: int) -> Evaluation:
        inputs = read_classification_inputs(source, self.data, "validation", columns=self.columns)
        labels = self.label_set.encode(inputs.raw_labels, inputs.table.source, inputs.table.where)  # type: ignore[arg-type]
        examples = encode_examples(inputs.texts, inputs.text_pairs, self.encoder, self.data.max_seq_length, labels, prepared_encoder=True)
        return self.evaluate_examples(examples, batch_size)

    def evaluate_examples(self, examples: EncodedExamples, batch_size: int) -> Evaluation:
        logits = predict_logits(self.model, examples, batch_size, self.device, self.pad_id)
        metrics = evaluation_metrics(logits, examples.labels, self.label_set)  # type: ignore[arg-type]
        flat = {key: float(value) for key, value in metrics.items() if isinstance(value, (int, float))}
        return Evaluation(flat, format_metrics_table(metrics), {"eval_metrics.json": metrics})

    def predict_cli(self, source: str, options: Any, output: TextIO, format: str, batch_size: int) -> int:
        texts, pairs = read_prediction_texts(source, self.data, self.columns, sys.stdin)
        if not texts:
            raise PrefineError("no texts to label; pass --data FILE or pipe one text per line")
        probabilities = self.probabilities(texts, pairs, batch_size)
        write_predictions(texts, probabilities, self.label_set, output, format, pairs)  # type: ignore[arg-type]
        return len(texts)


@dataclass
class PreparedClassification:
    train: EncodedExamples
    eval: EncodedExamples | None
    label_set: LabelSet


class ClassificationFinetuneTask(FinetuneTask):
    name = "classification"
    aliases = ("regression",)
    help = "classification or regression of texts and text pairs (.tsv, .csv, .jsonl or a Hugging Face dataset)"
    data_config = ClassificationDataConfig
    architecture = "BertForSequenceClassification"
    metric_directions = ClassificationTask.metric_directions

    def default_best_metric(self, prepared: PreparedData) -> str:
        return "pearson" if prepared.payload.label_set.is_regression else "accuracy"

    def max_length(self, data: ClassificationDataConfig) -> tuple[int, str]:
        return data.max_seq_length, "--max-seq-length"

    def check_inputs(self, train: str, eval: str | None, data: ClassificationDataConfig) -> None:
        train_inputs = read_classification_inputs(train, data, data.dataset_split)
        label_set = LabelSet.from_training_labels(
            train_inputs.raw_labels, data.task_type, train_inputs.table.source, train_inputs.table.where
        )  # type: ignore[arg-type]
        if eval:
            held_out = read_classification_inputs(eval, data, "validation", columns=train_inputs.columns)
            label_set.encode(held_out.raw_labels, held_out.table.source, held_out.table.where)  # type: ignore[arg-type]

    def split_dev(self, train: str, data: ClassificationDataConfig, fraction: float, seed: int, folder: Path) -> DevSplit:
        inputs = read_classification_inputs(train, data, data.dataset_split)
        label_set = LabelSet.from_training_labels(inputs.raw_labels, data.task_type, inputs.table.source, inputs.table.where)  # type: ignore[arg-type]
        # Regression scores are not classes: their split is plain random.
        labels = None if label_set.is_regression else inputs.raw_labels
        records = list(inputs.table)
        dev, stratified = stratified_dev_indices(labels, len(records), fraction, seed)
        return write_split(folder, records, dev, stratified)

    def prepare(
        self, train: str, eval: str | None, data: ClassificationDataConfig, tokenizer: Tokenizer, fraction: float, seed: int
    ) -> PreparedData:
        train_examples, eval_examples, label_set, columns = load_classification_data(train, eval, data, tokenizer)
        train_examples = train_examples.subset(subsample_indices(len(train_examples), fraction, seed))
        names = "regression" if label_set.is_regression else ", ".join(label_set.names)
        shown_columns = f"text={columns.text}" + (f", pair={columns.text_pair}" if columns.text_pair else "") + f", label={columns.label}"
        return PreparedData(
            num_train_examples=len(train_examples),
            num_train_items=len(train_examples),
            has_eval=eval_examples is not None,
            head={**label_set.to_json(), "max_seq_length": data.max_seq_length},
            record={"columns": dataclasses.asdict(columns), "labels": label_set.to_json()},
            summary=f"{len(train_examples)} examples ({names}); columns: {shown_columns}",
            payload=PreparedClassification(train_examples, eval_examples, label_set),
        )

    def build_model(self, config: BertConfig, head: dict[str, Any], run: Any = None) -> nn.Module:
        from prefine.model import BertForSequenceClassification

        label_set = LabelSet.from_json(head)
        dropout = run.classifier_dropout if run is not None else head.get("classifier_dropout", 0.1)
        return BertForSequenceClassification(config, label_set.num_labels, classifier_dropout=dropout)

    def training_task(
        self, prepared: PreparedData, micro_batch_size: int, pad_id: int, seed: int, eval_batch_size: int, device: torch.device
    ) -> TrainingTask:
        data: PreparedClassification = prepared.payload
        batches = ClassificationBatches(data.train, micro_batch_size, pad_id, seed)
        return ClassificationTask(batches, data.eval, data.label_set, eval_batch_size, device)

    def predictor(self, model, tokenizer, saved, head, device) -> ClassificationPredictor:
        return ClassificationPredictor(self, model, tokenizer, saved, head, device)

    def final_evaluation(self, predictor: Predictor, prepared: PreparedData, batch_size: int) -> Evaluation:
        return predictor.evaluate_examples(prepared.payload.eval, batch_size)  # type: ignore[attr-defined]

    def hf_config(self, head: dict[str, Any]) -> dict[str, Any]:
        return {key: head[key] for key in ("problem_type", "id2label", "label2id", "classifier_dropout") if key in head}


register_task(ClassificationFinetuneTask())
