"""Token classification (named entities) as a fine-tuning task: batches, training, scoring, entity spans out.

`ner_data` reads tagged sentences and aligns word pieces to the input units (words, or
characters for KLUE-style data); this module puts them on the fine-tuning interface:

1. `WindowBatches` serves training windows from a data position (epoch, windows consumed),
   length-grouped and padded per batch, so a resumed run sees exactly the batches the
   interrupted one would have seen.
2. `predict_pieces` runs the model over every window of a corpus and keeps, for each piece,
   the prediction of the window that owns it; `decode` turns those into exactly one tag per
   unit and entity spans with character offsets and an averaged score (the first piece's
   probability per unit, averaged over the entity's units: what transformers'
   `pipeline("ner", aggregation_strategy="first")` reports).
3. `NerTrainingTask` trains on the labelled pieces and scores held-out data at the unit level:
   entity P/R/F1 read leniently (conlleval, seqeval's default) and strictly in the data's
   scheme, token accuracy, and KLUE-NER's two official numbers: `entity_macro_f1` (strict
   entities, macro-averaged over types) and, for character data, `character_macro_f1` (per-tag
   macro F1 over characters, O included, as KLUE's scorer computes it). KLUE's baseline scores
   only the non-space characters of a sentence (it rebuilds sentences from their words), so in
   the character layout both drop the space characters first; an entity spelled across a space
   then reads as KLUE reads it. (The baseline also scores its tags at [CLS] and [SEP] as two
   O characters per sentence; those are no characters of the data and are left out here.)
4. `TokenClassificationFinetuneTask` declares the task; `NerPredictor` serves
   `prefine evaluate / predict` and `prefine serve`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn

from prefine.config import option
from prefine.corpus.builtin_entities import ENTITY_TYPES, builtin_entity_task
from prefine.data_position import DataPosition
from prefine.errors import PrefineError
from prefine.metrics.entities import EntityScores, entity_scores, format_entity_table, lenient_chunks, tag_macro_f1, token_accuracy
from prefine.model import IGNORE_LABEL, BertConfig
from prefine.model.heads import BertForTokenClassification
from prefine.tasks.batching import SeekableBatches, length_grouped
from prefine.tasks.interface import (
    BuiltinComparison,
    Evaluation,
    FinetuneTask,
    Predictor,
    PreparedData,
    is_line_input,
    read_text_lines,
    register_task,
    subsample_indices,
)
from prefine.tasks.ner_data import (
    Alignment,
    EncodedCorpus,
    TaggedCorpus,
    TagSet,
    Windows,
    align,
    as_layout,
    check_tags,
    detect_scheme,
    encode_corpus,
    make_windows,
    read_tagged,
    report,
    sentence_text,
    unit_tags,
)
from prefine.tasks.prediction_output import write_json_line
from prefine.tasks.selection import DevSplit, stratified_dev_indices, write_split
from prefine.tokenizer import special_token_id
from prefine.training.loop import TrainingTask

EVAL_METRICS_FILE = "eval_metrics.json"
EVAL_PREDICTIONS_FILE = "eval_predictions.json"


@dataclass
class NerDataConfig:
    max_seq_length: int = option(
        128, "longest input in tokens, [CLS] and [SEP] included; NER reads longer sentences in overlapping windows"
    )
    stride: int = option(
        0,
        "NER: word pieces between the starts of consecutive windows of a sentence longer than --max-seq-length "
        "(0: half a window); each piece is predicted from the window where it has the most context, so nothing is cut",
    )
    layout: Literal["auto", "words", "characters"] = option(
        "auto",
        "NER: what one line / list item is: words (CoNLL) or characters (KLUE-NER: a space is a character); "
        "auto: characters when every unit is one character",
    )
    tag_scheme: Literal["auto", "iob1", "iob2", "iobes", "bilou"] = option(
        "auto",
        "NER: how tags spell entities; auto: IOBES/BILOU by their E-/S- or L-/U- tags, IOB1 when an I- tag starts an entity, else IOB2",
    )
    tag_column: int = option(0, "NER column files: the column holding the tag (1 is the token; default 0: the last column)")
    token_field: str | None = option(None, "NER .jsonl / datasets: the field holding the token list (default: tokens, words or characters)")
    tag_field: str | None = option(None, "NER .jsonl / datasets: the field holding the tag list (default: ner_tags, tags or labels)")
    label_all_pieces: bool = option(
        False, "NER: train on every word piece (later pieces get I-TYPE, never a copied B-) instead of only a word's first piece"
    )
    dataset_split: str = option(
        "train", "split to train on when the training data is a Hugging Face dataset (the eval set defaults to validation)"
    )

    def __post_init__(self) -> None:
        if self.max_seq_length < 4:
            raise PrefineError(
                f"--max-seq-length {self.max_seq_length} leaves no room for word pieces beside [CLS] and [SEP]; use 64 or more"
            )
        if self.stride == 0:
            self.stride = max(1, (self.max_seq_length - 2) // 2)
        if not 1 <= self.stride <= self.max_seq_length - 2:
            raise PrefineError(f"--stride {self.stride} must be between 1 and --max-seq-length minus 2 ({self.max_seq_length - 2})")
        if self.tag_column < 0 or self.tag_column == 1:
            raise PrefineError(f"--tag-column {self.tag_column} must be 2 or more (column 1 is the token), or 0 for the last column")


@dataclass
class NerPredictConfig:
    text: str | None = option(None, "NER runs: a text to find entities in (prints them with character offsets and scores)")


def read_source(source: str, data: NerDataConfig, split: str, layout: str | None = None, need_tags: bool = True) -> TaggedCorpus:
    return read_tagged(source, layout or data.layout, data.tag_column, data.token_field, data.tag_field, split, need_tags)


def choose_scheme(corpus: TaggedCorpus, data: NerDataConfig) -> tuple[str, bool]:
    """The configured scheme, or the one the training tags use; every tag is then checked against it."""
    detected = data.tag_scheme == "auto"
    scheme = detect_scheme([sentence.tags or [] for sentence in corpus.sentences]) if detected else data.tag_scheme.upper()
    check_tags(corpus, scheme)
    return scheme, detected


# ---------------------------------------------------------------------------------------------
# Batches


def collate_windows(windows: Windows, indices: np.ndarray, pad_id: int, with_labels: bool = True) -> dict[str, Any]:
    """The windows at `indices` padded to the longest of them (labels padded with IGNORE_LABEL), as model inputs."""
    lengths = windows.lengths[indices]
    width = int(lengths.max(initial=1))
    real = np.arange(width) < lengths[:, None]
    positions = (windows.offsets[indices][:, None] + np.arange(width))[real]
    input_ids = np.full((len(indices), width), pad_id, dtype=np.int64)
    input_ids[real] = windows.input_ids[positions]
    batch: dict[str, Any] = {
        "input_ids": torch.from_numpy(input_ids),
        "token_type_ids": torch.zeros((len(indices), width), dtype=torch.int64),
        "attention_mask": torch.from_numpy(real.astype(np.int64)),
        "num_real_tokens": int(lengths.sum()),
    }
    if with_labels and windows.labels is not None:
        labels = np.full((len(indices), width), IGNORE_LABEL, dtype=np.int64)
        labels[real] = windows.labels[positions]
        batch["labels"] = torch.from_numpy(labels)
    return batch


class WindowBatches(SeekableBatches):
    """Training windows, length-grouped and padded per batch (see SeekableBatches)."""

    unit = "windows"

    def __init__(self, windows: Windows, batch_size: int, pad_id: int, seed: int, shuffle: bool = True):
        if not len(windows):
            raise PrefineError("the training data holds no sentences; point at a file with data")
        super().__init__(len(windows), batch_size, seed, shuffle)
        self.windows = windows
        self.pad_id = pad_id

    def arrange(self, order: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        return length_grouped(order, self.windows.lengths, self.batch_size, rng)

    def collate(self, indices: np.ndarray) -> dict[str, Any]:
        return collate_windows(self.windows, indices, self.pad_id)


def _longest_first(windows: Windows, batch_size: int) -> Iterator[np.ndarray]:
    order = np.argsort(-windows.lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


# ---------------------------------------------------------------------------------------------
# Prediction


@dataclass
class PiecePredictions:
    """Per sentence: the predicted tag id and its probability at every piece (from the window owning it)."""

    tag_ids: list[np.ndarray]
    scores: list[np.ndarray]
    loss: float | None  # mean loss over labelled pieces, when the windows have labels


def predict_pieces(
    model: nn.Module, windows: Windows, piece_counts: Sequence[int], batch_size: int, device: torch.device, pad_id: int
) -> PiecePredictions:
    piece_offsets = np.concatenate([[0], np.cumsum(piece_counts)]).astype(np.int64)
    tag_ids = np.full(int(piece_offsets[-1]), -1, dtype=np.int64)
    scores = np.zeros(int(piece_offsets[-1]), dtype=np.float32)
    loss_sum, counted = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for indices in _longest_first(windows, batch_size):
            batch = collate_windows(windows, indices, pad_id)
            labels = batch.get("labels")
            output = model(
                input_ids=batch["input_ids"].to(device, non_blocking=True),
                token_type_ids=batch["token_type_ids"].to(device, non_blocking=True),
                attention_mask=batch["attention_mask"].to(device, non_blocking=True),
                labels=labels.to(device, non_blocking=True) if labels is not None else None,
            )
            if labels is not None:
                count = int((labels != IGNORE_LABEL).sum())
                loss_sum += float(output.loss) * count
                counted += count
            probabilities = output.logits.float().softmax(-1)
            best, best_ids = probabilities.max(-1)
            best, best_ids = best.cpu().numpy(), best_ids.cpu().numpy()
            width = best.shape[1]
            lengths = windows.lengths[indices]
            real = np.arange(width) < lengths[:, None]
            positions = windows.offsets[indices][:, None] + np.arange(width)
            owned = np.zeros_like(real)
            owned[real] = windows.owned[positions[real]]
            rows, columns = np.nonzero(owned)
            # Window position 1 is the window's first piece; [CLS] and [SEP] are never owned.
            global_pieces = piece_offsets[windows.sentence[indices[rows]]] + windows.first_piece[indices[rows]] + columns - 1
            tag_ids[global_pieces] = best_ids[rows, columns]
            scores[global_pieces] = best[rows, columns]
    model.train(was_training)
    splits = piece_offsets[1:-1]
    return PiecePredictions(np.split(tag_ids, splits), np.split(scores, splits), loss_sum / counted if counted else None)


@dataclass
class TaggedOutput:
    """One sentence's predictions: a tag per unit and the entities they spell."""

    tags: list[str]
    entities: list[dict[str, Any]]


def decode(alignment: Alignment, text: str, spans: np.ndarray, tag_ids: np.ndarray, scores: np.ndarray, tag_set: TagSet) -> TaggedOutput:
    """Unit tags from the anchor pieces' predictions, and the entities with character offsets and mean scores."""
    names = tag_set.names
    piece_tags = [names[tag] if tag >= 0 else None for tag in tag_ids.tolist()]
    tags = unit_tags(alignment, piece_tags, tag_set.scheme)
    unit_scores = np.full(len(tags), np.nan)
    anchored = alignment.unit_anchor >= 0
    unit_scores[anchored] = scores[alignment.unit_anchor[anchored]]
    entities = []
    for kind, first, last in lenient_chunks(tags):
        start, end = int(spans[first, 0]), int(spans[last, 1])
        chunk_scores = unit_scores[first : last + 1]
        chunk_scores = chunk_scores[~np.isnan(chunk_scores)]
        entities.append(
            {
                "type": kind,
                "text": text[start:end],
                "start": start,
                "end": end,
                "score": round(float(chunk_scores.mean()) if len(chunk_scores) else 0.0, 6),
            }
        )
    return TaggedOutput(tags, entities)


def tag_sentences(
    model: nn.Module,
    texts: Sequence[str],
    spans: Sequence[np.ndarray],
    alignments: Sequence[Alignment],
    windows: Windows,
    tag_set: TagSet,
    batch_size: int,
    device: torch.device,
    pad_id: int,
) -> tuple[list[TaggedOutput], float | None]:
    """Tags and entities of aligned, windowed sentences, and the mean loss when the windows carry labels."""
    predictions = predict_pieces(model, windows, [len(alignment.piece_ids) for alignment in alignments], batch_size, device, pad_id)
    outputs = [
        decode(alignment, text, unit_spans, tag_ids, scores, tag_set)
        for alignment, text, unit_spans, tag_ids, scores in zip(alignments, texts, spans, predictions.tag_ids, predictions.scores)
    ]
    return outputs, predictions.loss


def tag_corpus(
    model: nn.Module, encoded: EncodedCorpus, tag_set: TagSet, batch_size: int, device: torch.device, pad_id: int
) -> tuple[list[TaggedOutput], float | None]:
    return tag_sentences(model, encoded.texts, encoded.spans, encoded.alignments, encoded.windows, tag_set, batch_size, device, pad_id)


# ---------------------------------------------------------------------------------------------
# Scoring


@dataclass
class NerEvaluation:
    metrics: dict[str, float]
    lenient: EntityScores
    strict: EntityScores
    outputs: list[TaggedOutput]


def score_corpus(
    model: nn.Module, encoded: EncodedCorpus, tag_set: TagSet, batch_size: int, device: torch.device, pad_id: int
) -> NerEvaluation:
    outputs, loss = tag_corpus(model, encoded, tag_set, batch_size, device, pad_id)
    gold = [sentence.tags or [] for sentence in encoded.corpus.sentences]
    predicted = [output.tags for output in outputs]
    lenient = entity_scores(gold, predicted)
    strict = entity_scores(gold, predicted, tag_set.scheme)
    metrics = {
        "entity_f1": lenient.f1,
        "entity_precision": lenient.precision,
        "entity_recall": lenient.recall,
        "entity_f1_strict": strict.f1,
        "entity_macro_f1_strict": strict.macro_f1,
        "token_accuracy": token_accuracy(gold, predicted),
    }
    if encoded.corpus.layout == "characters":
        units = [sentence.units for sentence in encoded.corpus.sentences]
        klue_gold, klue_predicted = without_spaces(units, gold), without_spaces(units, predicted)
        metrics["entity_macro_f1"] = entity_scores(klue_gold, klue_predicted, tag_set.scheme).macro_f1
        metrics["character_macro_f1"] = tag_macro_f1(klue_gold, klue_predicted, tag_set.names)
    else:
        metrics["entity_macro_f1"] = strict.macro_f1
    if loss is not None:
        metrics["loss"] = loss
    return NerEvaluation(metrics, lenient, strict, outputs)


def without_spaces(units: Sequence[Sequence[str]], tags: Sequence[Sequence[str]]) -> list[list[str]]:
    """The tags of the units that are not whitespace: the characters KLUE-NER's scorer sees."""
    return [
        [tag for unit, tag in zip(sentence_units, sentence_tags) if not unit.isspace()]
        for sentence_units, sentence_tags in zip(units, tags)
    ]


def _counts_json(scores: EntityScores) -> dict[str, Any]:
    rows = {**scores.per_type, "overall": scores.total}
    return {
        kind: {
            "gold": counts.gold,
            "predicted": counts.predicted,
            "correct": counts.correct,
            "precision": counts.precision,
            "recall": counts.recall,
            "f1": counts.f1,
        }
        for kind, counts in rows.items()
    }


def as_evaluation(evaluation: NerEvaluation, encoded: EncodedCorpus, tag_set: TagSet) -> Evaluation:
    metrics = evaluation.metrics
    lines = [
        format_entity_table(
            evaluation.lenient, f"entities ({tag_set.scheme} tags, conlleval/seqeval default reading) on {len(encoded.texts)} sentences:"
        )
    ]
    lines.append(
        f"strict {tag_set.scheme}: precision {100 * evaluation.strict.precision:.2f}  recall {100 * evaluation.strict.recall:.2f}  "
        f"F1 {100 * evaluation.strict.f1:.2f}  macro F1 {100 * evaluation.strict.macro_f1:.2f}"
    )
    tail = f"token accuracy {100 * metrics['token_accuracy']:.2f}"
    if "character_macro_f1" in metrics:
        tail += (
            f"  KLUE (spaces left out): entity macro F1 {100 * metrics['entity_macro_f1']:.2f}"
            f"  character-level macro F1 {100 * metrics['character_macro_f1']:.2f}"
        )
    lines.append(tail)
    report_json = {
        "metrics": metrics,
        "lenient": _counts_json(evaluation.lenient),
        f"strict_{tag_set.scheme}": _counts_json(evaluation.strict),
    }
    predictions = [
        {"text": text, "tags": output.tags, "entities": output.entities} for text, output in zip(encoded.texts, evaluation.outputs)
    ]
    counts = {"sentences": len(encoded.texts), "gold_entities": evaluation.lenient.total.gold}
    return Evaluation(dict(metrics), "\n".join(lines), {EVAL_METRICS_FILE: report_json, EVAL_PREDICTIONS_FILE: predictions}, counts)


class NerTrainingTask:
    """Adapts `WindowBatches` and an eval corpus to the loop's `TrainingTask` protocol."""

    metric_directions = {
        "loss": "min",
        "entity_f1": "max",
        "entity_precision": "max",
        "entity_recall": "max",
        "entity_f1_strict": "max",
        "entity_macro_f1_strict": "max",
        "entity_macro_f1": "max",
        "token_accuracy": "max",
        "character_macro_f1": "max",
    }

    def __init__(
        self, train_batches: WindowBatches, eval_corpus: EncodedCorpus | None, tag_set: TagSet, eval_batch_size: int, device: torch.device
    ):
        self.train_batches = train_batches
        self.eval_corpus = eval_corpus
        self.tag_set = tag_set
        self.eval_batch_size = eval_batch_size
        self.device = device

    def start_position(self) -> DataPosition:
        return self.train_batches.start_position()

    def batch_at(self, position: DataPosition, rank: int, world_size: int) -> tuple[dict[str, Any], DataPosition]:
        return self.train_batches.batch_at(position, rank, world_size)

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        output = model(
            input_ids=batch["input_ids"],
            token_type_ids=batch["token_type_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        )
        return output.loss, {"loss": float(output.loss.detach())}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        if self.eval_corpus is None:
            return {}
        return score_corpus(model, self.eval_corpus, self.tag_set, self.eval_batch_size, self.device, self.train_batches.pad_id).metrics


# ---------------------------------------------------------------------------------------------
# The predictor


def raw_text_units(text: str, layout: str, tokenizer: Tokenizer) -> np.ndarray:
    """Unit spans of a plain text: every character, or the words the tokenizer's pre-tokenizer sees (punctuation apart)."""
    if layout == "characters":
        return np.stack([np.arange(len(text)), np.arange(1, len(text) + 1)], axis=1).astype(np.int64)
    if tokenizer.pre_tokenizer is not None:
        words = tokenizer.pre_tokenizer.pre_tokenize_str(text)
        return np.asarray([span for _, span in words], dtype=np.int64).reshape(-1, 2)
    return np.asarray([match.span() for match in re.finditer(r"\S+", text)], dtype=np.int64).reshape(-1, 2)


class NerPredictor(Predictor):
    def __init__(self, task, model, tokenizer, saved, head, device):
        super().__init__(task, model, tokenizer, saved, head, device)
        self.tag_set = TagSet.from_json(head)
        self.layout = as_layout(head.get("layout", "words"))
        self.pad_id = tokenizer.token_to_id("[PAD]")

    def _tag(self, texts: list[str], spans: list[np.ndarray], batch_size: int) -> list[TaggedOutput]:
        alignments = align(texts, spans, self.tokenizer)
        cls_id, sep_id = special_token_id(self.tokenizer, "[CLS]"), special_token_id(self.tokenizer, "[SEP]")
        windows = make_windows(alignments, self.data.max_seq_length, self.data.stride, cls_id, sep_id)
        return tag_sentences(self.model, texts, spans, alignments, windows, self.tag_set, batch_size, self.device, self.pad_id)[0]

    def tag_texts(self, texts: list[str], batch_size: int = 64) -> list[TaggedOutput]:
        return self._tag(texts, [raw_text_units(text, self.layout, self.tokenizer) for text in texts], batch_size)

    def predict_records(self, records: list[dict[str, Any]], batch_size: int = 64) -> list[dict[str, Any]]:
        texts, spans, given_units = [], [], []
        for index, record in enumerate(records):
            if isinstance(record.get("tokens"), list):
                units = [str(unit) for unit in record["tokens"]]
                text, unit_spans = sentence_text(units, self.layout)
                given_units.append(True)
            elif isinstance(record.get("text"), str):
                text, unit_spans = record["text"], raw_text_units(record["text"], self.layout, self.tokenizer)
                given_units.append(False)
            else:
                raise PrefineError(f'input {index + 1} needs "text" (a string) or "tokens" (a list of strings)')
            texts.append(text)
            spans.append(unit_spans)
        outputs = self._tag(texts, spans, batch_size)
        return [{"entities": output.entities, **({"tags": output.tags} if given else {})} for output, given in zip(outputs, given_units)]

    def encode(self, corpus: TaggedCorpus) -> EncodedCorpus:
        return encode_corpus(corpus, self.tokenizer, self.tag_set, self.data.max_seq_length, self.data.stride, self.data.label_all_pieces)

    def evaluate_encoded(self, encoded: EncodedCorpus, batch_size: int) -> Evaluation:
        evaluation = score_corpus(self.model, encoded, self.tag_set, batch_size, self.device, self.pad_id)
        return as_evaluation(evaluation, encoded, self.tag_set)

    def evaluate_source(self, source: str, batch_size: int) -> Evaluation:
        corpus = read_source(source, self.data, "validation", layout=self.layout)
        check_tags(corpus, self.tag_set.scheme)
        return self.evaluate_encoded(self.encode(corpus), batch_size)

    def predict_cli(self, source: str, options: NerPredictConfig | None, output: TextIO, format: str, batch_size: int) -> int:
        if options is not None and options.text is not None:
            if source != "-":
                raise PrefineError("pass either --text or --data FILE, not both")
            if not options.text.strip():
                raise PrefineError("--text is empty; give a sentence to find entities in")
            result = self.tag_texts([options.text], batch_size)[0]
            write_json_line(output, {"text": options.text, "entities": result.entities})
            return 1
        if is_line_input(source):
            texts = read_text_lines(source)
            if not texts:
                raise PrefineError('no texts to tag; pass --text "...", --data FILE or pipe one text per line')
            for text, result in zip(texts, self.tag_texts(texts, batch_size)):
                write_json_line(output, {"text": text, "entities": result.entities})
            return len(texts)
        corpus = read_source(source, self.data, "test", layout=self.layout, need_tags=False)
        encoded = encode_corpus(corpus, self.tokenizer, None, self.data.max_seq_length, self.data.stride)
        outputs, _ = tag_corpus(self.model, encoded, self.tag_set, batch_size, self.device, self.pad_id)
        for sentence, text, result in zip(corpus.sentences, encoded.texts, outputs):
            if format == "tsv":
                output.write("".join(f"{unit}\t{tag}\n" for unit, tag in zip(sentence.units, result.tags)) + "\n")
            else:
                write_json_line(output, {"text": text, "tokens": sentence.units, "tags": result.tags, "entities": result.entities})
        return len(outputs)


# ---------------------------------------------------------------------------------------------
# The task on the fine-tuning interface


@dataclass
class PreparedNer:
    train: Windows
    eval: EncodedCorpus | None
    tag_set: TagSet


class TokenClassificationFinetuneTask(FinetuneTask):
    name = "ner"
    aliases = ("token-classification",)
    help = (
        "token classification / named entities: CoNLL-style columns, KLUE-style character lines, .jsonl token/tag lists "
        "or a Hugging Face dataset"
    )
    data_config = NerDataConfig
    predict_config = NerPredictConfig
    architecture = "BertForTokenClassification"
    train_hint = "--train FILE (token and tag per line, .jsonl with tokens/tags, or a Hugging Face dataset)"
    metric_directions = NerTrainingTask.metric_directions

    def default_best_metric(self, prepared: PreparedData) -> str:
        return "entity_f1"

    def builtin_comparison(self) -> BuiltinComparison:
        return BuiltinComparison(
            name=self.name,
            heading="named entities in Python's docs (exceptions, functions, modules, types)",
            data_folder="ner-task",
            write_data=_write_builtin_entities,
            data=NerDataConfig(max_seq_length=128),
            metric="entity_f1",
            metric_label="entity F1",
            # 300 steps per model took about 40 s for both models on an idle 2-core EPYC.
            default_steps=300,
            run_folder="ner-finetune",
        )

    def max_length(self, data: NerDataConfig) -> tuple[int, str]:
        return data.max_seq_length, "--max-seq-length"

    def _read(
        self, train: str, eval: str | None, data: NerDataConfig, report_reading: bool = True
    ) -> tuple[TaggedCorpus, TaggedCorpus | None, TagSet]:
        train_corpus = read_source(train, data, data.dataset_split)
        scheme, detected = choose_scheme(train_corpus, data)
        tag_set = TagSet.from_corpus(train_corpus, scheme)
        eval_corpus = None
        if eval:
            eval_corpus = read_source(eval, data, "validation", layout=train_corpus.layout)
            check_tags(eval_corpus, scheme)
            tag_set.ids(eval_corpus)  # a tag training never saw is an error naming its line, before any work
        if report_reading:
            report(train_corpus, scheme, detected)
        return train_corpus, eval_corpus, tag_set

    def check_inputs(self, train: str, eval: str | None, data: NerDataConfig) -> None:
        self._read(train, eval, data, report_reading=False)

    def split_dev(self, train: str, data: NerDataConfig, fraction: float, seed: int, folder: Path) -> DevSplit:
        corpus = read_source(train, data, data.dataset_split)
        # Sentences hold many entities each: there is no one label to stratify by. Written as
        # JSONL under the field names the data config reads, whatever the original format was.
        records = [{data.token_field or "tokens": sentence.units, data.tag_field or "tags": sentence.tags} for sentence in corpus.sentences]
        dev, stratified = stratified_dev_indices(None, len(records), fraction, seed)
        return write_split(folder, records, dev, stratified)

    def prepare(self, train: str, eval: str | None, data: NerDataConfig, tokenizer: Tokenizer, fraction: float, seed: int) -> PreparedData:
        train_corpus, eval_corpus, tag_set = self._read(train, eval, data)
        kept = subsample_indices(len(train_corpus.sentences), fraction, seed)
        train_corpus.sentences = [train_corpus.sentences[index] for index in kept]
        train_encoded = encode_corpus(train_corpus, tokenizer, tag_set, data.max_seq_length, data.stride, data.label_all_pieces)
        for note in train_encoded.notes:
            print(f"{train_corpus.source}: {note}", file=sys.stderr)
        eval_encoded = None
        if eval_corpus is not None:
            eval_encoded = encode_corpus(eval_corpus, tokenizer, tag_set, data.max_seq_length, data.stride)
            for note in eval_encoded.notes:
                print(f"{eval_corpus.source}: {note}", file=sys.stderr)
        windows = train_encoded.windows
        types = sorted({name[2:] for name in tag_set.names if name != "O"})
        return PreparedData(
            num_train_examples=len(train_corpus.sentences),
            num_train_items=len(windows),
            has_eval=eval_encoded is not None,
            head={**tag_set.to_json(), "max_seq_length": data.max_seq_length, "layout": train_corpus.layout},
            record={
                "labels": tag_set.to_json(),
                "layout": train_corpus.layout,
                "tag_scheme": tag_set.scheme,
                "num_train_windows": len(windows),
            },
            summary=(
                f"{len(train_corpus.sentences)} sentences ({len(windows)} windows; {train_corpus.layout}; "
                f"{tag_set.scheme} tags of {', '.join(types)})"
            ),
            payload=PreparedNer(windows, eval_encoded, tag_set),
        )

    def build_model(self, config: BertConfig, head: dict[str, Any], run: Any = None) -> nn.Module:

        tag_set = TagSet.from_json(head)
        dropout = run.classifier_dropout if run is not None else head.get("classifier_dropout", 0.1)
        return BertForTokenClassification(config, len(tag_set.names), classifier_dropout=dropout)

    def training_task(
        self, prepared: PreparedData, micro_batch_size: int, pad_id: int, seed: int, eval_batch_size: int, device: torch.device
    ) -> TrainingTask:
        data: PreparedNer = prepared.payload
        return NerTrainingTask(WindowBatches(data.train, micro_batch_size, pad_id, seed), data.eval, data.tag_set, eval_batch_size, device)

    def predictor(self, model, tokenizer, saved, head, device) -> NerPredictor:
        return NerPredictor(self, model, tokenizer, saved, head, device)

    def final_evaluation(self, predictor: Predictor, prepared: PreparedData, batch_size: int) -> Evaluation:
        if not isinstance(predictor, NerPredictor):
            raise TypeError(f"an NER run's predictor is an NerPredictor, not a {type(predictor).__name__}")
        return predictor.evaluate_encoded(prepared.payload.eval, batch_size)

    def hf_config(self, head: dict[str, Any]) -> dict[str, Any]:
        return {key: head[key] for key in ("id2label", "label2id", "classifier_dropout") if key in head}


def _write_builtin_entities(folder: Path) -> tuple[Path, Path, str]:
    """The code-entity task (`prefine.corpus.builtin_entities`) as CoNLL files under `folder`, and a line about it."""
    train, test = builtin_entity_task()
    folder.mkdir(parents=True, exist_ok=True)
    for name, sentences in (("train.conll", train), ("test.conll", test)):
        with open(folder / name, "w", encoding="utf-8") as handle:
            for words, tags in sentences:
                handle.write("".join(f"{word}\t{tag}\n" for word, tag in zip(words, tags)) + "\n")
    entities = sum(tag.startswith("B-") for _, tags in test for tag in tags)
    summary = (
        f"entity types {', '.join(ENTITY_TYPES)}; {len(train)} training / {len(test)} test sentences ({entities} test entities; "
        "test sentences were never seen in pre-training)"
    )
    return folder / "train.conll", folder / "test.conll", summary


register_task(TokenClassificationFinetuneTask())
