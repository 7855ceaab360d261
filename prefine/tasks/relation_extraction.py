"""Relation extraction (`--task relation-extraction`): which relation a sentence states between a subject and an object entity.

Data is KLUE-RE v1.1 (`klue-re-v1.1_train.json`, `klue-re-v1.1_dev.json`): a JSON array of
`{"guid", "sentence", "subject_entity": {"word", "start_idx", "end_idx", "type"},
"object_entity": {...}, "label", "source"}`, where `start_idx`/`end_idx` are *inclusive*
character offsets into the sentence. JSON lines with the same fields (a user's own data), `.gz`
files and Hugging Face datasets (`klue:re`, whose entities arrive as objects) read the same way,
through `task_data.read_records`; fields the task does not use are ignored. Every entity span
must spell its `word`, or reading stops before any work with one line naming file and record.

Input: entity markers as KLUE's baseline puts them. The issue asked for "the typed entity-marker
input of the KLUE baseline", but the baseline (KLUE-benchmark/KLUE-baseline,
klue_baseline/data/klue_re.py, `_mark_entity_spans`) does not type its markers: it wraps the
subject in `<subj>`...`</subj>` and the object in `<obj>`...`</obj>`, four tokens added to the
tokenizer as special tokens, and classifies from [CLS] with `AutoModelForSequenceClassification`.
That is the default here (`--entity-markers klue`), so scores compare with the KLUE paper's.
`--entity-markers typed` adds the entity type to the markers (`<subj:PER>`...`</subj:PER>`, the
"typed entity marker" of Zhou and Chen, 2022, "An Improved Baseline for Sentence-level Relation
Extraction"), one pair of tokens per role and type seen in training.

How the markers are placed, beyond the baseline:

- Markers are insertions at character positions, so overlapping or nested entities (a subject
  inside its object) get properly nested markers; the baseline copies the shared characters twice.
  At one position closing markers come before opening ones, the longer span opens first, and for
  identical spans the subject is outside.
- The baseline's `fix_tokenization_error`: a marker inside a word ("<subj>비틀즈</subj>가")
  makes the text after it a new word ("가"), which the encoder never saw in pre-training, where
  "비틀즈가" gives "##가". The baseline turns that piece into its "##" form (an [UNK] when the
  vocabulary has no such piece). Here the same happens after any marker the unmarked sentence's
  tokenization places inside a word, decided from its offsets rather than from a Hangul test, and
  only where the "##" piece exists.
- A sentence longer than `--max-seq-length` is cut to a window that holds both entities with
  their markers, the spare room shared between the context before and after them. When the two
  entities lie too far apart for one window, the markers, then the entities' own pieces, then
  the pieces nearest to either entity are kept, in sentence order. The baseline truncates the end
  and can cut an entity off.

The markers become part of the run's tokenizer: `prepare` adds them to the tokenizer it is given,
which `prefine finetune` saves into the run after `prepare` (so predict, serve and both exports
read the markers from the run's own tokenizer files), and the word-embedding table grows by as
many rows. The new rows start at the mean of the pre-trained embeddings (`load_initial_weights`),
as transformers' `resize_token_embeddings` does by default and as Hewitt (2021, "Initializing
new word embeddings for pretrained language models") argues: a random row of the initializer's
scale lies far from where trained embeddings are, and the first steps would spend themselves
pulling the marker back into the embedding distribution; the mean is a neutral token the encoder
already reads sensibly, and the markers part ways as their different contexts train them. The
head is BERT's pooled [CLS] classifier, so `prefine export --format hf` writes a
`BertForSequenceClassification` with `id2label` and a tokenizer that holds the markers, and
`--format onnx` exports its logits.

Scores (`prefine.metrics.relations`): KLUE's micro F1 over every relation but no_relation
(`micro_f1`, the headline that picks the checkpoint), KLUE's AUPRC averaged over all classes
(`auprc`), accuracy and the per-class report.
"""

from __future__ import annotations

import dataclasses
import json
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
from prefine.errors import PrefineError
from prefine.interop.initial_weights import load_initial_weights as load_encoder_weights
from prefine.jsonio import iter_jsonl
from prefine.metrics.classification import format_metrics_table
from prefine.metrics.relations import NO_RELATION, relation_metrics
from prefine.model import BertConfig, BertForSequenceClassification
from prefine.tasks.batching import TrainsOnBatches
from prefine.tasks.interface import (
    Evaluation,
    FinetuneTask,
    Predictor,
    PreparedData,
    notice_once,
    register_task,
    subsample_indices,
)
from prefine.tasks.prediction_output import PredictionWriter
from prefine.tasks.selection import DevSplit, stratified_dev_indices, write_split
from prefine.tasks.task_data import RecordTable, read_records
from prefine.tasks.text_inputs import ENCODE_CHUNK, EncodedExamples, ExampleBatches, predict_logits, truncating_copy
from prefine.training.loop import TrainingTask

ENTITY_FIELDS = ("subject_entity", "object_entity")
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"  # the suffix of the table's name in every BERT state dict


@dataclass
class RelationDataConfig:
    max_seq_length: int = option(128, "longest input in tokens, [CLS], [SEP] and the four entity markers included")
    entity_markers: Literal["klue", "typed"] = option(
        "klue",
        "relation extraction: klue puts <subj>..</subj> and <obj>..</obj> around the entities, as KLUE's baseline; "
        "typed: the entity type in the marker too (<subj:PER>..</subj:PER>)",
    )
    no_relation_label: str = option(
        NO_RELATION, "relation extraction: the label meaning 'no relation', which micro_f1 leaves out as KLUE's does"
    )
    dataset_split: str = option("train", "split to train on when the training data is a Hugging Face dataset")

    def __post_init__(self) -> None:
        if self.max_seq_length < 8:
            raise PrefineError(
                f"--max-seq-length {self.max_seq_length} leaves no room for a sentence beside [CLS], [SEP] and four entity markers; "
                "use 64 or more"
            )


# ---------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class Entity:
    word: str
    start: int  # first character, inclusive
    end: int  # last character, inclusive (KLUE's end_idx)
    type: str

    def to_json(self) -> dict[str, Any]:
        return {"word": self.word, "start_idx": self.start, "end_idx": self.end, "type": self.type}


@dataclass
class RelationExample:
    sentence: str
    subject: Entity
    object: Entity
    label: str | None = None
    guid: str | None = None

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"guid": self.guid} if self.guid is not None else {}
        record.update(sentence=self.sentence, subject_entity=self.subject.to_json(), object_entity=self.object.to_json())
        if self.label is not None:
            record["label"] = self.label
        return record


def _offset(value: Any, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PrefineError(f"{where}: {name} must be a character offset (a whole number), not {value!r}; fix the record")
    try:
        return int(value)
    except ValueError:
        raise PrefineError(f"{where}: {name} must be a character offset (a whole number), not {value!r}; fix the record") from None


def parse_entity(value: Any, field: str, sentence: str, where: str) -> Entity:
    """One entity object (or its JSON text, as a table cell holds it), checked against the sentence."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = None
    if not isinstance(value, dict):
        raise PrefineError(f'{where}: {field} must be an object with "word", "start_idx", "end_idx" and "type"; fix the record')
    missing = [key for key in ("word", "start_idx", "end_idx") if key not in value]
    if missing:
        raise PrefineError(f"{where}: {field} lacks {', '.join(missing)}; each entity needs word, start_idx, end_idx (and type)")
    word = value["word"]
    if not isinstance(word, str):
        raise PrefineError(f"{where}: {field}.word must be a string, not {word!r}; fix the record")
    start, end = _offset(value["start_idx"], f"{field}.start_idx", where), _offset(value["end_idx"], f"{field}.end_idx", where)
    if not 0 <= start <= end < len(sentence):
        raise PrefineError(
            f"{where}: {field} spans characters {start}..{end}, outside the sentence's {len(sentence)} characters "
            "(start_idx and end_idx are inclusive offsets from 0); fix the record"
        )
    if sentence[start : end + 1] != word:
        raise PrefineError(
            f"{where}: {field} says {word!r} but characters {start}..{end} of the sentence are {sentence[start : end + 1]!r} "
            "(start_idx and end_idx are inclusive character offsets); fix the offsets or the word"
        )
    entity_type = value.get("type", "")
    return Entity(word, start, end, entity_type if isinstance(entity_type, str) else str(entity_type))


def parse_record(record: dict[str, Any], where: str, need_label: bool) -> RelationExample:
    """A record with sentence, subject_entity, object_entity (and label): a file's row or one `predict_records` input."""
    sentence = record.get("sentence")
    if not isinstance(sentence, str) or not sentence:
        raise PrefineError(f'{where} has no "sentence" text; every record needs one')
    subject, object_ = (parse_entity(record.get(field), field, sentence, where) for field in ENTITY_FIELDS)
    label = record.get("label")
    if label is not None and not isinstance(label, str):
        label = str(label)
    if need_label and not (label or "").strip():
        raise PrefineError(f'{where} has no "label"; labelled data needs one per record')
    guid = record.get("guid")
    return RelationExample(sentence, subject, object_, label.strip() if label else None, None if guid is None else str(guid))


@dataclass
class RelationSource:
    """The examples of one file or dataset, in order, with where each came from."""

    examples: list[RelationExample]
    table: RecordTable

    @property
    def source(self) -> str:
        return self.table.source

    def labels(self) -> list[str]:
        return [example.label or "" for example in self.examples]


def read_relation_source(source: str, split: str | None, need_label: bool = True) -> RelationSource:
    """Read KLUE-RE JSON, JSONL with the same fields, or a dataset; every record checked (see `parse_record`)."""
    table = read_records(source, split)
    missing = [name for name in ("sentence", *ENTITY_FIELDS) if name not in table.columns]
    if need_label and "label" not in table.columns:
        missing.append("label")
    if missing:
        raise PrefineError(
            f"{table.source} has no {', '.join(missing)} field (fields: {', '.join(table.column_names)}); "
            "relation extraction reads KLUE-RE records: sentence, subject_entity, object_entity, label"
        )
    examples = [parse_record(row, f"{table.source} {table.where(index)}", need_label) for index, row in enumerate(table)]
    return RelationSource(examples, table)


# ---------------------------------------------------------------------------------------------
# Labels


@dataclass
class RelationLabels:
    """The relation classes in id order (string order, so the same training data always gives the same head)."""

    names: list[str]

    @classmethod
    def from_training(cls, source: RelationSource) -> RelationLabels:
        names = sorted(set(source.labels()))
        if len(names) < 2:
            raise PrefineError(f"{source.source} has a single relation label ({', '.join(names)}); a classifier needs at least two")
        return cls(names)

    def encode(self, source: RelationSource) -> np.ndarray:
        ids = {name: index for index, name in enumerate(self.names)}
        for index, label in enumerate(source.labels()):
            if label not in ids:
                raise PrefineError(
                    f"{source.source} {source.table.where(index)} has the label '{label}', which training never saw "
                    f"({len(self.names)} labels: {', '.join(self.names)}); add such examples to the training data or drop the record"
                )
        return np.asarray([ids[label] for label in source.labels()], dtype=np.int64)

    def to_json(self) -> dict[str, Any]:
        return {
            "problem_type": "single_label_classification",
            "id2label": {str(index): name for index, name in enumerate(self.names)},
            "label2id": {name: index for index, name in enumerate(self.names)},
        }

    @classmethod
    def from_json(cls, head: dict[str, Any]) -> RelationLabels:
        id2label = head.get("id2label") or {}
        return cls([str(id2label[str(index)]) for index in range(len(id2label))])


# ---------------------------------------------------------------------------------------------
# Entity markers


@dataclass(frozen=True)
class EntityMarkers:
    """The marker tokens of a run: KLUE's four untyped ones, or one pair per role and entity type."""

    style: str = "klue"
    types: tuple[str, ...] = ()  # the entity types of the training data ("typed" only)

    @classmethod
    def for_training(cls, style: str, source: RelationSource) -> EntityMarkers:
        if style != "typed":
            return cls(style)
        types = sorted({entity.type for example in source.examples for entity in (example.subject, example.object)})
        if "" in types:
            index = next(i for i, ex in enumerate(source.examples) if "" in (ex.subject.type, ex.object.type))
            raise PrefineError(
                f"{source.source} {source.table.where(index)} has an entity without a type; "
                "--entity-markers typed needs every entity's type (or use --entity-markers klue)"
            )
        return cls(style, tuple(types))

    def around(self, role: str, entity_type: str) -> tuple[str, str]:
        """The opening and closing marker of an entity in `role` ("subj" or "obj")."""
        if self.style != "typed":
            return f"<{role}>", f"</{role}>"
        return f"<{role}:{entity_type}>", f"</{role}:{entity_type}>"

    def tokens(self) -> list[str]:
        types = self.types if self.style == "typed" else ("",)
        return [marker for role in ("subj", "obj") for entity_type in types for marker in self.around(role, entity_type)]

    def check_types(self, source: RelationSource) -> None:
        """An entity type training never saw has no marker token: say so before any work."""
        if self.style != "typed":
            return
        for index, example in enumerate(source.examples):
            for entity in (example.subject, example.object):
                if entity.type not in self.types:
                    raise PrefineError(
                        f"{source.source} {source.table.where(index)} has an entity of type '{entity.type}', which training never saw "
                        f"(types: {', '.join(self.types)}); with --entity-markers typed every type needs a marker learned in training"
                    )

    def to_json(self) -> dict[str, Any]:
        return {"style": self.style, "types": list(self.types), "tokens": self.tokens()}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> EntityMarkers:
        return cls(values.get("style", "klue"), tuple(values.get("types", ())))


def marker_insertions(example: RelationExample, markers: EntityMarkers) -> list[tuple[int, str, int]]:
    """(character position, marker, slot) in text order: each marker goes in before the character at its position.

    `slot` says which marker it is: 0/1 open/close the subject, 2/3 the object. At one position
    closing markers come first (adjacent entities), then opening ones with the longer span first
    (nested entities nest); for identical spans the subject is the outer one.
    """
    keyed: list[tuple[tuple[int, int, int, int], int, str, int]] = []
    for rank, (role, entity) in enumerate((("subj", example.subject), ("obj", example.object))):
        opening, closing = markers.around(role, entity.type)
        length = entity.end - entity.start + 1
        keyed.append(((entity.start, 1, -length, rank), entity.start, opening, 2 * rank))
        keyed.append(((entity.end + 1, 0, length, -rank), entity.end + 1, closing, 2 * rank + 1))
    return [(position, marker, slot) for _, position, marker, slot in sorted(keyed)]


def marked_sentence(example: RelationExample, markers: EntityMarkers) -> str:
    """The sentence with its entity markers in place (what the tokenizer reads)."""
    pieces, previous = [], 0
    for position, marker, _ in marker_insertions(example, markers):
        pieces += [example.sentence[previous:position], marker]
        previous = position
    pieces.append(example.sentence[previous:])
    return "".join(pieces)


def kept_positions(length: int, blocks: Sequence[tuple[int, int]], marker_positions: Sequence[int], budget: int) -> np.ndarray:
    """Which of `length` pieces to keep so that at most `budget` remain and both entity blocks stay in.

    `blocks` are the [start, end) piece ranges of the two marked entities (markers included).
    A window holding both is taken when it fits, its spare room split between the context before
    and after; otherwise markers, then entity pieces, then the pieces nearest to an entity.
    """
    if length <= budget:
        return np.arange(length)
    start, end = min(block[0] for block in blocks), max(block[1] for block in blocks)
    if end - start <= budget:
        spare = budget - (end - start)
        after = min(length - end, spare - min(start, spare // 2))
        before = min(start, spare - after)
        return np.arange(start - before, end + after)
    positions = np.arange(length)
    distance = np.min([np.maximum(np.maximum(block[0] - positions, positions - (block[1] - 1)), 0) for block in blocks], axis=0)
    priority = distance.astype(np.int64)
    priority[list(marker_positions)] = -1
    return np.sort(np.lexsort((positions, priority))[:budget])


class RelationEncoder:
    """Marked sentences to model inputs: [CLS] pieces-with-markers [SEP], cut to a window around the entities."""

    def __init__(self, tokenizer: Tokenizer, markers: EntityMarkers, max_seq_length: int):
        # A private copy (the shared one, which keeps whatever the tokenizer is built from) without
        # truncation: the window is cut here, around the entities.
        self.tokenizer = truncating_copy(tokenizer, max_seq_length)
        self.tokenizer.no_truncation()
        self.markers = markers
        self.max_seq_length = max_seq_length
        ids = {token: tokenizer.token_to_id(token) for token in markers.tokens()}
        absent = [token for token, token_id in ids.items() if token_id is None]
        if absent:
            raise PrefineError(f"the run's tokenizer lacks the entity markers {', '.join(absent)}; restore the run's own tokenizer folder")
        self.marker_ids = {token_id for token_id in ids.values() if token_id is not None}
        cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
        if cls_id is None or sep_id is None:
            raise PrefineError("the tokenizer has no [CLS] or [SEP] token; relation extraction needs a BERT tokenizer")
        self.cls_id, self.sep_id = cls_id, sep_id
        self.vocab = tokenizer.get_vocab()

    def encode(
        self,
        examples: Sequence[RelationExample],
        labels: np.ndarray | None = None,
        where: Callable[[int], str] = lambda i: f"record {i + 1}",
    ) -> tuple[EncodedExamples, int]:
        """The encoded examples, and how many of them were cut to fit --max-seq-length."""
        budget = self.max_seq_length - 2
        rows: list[list[int]] = []
        truncated = 0
        for chunk_start in range(0, len(examples), ENCODE_CHUNK):
            chunk = examples[chunk_start : chunk_start + ENCODE_CHUNK]
            plain = self.tokenizer.encode_batch([example.sentence for example in chunk], add_special_tokens=False)
            marked = self.tokenizer.encode_batch([marked_sentence(example, self.markers) for example in chunk], add_special_tokens=False)
            for offset, (example, unmarked, encoding) in enumerate(zip(chunk, plain, marked)):
                pieces, marker_at = self._pieces(example, unmarked, encoding, where(chunk_start + offset))
                blocks = [(marker_at[0], marker_at[1] + 1), (marker_at[2], marker_at[3] + 1)]
                kept = kept_positions(len(pieces), blocks, marker_at, budget)
                truncated += len(kept) < len(pieces)
                rows.append([self.cls_id, *(pieces[int(i)] for i in kept), self.sep_id])
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        return (
            EncodedExamples(
                input_ids=np.fromiter((i for row in rows for i in row), dtype=np.int32, count=int(lengths.sum())),
                token_type_ids=np.zeros(int(lengths.sum()), dtype=np.int8),
                offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                labels=labels,
            ),
            truncated,
        )

    def _pieces(self, example: RelationExample, unmarked: Any, encoding: Any, where: str) -> tuple[list[int], list[int]]:
        """The marked sentence's piece ids, and the piece positions of subject open/close and object open/close."""
        insertions = marker_insertions(example, self.markers)
        ids = list(encoding.ids)
        found = [index for index, token_id in enumerate(ids) if token_id in self.marker_ids]
        if len(found) != len(insertions):
            raise PrefineError(f"{where}: the sentence itself contains entity-marker text ({', '.join(self.markers.tokens())}); remove it")
        inside_word = self._inside_word_positions(unmarked)
        tokens = encoding.tokens
        for number, index in enumerate(found):
            follower = index + 1
            last_of_run = number + 1 == len(found) or found[number + 1] != follower
            if last_of_run and follower < len(ids) and insertions[number][0] in inside_word and not tokens[follower].startswith("##"):
                # The marker split a word: the piece after it continues that word, as it did without the marker.
                continued = self.vocab.get("##" + tokens[follower])
                if continued is not None:
                    ids[follower] = continued
        order = [0, 0, 0, 0]
        for (_, _, slot), index in zip(insertions, found):
            order[slot] = index
        return ids, order

    @staticmethod
    def _inside_word_positions(unmarked: Any) -> set[int]:
        """Character positions that the unmarked tokenization puts inside a word (within a piece, or where a '##' piece starts)."""
        inside: set[int] = set()
        for token, (start, end) in zip(unmarked.tokens, unmarked.offsets):
            inside.update(range(start + 1, end))
            if token.startswith("##"):
                inside.add(start)
        return inside


# ---------------------------------------------------------------------------------------------
# Training and evaluation


class RelationTrainingTask(TrainsOnBatches):
    """The loop's view: classification batches of marked sentences, scored with KLUE's metrics."""

    train_batches: ExampleBatches
    metric_directions = {"loss": "min", "accuracy": "max", "micro_f1": "max", "auprc": "max", "macro_f1": "max"}

    def __init__(
        self,
        train_batches: ExampleBatches,
        eval_examples: EncodedExamples | None,
        labels: RelationLabels,
        no_relation: str,
        eval_batch_size: int,
        device: torch.device,
    ):
        self.train_batches = train_batches
        self.eval_examples = eval_examples
        self.labels = labels
        self.no_relation = no_relation
        self.eval_batch_size = eval_batch_size
        self.device = device

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        output = model(
            input_ids=batch["input_ids"],
            token_type_ids=batch["token_type_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        )
        with torch.no_grad():
            accuracy = float((output.logits.argmax(-1) == batch["labels"]).float().mean())
        return output.loss, {"loss": float(output.loss.detach()), "accuracy": accuracy}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        if self.eval_examples is None or self.eval_examples.labels is None:
            return {}
        logits = predict_logits(model, self.eval_examples, self.eval_batch_size, self.device, self.train_batches.pad_id)
        metrics = evaluation_metrics(logits, self.eval_examples.labels, self.labels, self.no_relation)
        return {key: float(metrics[key]) for key in ("loss", "accuracy", "micro_f1", "auprc")}


def probabilities_of(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits).float(), dim=-1).numpy()


def evaluation_metrics(logits: np.ndarray, labels: np.ndarray, label_set: RelationLabels, no_relation: str) -> dict[str, Any]:
    """The held-out loss (the training objective) and KLUE's relation scores with the per-class report."""
    loss = float(F.cross_entropy(torch.from_numpy(logits).float(), torch.from_numpy(labels)))
    return {"loss": loss, **relation_metrics(labels, probabilities_of(logits), label_set.names, no_relation)}


HEADLINE = ("loss", "micro_f1", "auprc", "accuracy", "macro_f1")


def _as_evaluation(metrics: dict[str, Any]) -> Evaluation:
    flat = {key: float(metrics[key]) for key in HEADLINE}
    # The 30 x 30 confusion matrix stays in the JSON file; the table shows the headline and the per-class scores.
    shown = {**{key: metrics[key] for key in HEADLINE}, "per_class": metrics["per_class"]}
    return Evaluation(flat, format_metrics_table(shown), {"eval_metrics.json": metrics}, {"examples": int(metrics["num_examples"])})


# ---------------------------------------------------------------------------------------------
# Prediction


def read_prediction_records(source: str, stdin: TextIO) -> RelationSource:
    """Records to label: a file or dataset as for training (labels optional), or JSON lines on stdin ("-")."""
    if source != "-":
        if source.lower().endswith(".txt"):
            raise PrefineError(f"{source}: relation extraction reads JSON or JSONL records (sentence, subject_entity, object_entity)")
        return read_relation_source(source, "test", need_label=False)
    numbered = list(iter_jsonl(((number, line) for number, line in enumerate(stdin, start=1)), "stdin"))
    records = [record for _, record in numbered]
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    table = RecordTable("stdin", {name: [None] * len(records) for name in names}, np.asarray([n for n, _ in numbered]))
    return RelationSource([parse_record(record, f"stdin line {number}", False) for number, record in numbered], table)


def write_predictions(
    examples: Sequence[RelationExample], probabilities: np.ndarray, names: Sequence[str], output: TextIO, format: str
) -> None:
    """One line per example: its entities, the most probable relation and every relation's probability."""
    writer = PredictionWriter(output, format, ["guid", "sentence", "subject", "object", "label", *names])
    for example, row in zip(examples, probabilities.tolist()):
        label = names[int(np.argmax(row))]
        record: dict[str, Any] = {} if example.guid is None else {"guid": example.guid}
        record.update(
            sentence=example.sentence,
            subject=example.subject.word,
            object=example.object.word,
            label=label,
            probabilities=dict(zip(names, row)),
        )
        cells = [example.guid or "", example.sentence, example.subject.word, example.object.word, label, *(f"{p:.6f}" for p in row)]
        writer.write(record, cells)


class RelationPredictor(Predictor):
    input_fields = ("sentence", "subject_entity", "object_entity")

    def __init__(self, task, model, tokenizer, saved, head, device):
        super().__init__(task, model, tokenizer, saved, head, device)
        self.labels = RelationLabels.from_json(head)
        self.markers = EntityMarkers.from_json(head.get("entity_markers", {}))
        self.no_relation = head.get("no_relation_label", self.data.no_relation_label)
        self.encoder = RelationEncoder(tokenizer, self.markers, self.data.max_seq_length)
        self.pad_id = tokenizer.token_to_id("[PAD]")

    def encode(self, source: RelationSource, labels: np.ndarray | None = None) -> EncodedExamples:
        self.markers.check_types(source)
        encoded, _ = self.encoder.encode(source.examples, labels, lambda i: f"{source.source} {source.table.where(i)}")
        return encoded

    def probabilities(self, examples: EncodedExamples, batch_size: int) -> np.ndarray:
        return probabilities_of(predict_logits(self.model, examples, batch_size, self.device, self.pad_id))

    def predict_records(self, records: list[dict[str, Any]], batch_size: int = 64) -> list[dict[str, Any]]:
        examples = [parse_record(record, f"input {index + 1}", need_label=False) for index, record in enumerate(records)]
        table = RecordTable("the request", {}, np.arange(1, len(records) + 1), "input")
        probabilities = self.probabilities(self.encode(RelationSource(examples, table)), batch_size)
        names = self.labels.names
        return [{"label": names[int(row.argmax())], "probabilities": dict(zip(names, map(float, row)))} for row in probabilities]

    def evaluate_source(self, source: str, batch_size: int) -> Evaluation:
        data = read_relation_source(source, "validation")
        return self.evaluate_examples(self.encode(data, self.labels.encode(data)), batch_size)

    def evaluate_examples(self, examples: EncodedExamples, batch_size: int) -> Evaluation:
        if examples.labels is None:
            raise ValueError("evaluation examples need labels")
        logits = predict_logits(self.model, examples, batch_size, self.device, self.pad_id)
        return _as_evaluation(evaluation_metrics(logits, examples.labels, self.labels, self.no_relation))

    def predict_cli(self, source: str, options: Any, output: TextIO, format: str, batch_size: int) -> int:
        data = read_prediction_records(source, sys.stdin)
        if not data.examples:
            raise PrefineError("no records to label; pass --data FILE (KLUE-RE JSON or JSONL) or pipe JSON lines")
        write_predictions(data.examples, self.probabilities(self.encode(data), batch_size), self.labels.names, output, format)
        return len(data.examples)


# ---------------------------------------------------------------------------------------------
# The task on the fine-tuning interface


@dataclass
class PreparedRelations:
    train: EncodedExamples
    eval: EncodedExamples | None
    labels: RelationLabels
    no_relation: str


class RelationExtractionTask(FinetuneTask):
    name = "relation-extraction"
    aliases = ("re",)
    help = "the relation between a subject and an object entity in a sentence (KLUE-RE JSON, or JSONL with its fields)"
    data_config = RelationDataConfig
    architecture = "BertForSequenceClassification"
    metric_directions = RelationTrainingTask.metric_directions
    train_hint = "--train klue-re-v1.1_train.json"

    def default_best_metric(self, prepared: PreparedData) -> str:
        return "micro_f1"

    def max_length(self, data: RelationDataConfig) -> tuple[int, str]:
        return data.max_seq_length, "--max-seq-length"

    def _read(self, train: str, eval: str | None, data: RelationDataConfig):
        train_source = read_relation_source(train, data.dataset_split)
        labels = RelationLabels.from_training(train_source)
        markers = EntityMarkers.for_training(data.entity_markers, train_source)
        eval_source = None
        if eval is not None:
            eval_source = read_relation_source(eval, "validation")
            labels.encode(eval_source)
            markers.check_types(eval_source)
        return train_source, eval_source, labels, markers

    def check_inputs(self, train: str, eval: str | None, data: RelationDataConfig) -> None:
        self._read(train, eval, data)

    def split_dev(self, train: str, data: RelationDataConfig, fraction: float, seed: int, folder: Path) -> DevSplit:
        source = read_relation_source(train, data.dataset_split)
        dev, stratified = stratified_dev_indices(source.labels(), len(source.examples), fraction, seed)
        return write_split(folder, [example.to_json() for example in source.examples], dev, stratified)

    def prepare(
        self, train: str, eval: str | None, data: RelationDataConfig, tokenizer: Tokenizer, fraction: float, seed: int
    ) -> PreparedData:
        train_source, eval_source, labels, markers = self._read(train, eval, data)
        # Added to the caller's tokenizer on purpose: `prefine finetune` saves this very tokenizer
        # into the run after `prepare`, so every later reader of the run finds the markers. Adding
        # tokens that are already there (an --init that is a relation run) adds nothing.
        tokenizer.add_special_tokens(markers.tokens())
        encoder = RelationEncoder(tokenizer, markers, data.max_seq_length)
        kept = subsample_indices(len(train_source.examples), fraction, seed)
        train_examples = [train_source.examples[int(index)] for index in kept]
        train_labels = labels.encode(train_source)[kept]
        where = lambda i: f"{train_source.source} {train_source.table.where(int(kept[i]))}"  # noqa: E731
        train_encoded, truncated = encoder.encode(train_examples, train_labels, where)
        if truncated:
            notice_once(
                f"{train_source.source}: {truncated} of {len(train_examples)} sentences exceed --max-seq-length {data.max_seq_length}; "
                "each is cut to a window that keeps both entities"
            )
        eval_encoded = None
        if eval_source is not None:
            eval_encoded, _ = encoder.encode(
                eval_source.examples, labels.encode(eval_source), lambda i: f"{eval_source.source} {eval_source.table.where(i)}"
            )
        no_relation = data.no_relation_label
        if no_relation not in labels.names:
            notice_once(f"{train_source.source} has no '{no_relation}' label; micro_f1 counts every class (--no-relation-label names it)")
        head = {
            **labels.to_json(),
            "max_seq_length": data.max_seq_length,
            # The checkpoint's config.json takes this over --init's: the table holds the marker rows.
            "vocab_size": tokenizer.get_vocab_size(),
            "entity_markers": markers.to_json(),
            "no_relation_label": no_relation,
        }
        shown = ", ".join(markers.tokens()[:4]) + (" ..." if len(markers.tokens()) > 4 else "")
        return PreparedData(
            num_train_examples=len(train_examples),
            num_train_items=len(train_examples),
            has_eval=eval_encoded is not None,
            head=head,
            record={"labels": labels.to_json(), "entity_markers": markers.to_json()},
            summary=f"{len(train_examples)} sentences, {len(labels.names)} relations; markers {shown}",
            payload=PreparedRelations(train_encoded, eval_encoded, labels, no_relation),
        )

    def build_model(self, config: BertConfig, head: dict[str, Any], run: Any = None) -> nn.Module:
        # Training builds from --init's config, inference from the checkpoint's; both take the table size with the markers.
        config = dataclasses.replace(config, vocab_size=int(head.get("vocab_size", config.vocab_size)))
        dropout = run.classifier_dropout if run is not None else head.get("classifier_dropout", 0.1)
        return BertForSequenceClassification(config, len(RelationLabels.from_json(head).names), classifier_dropout=dropout)

    def load_initial_weights(self, model: nn.Module, init: Any, from_scratch: bool, announce: bool, reinit_layers: int = 0) -> None:
        """The pre-trained encoder, its word-embedding table grown by the marker rows, each the mean of the pre-trained rows."""
        encoder: Any = model.bert  # every task model keeps its encoder here
        rows = encoder.embeddings.word_embeddings.num_embeddings
        state = dict(init.state_dict)
        for name, table in init.state_dict.items():
            if name.endswith(WORD_EMBEDDINGS) and table.shape[0] < rows:
                mean = table.float().mean(dim=0, keepdim=True).to(table.dtype)
                state[name] = torch.cat([table, mean.expand(rows - table.shape[0], -1)])
        load_encoder_weights(model, dataclasses.replace(init, state_dict=state), from_scratch, announce, reinit_layers=reinit_layers)

    def training_task(
        self, prepared: PreparedData, micro_batch_size: int, pad_id: int, seed: int, eval_batch_size: int, device: torch.device
    ) -> TrainingTask:
        data: PreparedRelations = prepared.payload
        batches = ExampleBatches(data.train, micro_batch_size, pad_id, seed)
        return RelationTrainingTask(batches, data.eval, data.labels, data.no_relation, eval_batch_size, device)

    def predictor(self, model, tokenizer, saved, head, device) -> RelationPredictor:
        return RelationPredictor(self, model, tokenizer, saved, head, device)

    def final_evaluation(self, predictor: Predictor, prepared: PreparedData, batch_size: int) -> Evaluation:
        if not isinstance(predictor, RelationPredictor):
            raise TypeError(f"a relation-extraction run's predictor is a RelationPredictor, not a {type(predictor).__name__}")
        return predictor.evaluate_examples(prepared.payload.eval, batch_size)

    def hf_config(self, head: dict[str, Any]) -> dict[str, Any]:
        return {key: head[key] for key in ("problem_type", "id2label", "label2id", "classifier_dropout") if key in head}


register_task(RelationExtractionTask())
