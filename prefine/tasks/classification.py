"""Sentence and sentence-pair classification (and regression): data, batches, the task, prediction.

The pieces, in the order a fine-tuning run uses them:

1. `load_classification_data` reads the training and evaluation sets (see `task_data`),
   finds the text, text-pair and label columns when they are not given, decides between
   classification and regression, fixes the label order (`LabelSet`) and tokenizes every text
   once with the fast tokenizer (`text_inputs.encode_examples`, which every text task shares).
   Pairs are encoded exactly like the NSP inputs of pre-training: [CLS] A [SEP] B [SEP].
2. `ClassificationBatches` (the shared `text_inputs.ExampleBatches`) serves training batches from a data position (epoch, examples
   consumed), so a resumed run sees exactly the batches the interrupted one would have seen.
   Batches group examples of similar length and are padded only to their own longest
   example: a sentiment set where most reviews are short and a few are long pays for the long
   ones only in the few batches that hold them.
3. `ClassificationTask` plugs into the training loop; `evaluate` scores the eval set with
   the shared `predict_logits`, which runs length-sorted batches and puts the outputs back in file order.
4. `write_predictions` writes labels and class probabilities as JSONL or TSV.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn

from prefine.config import option
from prefine.corpus.builtin import builtin_classification_task
from prefine.errors import PrefineError
from prefine.metrics.classification import classification_metrics, format_metrics_table, regression_metrics
from prefine.model import BertConfig, BertForSequenceClassification
from prefine.tasks.batching import TrainsOnBatches
from prefine.tasks.columns import ColumnPicker, find_column
from prefine.tasks.interface import (
    BuiltinComparison,
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
from prefine.tasks.prediction_output import PredictionWriter
from prefine.tasks.selection import DevSplit, stratified_dev_indices, write_jsonl, write_split
from prefine.tasks.task_data import RecordTable, check_column_names, read_records
from prefine.tasks.text_inputs import EncodedExamples, ExampleBatches, encode_examples, predict_logits, truncating_copy
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


@dataclass
class ClassificationDataConfig:
    text_column: str | None = option(None, "column holding the text (default: detected, e.g. sentence, text, review, sentence1, premise)")
    text_pair_column: str | None = option(
        None, "column holding the second text of a pair task (default: the partner of a detected pair column, e.g. sentence2 or hypothesis)"
    )
    label_column: str | None = option(
        None,
        "column holding the label (default: detected, e.g. label, class, sentiment, score); "
        "in JSON a dotted path reaches into objects (KLUE-STS: labels.real-label)",
    )
    columns: str | None = option(
        None,
        "the TSV/CSV files have no header line: these are their column names, in order, comma-separated "
        "(GLUE CoLA: --columns source,label,mark,sentence); every row must have exactly that many fields",
    )
    binary_threshold: float | None = option(
        None,
        "regression: also report f1_at_threshold, the F1 of (prediction >= T) against (gold >= T) (KLUE-STS reports it with 3.0)",
    )
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
        if self.columns is not None:
            check_column_names(self.columns.split(","))
        if self.binary_threshold is not None and not math.isfinite(self.binary_threshold):
            raise PrefineError(f"--binary-threshold {self.binary_threshold} must be a finite number (KLUE-STS uses 3.0)")
        if self.binary_threshold is not None and self.task_type == "classification":
            raise PrefineError("--binary-threshold scores a regression; drop it or use --task-type regression (or auto)")

    @property
    def column_names(self) -> list[str] | None:
        """The names --columns gives a headerless TSV/CSV file, or None when the files have a header line."""
        return check_column_names(self.columns.split(",")) if self.columns is not None else None


@dataclass
class ClassificationPredictConfig:
    columns: str | None = option(
        None,
        "classification runs: the column names of a --data TSV/CSV without a header line, comma-separated "
        "(default: as the run was trained; 'header' when --data has a header line although the training files had none)",
    )

    def column_names(self, trained: list[str] | None) -> list[str] | None:
        """The names to read --data with: these flags' (`header`: none, read the header) or the run's own."""
        if self.columns is None:
            return trained
        return None if self.columns.strip() == "header" else check_column_names(self.columns.split(","))


# ---------------------------------------------------------------------------------------------
# Columns


@dataclass
class ClassificationColumns:
    text: str
    text_pair: str | None
    label: str | None


def _partner_columns(text_column: str) -> list[str]:
    """The usual second column of a pair whose first column is `text_column` (sentence2 for sentence1)."""
    return [second for first, second in TEXT_PAIR_COLUMNS if text_column.lower() == first]


def choose_columns(table: RecordTable, config: ClassificationDataConfig, need_label: bool = True) -> ClassificationColumns:
    """The text, text-pair and label columns: the configured ones (checked) or detected ones (announced once)."""
    available = table.column_names
    picker = ColumnPicker(table, ("--text-column", "--text-pair-column", "--label-column"))
    # Pair layouts are preferred: QNLI's (question, sentence) is read as a pair, not as the lone "sentence".
    pair_first = [first for first, second in TEXT_PAIR_COLUMNS if find_column([first], available) and find_column([second], available)]
    text = picker.pick(config.text_column, pair_first[:1] or TEXT_COLUMNS, "text", "--text-column")
    assert text is not None  # a required role is found or raises
    # A pair column is optional when detected, but one named with --text-pair-column must exist.
    text_pair = picker.pick(
        config.text_pair_column, _partner_columns(text), "text pair", "--text-pair-column", required=config.text_pair_column is not None
    )
    label = picker.pick(config.label_column, LABEL_COLUMNS, "label", "--label-column", required=need_label, exclude=(text, text_pair))
    picker.announce()
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
        if task_type == "regression" or (
            task_type == "auto" and all_numeric and any(value is not None and not value.is_integer() for value in numbers.values())
        ):
            if not all_numeric:
                label = next(label for label in unique if numbers[label] is None)
                raise PrefineError(
                    f"{source} has the label '{label}' ({locate(labels.index(label))}), which is not a number; "
                    "regression needs numeric labels (or use --task-type classification)"
                )
            return cls([], is_regression=True)
        if len(unique) < 2:
            raise PrefineError(
                f"{source} has a single label value ('{unique[0] if unique else ''}'); "
                "a classifier needs at least two classes in the training data"
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
# Reading


@dataclass
class ClassificationInputs:
    """The texts (and raw labels) of one source, in file order."""

    texts: list[str]
    text_pairs: list[str] | None
    raw_labels: list[str] | None
    table: RecordTable
    columns: ClassificationColumns

    def required_labels(self) -> list[str]:
        """The raw labels, for reading that needs them (training and scoring)."""
        if self.raw_labels is None:
            raise PrefineError(f"{self.table.source} has no label column; name it with --label-column")
        return self.raw_labels


def read_classification_inputs(
    source: str,
    config: ClassificationDataConfig,
    split: str | None = None,
    columns: ClassificationColumns | None = None,
    need_label: bool = True,
    column_names: list[str] | None | Literal["config"] = "config",
) -> ClassificationInputs:
    """Read a source with the given columns (those of training, for eval and prediction) or detected ones.

    With `need_label=False` (prediction) a source without the label column is fine. A headerless
    TSV/CSV is read with `column_names`, by default those of `config` (--columns).
    """
    table = read_records(source, split, config.column_names if column_names == "config" else column_names)
    if columns is None:
        columns = choose_columns(table, config, need_label)
    texts = table.text_column(columns.text, "text column", "--text-column")
    text_pairs = table.text_column(columns.text_pair, "text pair column", "--text-pair-column") if columns.text_pair else None
    raw_labels = None
    if columns.label is not None and (need_label or columns.label in table.columns):
        raw_labels = table.text_column(columns.label, "label column", "--label-column")
    return ClassificationInputs(texts, text_pairs, raw_labels, table, columns)


def check_binary_threshold(config: ClassificationDataConfig, label_set: LabelSet, source: str) -> None:
    """--binary-threshold binarises regression scores; on class labels it would mean nothing."""
    if config.binary_threshold is not None and not label_set.is_regression:
        raise PrefineError(
            f"--binary-threshold scores a regression, but {source} holds class labels ({', '.join(label_set.names[:5])}"
            f"{', ...' if len(label_set.names) > 5 else ''}); drop it, or pick a numeric label column "
            "(add --task-type regression if every score is whole)"
        )


def load_classification_data(
    train_path: str,
    eval_path: str | None,
    config: ClassificationDataConfig,
    tokenizer: Tokenizer,
) -> tuple[EncodedExamples, EncodedExamples | None, LabelSet, ClassificationColumns]:
    """Read, label and tokenize the training set and (with the same columns) the evaluation set."""
    train = read_classification_inputs(train_path, config, config.dataset_split)
    label_set = LabelSet.from_training_labels(train.required_labels(), config.task_type, train.table.source, train.table.where)
    check_binary_threshold(config, label_set, train.table.source)
    train_labels = label_set.encode(train.required_labels(), train.table.source, train.table.where)
    train_examples = encode_examples(train.texts, train.text_pairs, tokenizer, config.max_seq_length, train_labels)
    at_limit = int((train_examples.lengths >= config.max_seq_length).sum())
    if at_limit:
        notice_once(
            f"{train.table.source}: {at_limit} of {len(train_examples)} examples reach --max-seq-length {config.max_seq_length} "
            "and may be truncated"
        )
    eval_examples = None
    if eval_path is not None:
        held_out = read_classification_inputs(eval_path, config, "validation", columns=train.columns)
        eval_labels = label_set.encode(held_out.required_labels(), held_out.table.source, held_out.table.where)
        eval_examples = encode_examples(held_out.texts, held_out.text_pairs, tokenizer, config.max_seq_length, eval_labels)
    return train_examples, eval_examples, label_set, train.columns


# ---------------------------------------------------------------------------------------------
# Batches

# Classification trains on the shared length-grouped batches of labelled examples.
ClassificationBatches = ExampleBatches


# ---------------------------------------------------------------------------------------------
# Prediction


def probabilities_from_logits(logits: np.ndarray, label_set: LabelSet) -> np.ndarray:
    """Class probabilities [N, K] (softmax), or the predicted scores [N] of a regression."""
    if label_set.is_regression:
        return logits[:, 0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def write_predictions(
    texts: Sequence[str],
    probabilities: np.ndarray,
    label_set: LabelSet,
    out: TextIO,
    format: str = "jsonl",
    text_pairs: Sequence[str] | None = None,
) -> None:
    """One prediction per text, in input order: the label and every class probability (or the score)."""
    names = label_set.names
    if label_set.is_regression:
        predicted: list[str] = []
        rows = np.asarray(probabilities, dtype=np.float64).reshape(-1, 1).tolist()
    else:
        predicted = [names[index] for index in np.asarray(probabilities).argmax(axis=1)]
        rows = np.asarray(probabilities, dtype=np.float64).round(6).tolist()
    header = ["text"] + (["text_pair"] if text_pairs is not None else [])
    header += ["score"] if label_set.is_regression else ["label"] + [f"prob_{name}" for name in names]
    writer = PredictionWriter(out, format, header)
    pairs = text_pairs if text_pairs is not None else itertools.repeat(None)
    for index, (text, pair, row) in enumerate(zip(texts, pairs, rows)):
        record: dict[str, Any] = {"text": text}
        if pair is not None:
            record["text_pair"] = pair
        if label_set.is_regression:
            record["score"] = row[0]
        else:
            record["label"] = predicted[index]
            record["probabilities"] = dict(zip(names, row))
        cells = [text] + ([pair] if pair is not None else [])
        cells += [repr(row[0])] if label_set.is_regression else [predicted[index]] + [f"{value:.6f}" for value in row]
        writer.write(record, cells)


# ---------------------------------------------------------------------------------------------
# The task


class ClassificationTask(TrainsOnBatches):
    """Adapts `ClassificationBatches` and an eval set to the loop's `TrainingTask` protocol.

    `evaluate` returns the flat numbers the loop logs and selects checkpoints by; the full
    report (per-class scores, confusion matrix) of the latest evaluation is kept in
    `last_full_metrics` for the recipe to save and print.
    """

    train_batches: ClassificationBatches  # the base's SeekableBatches; evaluation pads with its pad id

    metric_directions = {
        "loss": "min",
        "accuracy": "max",
        "macro_f1": "max",
        "binary_f1": "max",
        "mcc": "max",
        "mse": "min",
        "pearson": "max",
        "spearman": "max",
        "f1_at_threshold": "max",
    }

    def __init__(
        self,
        train_batches: ClassificationBatches,
        eval_examples: EncodedExamples | None,
        label_set: LabelSet,
        eval_batch_size: int,
        device: torch.device,
        binary_threshold: float | None = None,
    ):
        if eval_examples is not None and eval_examples.labels is None:
            raise ValueError("evaluation examples need labels")
        self.binary_threshold = binary_threshold  # regression: also score f1_at_threshold
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
        self.last_full_metrics = evaluation_metrics(logits, _labels_of(self.eval_examples), self.label_set, self.binary_threshold)
        headline = (
            ("loss", "mse", "pearson", "spearman", "f1_at_threshold")
            if self.label_set.is_regression
            else ("loss", "accuracy", "macro_f1", "binary_f1", "mcc")
        )
        return {key: float(self.last_full_metrics[key]) for key in headline if key in self.last_full_metrics}


def _labels_of(examples: EncodedExamples) -> np.ndarray:
    if examples.labels is None:
        raise ValueError("evaluation examples need labels")
    return examples.labels


def evaluation_metrics(
    logits: np.ndarray, labels: np.ndarray, label_set: LabelSet, binary_threshold: float | None = None
) -> dict[str, Any]:
    """The eval loss (the training objective on held-out data) and the task's metrics (`f1_at_threshold` with a threshold)."""
    if label_set.is_regression:
        metrics = regression_metrics(labels, logits[:, 0], binary_threshold)
        return {"loss": metrics["mse"], **metrics}  # MSE is the regression objective itself
    loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)))
    return {"loss": loss, **classification_metrics(labels, logits.argmax(axis=1), label_set.names)}


# ---------------------------------------------------------------------------------------------
# The task on the fine-tuning interface


def read_prediction_texts(
    source: str,
    config: ClassificationDataConfig,
    columns: ClassificationColumns,
    stdin: TextIO,
    column_names: list[str] | None | Literal["config"] = "config",
) -> tuple[list[str], list[str] | None]:
    """Texts (and pairs) to label: stdin or a plain .txt file hold one text per line ('text<TAB>pair' for pair runs).

    A TSV/CSV is read with `column_names` when it has no header line (by default the run's --columns).
    """
    if is_line_input(source):
        texts = read_text_lines(source, stdin)
        if not columns.text_pair:
            return texts, None
        split = [text.split("\t", 1) for text in texts]
        if any(len(parts) != 2 for parts in split):
            raise PrefineError("this run classifies text pairs; give one 'text<TAB>pair' per line")
        return [parts[0] for parts in split], [parts[1] for parts in split]
    inputs = read_classification_inputs(
        source, config, "test", columns=dataclasses.replace(columns, label=None), need_label=False, column_names=column_names
    )
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
        texts: list[str] = []
        pairs: list[str] = []  # complete when the run classifies pairs (checked below); unused otherwise
        for index, record in enumerate(records):
            text, pair = record.get("text"), record.get("text_pair")
            if not isinstance(text, str):
                raise PrefineError(f'input {index + 1} has no "text" string')
            if self.columns.text_pair and not isinstance(pair, str):
                raise PrefineError(f'input {index + 1}: this model classifies text pairs; give "text" and "text_pair"')
            texts.append(text)
            if isinstance(pair, str):
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
        labels = self.label_set.encode(inputs.required_labels(), inputs.table.source, inputs.table.where)
        examples = encode_examples(inputs.texts, inputs.text_pairs, self.encoder, self.data.max_seq_length, labels, prepared_encoder=True)
        return self.evaluate_examples(examples, batch_size)

    def evaluate_examples(self, examples: EncodedExamples, batch_size: int) -> Evaluation:
        logits = predict_logits(self.model, examples, batch_size, self.device, self.pad_id)
        metrics = evaluation_metrics(logits, _labels_of(examples), self.label_set, self.data.binary_threshold)
        flat = {key: float(value) for key, value in metrics.items() if isinstance(value, (int, float))}
        return Evaluation(flat, format_metrics_table(metrics), {"eval_metrics.json": metrics})

    def predict_cli(self, source: str, options: ClassificationPredictConfig | None, output: TextIO, format: str, batch_size: int) -> int:
        column_names = (options or ClassificationPredictConfig()).column_names(self.data.column_names)
        texts, pairs = read_prediction_texts(source, self.data, self.columns, sys.stdin, column_names)
        if not texts:
            raise PrefineError("no texts to label; pass --data FILE or pipe one text per line")
        probabilities = self.probabilities(texts, pairs, batch_size)
        write_predictions(texts, probabilities, self.label_set, output, format, pairs)
        return len(texts)


@dataclass
class PreparedClassification:
    train: EncodedExamples
    eval: EncodedExamples | None
    label_set: LabelSet
    binary_threshold: float | None = None


class ClassificationFinetuneTask(FinetuneTask):
    name = "classification"
    aliases = ("regression",)
    help = "classification or regression of texts and text pairs (.tsv, .csv, .jsonl or a Hugging Face dataset)"
    data_config = ClassificationDataConfig
    predict_config = ClassificationPredictConfig
    architecture = "BertForSequenceClassification"
    metric_directions = ClassificationTask.metric_directions

    def default_best_metric(self, prepared: PreparedData) -> str:
        return "pearson" if prepared.payload.label_set.is_regression else "accuracy"

    def builtin_comparison(self) -> BuiltinComparison:
        return BuiltinComparison(
            name=self.name,
            heading="which standard-library package does a docstring document?",
            data_folder="task",
            write_data=_write_builtin_docstrings,
            data=ClassificationDataConfig(max_seq_length=128, text_column="text", label_column="label"),
            metric="accuracy",
            metric_label="accuracy",
            default_steps=300,
            run_folder="finetune",
            main=True,
            fractions=(0.1, 1.0),
        )

    def max_length(self, data: ClassificationDataConfig) -> tuple[int, str]:
        return data.max_seq_length, "--max-seq-length"

    def check_inputs(self, train: str, eval: str | None, data: ClassificationDataConfig) -> None:
        train_inputs = read_classification_inputs(train, data, data.dataset_split)
        label_set = LabelSet.from_training_labels(
            train_inputs.required_labels(), data.task_type, train_inputs.table.source, train_inputs.table.where
        )
        check_binary_threshold(data, label_set, train_inputs.table.source)
        if eval:
            held_out = read_classification_inputs(eval, data, "validation", columns=train_inputs.columns)
            label_set.encode(held_out.required_labels(), held_out.table.source, held_out.table.where)

    def split_dev(self, train: str, data: ClassificationDataConfig, fraction: float, seed: int, folder: Path) -> DevSplit:
        inputs = read_classification_inputs(train, data, data.dataset_split)
        label_set = LabelSet.from_training_labels(inputs.required_labels(), data.task_type, inputs.table.source, inputs.table.where)
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
            payload=PreparedClassification(train_examples, eval_examples, label_set, data.binary_threshold),
        )

    def build_model(self, config: BertConfig, head: dict[str, Any], run: Any = None) -> nn.Module:

        label_set = LabelSet.from_json(head)
        dropout = run.classifier_dropout if run is not None else head.get("classifier_dropout", 0.1)
        return BertForSequenceClassification(config, label_set.num_labels, classifier_dropout=dropout)

    def training_task(
        self, prepared: PreparedData, micro_batch_size: int, pad_id: int, seed: int, eval_batch_size: int, device: torch.device
    ) -> TrainingTask:
        data: PreparedClassification = prepared.payload
        batches = ClassificationBatches(data.train, micro_batch_size, pad_id, seed)
        return ClassificationTask(batches, data.eval, data.label_set, eval_batch_size, device, data.binary_threshold)

    def predictor(self, model, tokenizer, saved, head, device) -> ClassificationPredictor:
        return ClassificationPredictor(self, model, tokenizer, saved, head, device)

    def final_evaluation(self, predictor: Predictor, prepared: PreparedData, batch_size: int) -> Evaluation:
        if not isinstance(predictor, ClassificationPredictor):
            raise TypeError(f"a classification run's predictor is a ClassificationPredictor, not a {type(predictor).__name__}")
        return predictor.evaluate_examples(prepared.payload.eval, batch_size)

    def hf_config(self, head: dict[str, Any]) -> dict[str, Any]:
        return {key: head[key] for key in ("problem_type", "id2label", "label2id", "classifier_dropout") if key in head}


def _write_builtin_docstrings(folder: Path) -> tuple[Path, Path, str]:
    """The docstring-package task (`prefine.corpus.builtin`) as JSONL under `folder`, and a line about it."""
    train_rows, test_rows = builtin_classification_task()
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.jsonl", train_rows), ("test.jsonl", test_rows)):
        write_jsonl(folder / name, ({"text": text, "label": label} for text, label in rows))
    labels = sorted({label for _, label in train_rows})
    majority = max(sum(1 for _, label in test_rows if label == name) for name in labels) / len(test_rows)
    summary = (
        f"{len(labels)} packages ({', '.join(labels)}); {len(train_rows)} training / {len(test_rows)} test docstrings "
        f"(pre-training never read a test docstring, a near-copy of one, or one of its sentences); majority-class accuracy {majority:.1%}"
    )
    return folder / "train.jsonl", folder / "test.jsonl", summary


register_task(ClassificationFinetuneTask())
