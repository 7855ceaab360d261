"""Extractive question answering as a fine-tuning task: data, window batches, scoring, the predictor.

`qa_data` turns SQuAD-format files (SQuAD v1.1, v2.0, KorQuAD 1.0, KLUE-MRC) into fixed-length windows
("[CLS] question [SEP] context window [SEP]"; long contexts become overlapping windows of
--max-length tokens, --doc-stride apart) and decodes start/end logits back into answer text.
This module puts those windows on the fine-tuning interface:

1. `QABatches` serves training windows from a data position (epoch, windows consumed), in a
   fresh seeded order every epoch, so a resumed run sees exactly the batches the interrupted
   one would have seen. A batch is trimmed to its longest real window: short contexts and the
   last window of a long one are mostly padding, and attention over padding is wasted work.
2. `QATask` trains on the start/end loss and evaluates the way the official scripts score:
   logits of every eval window -> n-best spans merged across windows -> EM / F1 with the
   official script of the data's flavor (and KLUE-MRC's character ROUGE-W, `rouge_w`, for
   KLUE files), so the numbers are comparable with published ones.
3. `QAFinetuneTask` declares the task (flags, head, metrics) and `QAPredictor` answers
   questions for `prefine predict / evaluate` and `prefine serve`. A fine-tuned run ends with
   the official `predictions.json` ({question id: answer}), `nbest_predictions.json` and
   `eval_metrics.json` of the best checkpoint on the eval set.
4. `QAFinetuneTask.split_dev` carves the selection split `prefine finetune --test` (without
   --eval), `prefine compare` and `prefine suite` choose checkpoints on out of --train: whole
   articles, since questions on one paragraph share its context (`qa_data.split_squad_dataset`;
   by paragraph when the file has too few articles, and it says so), written back as SQuAD JSON
   with every field kept, so the parts are read and scored in the file's own flavor.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn

from prefine.config import option
from prefine.errors import PrefineError
from prefine.metrics.squad import NO_ANSWER_FLAVORS, Flavor, evaluate_predictions
from prefine.model import BertConfig, BertForQuestionAnswering
from prefine.tasks.batching import SeekableBatches, TrainsOnBatches
from prefine.tasks.interface import Evaluation, FinetuneTask, Predictor, PreparedData, notice_once, register_task, subsample_indices
from prefine.tasks.qa_data import (
    QAExample,
    QAFeatures,
    decode_predictions,
    load_squad_json,
    prepare_features,
    read_json_file,
    read_questions,
    split_squad_dataset,
)
from prefine.tasks.selection import DevSplit
from prefine.training.loop import TrainingTask

# Logit given to the padding positions a trimmed batch never computed: the same "never an
# answer boundary" value the model puts on masked positions.
PADDING_LOGIT = float(np.finfo(np.float32).min)


@dataclass
class DecodingConfig:
    """How logits become answers; the recipe's QADataConfig carries the same fields."""

    n_best_size: int = 20
    max_answer_length: int = 30
    null_score_diff_threshold: float = 0.0
    version_2: bool = False  # the model may answer "" (SQuAD v2.0 and KLUE-MRC unanswerable questions)


def _trimmed_batch(features: QAFeatures, indices: np.ndarray, lengths: np.ndarray, with_targets: bool) -> dict[str, Any]:
    """Windows at `indices` cut to the longest real window among them (padding is a suffix)."""
    width = int(lengths[indices].max(initial=1))
    batch: dict[str, Any] = {
        "input_ids": torch.from_numpy(np.ascontiguousarray(features.input_ids[indices, :width], dtype=np.int64)),
        "token_type_ids": torch.from_numpy(np.ascontiguousarray(features.token_type_ids[indices, :width], dtype=np.int64)),
        "attention_mask": torch.from_numpy(np.ascontiguousarray(features.attention_mask[indices, :width], dtype=np.int64)),
        "num_real_tokens": int(lengths[indices].sum()),
    }
    if with_targets:
        batch["start_positions"] = torch.from_numpy(features.start_positions[indices].astype(np.int64))
        batch["end_positions"] = torch.from_numpy(features.end_positions[indices].astype(np.int64))
    return batch


def window_lengths(features: QAFeatures) -> np.ndarray:
    """Real tokens per window ([CLS] question [SEP] context [SEP]), the rest being padding."""
    return features.attention_mask.sum(axis=1).astype(np.int64)


def compact_training_features(features: QAFeatures) -> QAFeatures:
    """Only the training inputs, in small dtypes and cut to the longest real window (a no-op when already compact)."""
    width = int(window_lengths(features).max(initial=1))
    return QAFeatures(
        input_ids=features.input_ids[:, :width].astype(np.int32, copy=False),
        token_type_ids=features.token_type_ids[:, :width].astype(np.int8, copy=False),
        attention_mask=features.attention_mask[:, :width].astype(np.int8, copy=False),
        start_positions=features.start_positions,
        end_positions=features.end_positions,
        example_index=features.example_index,
        offsets=np.zeros((0, 0, 2), dtype=np.int32),
    )


class QABatches(SeekableBatches):
    """Training windows, trimmed per batch to the longest real window (see SeekableBatches).

    Only the training inputs are kept (compactly): a SQuAD training set is ~90k windows, and the
    character offsets that decoding needs are useless here.
    """

    unit = "windows"

    def __init__(self, features: QAFeatures, batch_size: int, seed: int, shuffle: bool = True):
        if not len(features):
            raise PrefineError("the QA training data yields no windows (every question was skipped); check the answers in --train")
        self.features = compact_training_features(features)
        self.lengths = window_lengths(self.features)
        super().__init__(len(self.lengths), batch_size, seed, shuffle)

    def collate(self, indices: np.ndarray) -> dict[str, Any]:
        return _trimmed_batch(self.features, indices, self.lengths, with_targets=True)


def _sequential_batches(features: QAFeatures, batch_size: int) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
    """(indices, batch) over every window once, longest first, so little padding is computed."""
    lengths = window_lengths(features)
    order = np.argsort(-lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        yield indices, _trimmed_batch(features, indices, lengths, with_targets=True)


def span_outputs(model: nn.Module, batch: dict[str, Any]):
    """The QA model on a window batch, with its start/end targets (the loss is the mean of both cross-entropies)."""
    return model(
        input_ids=batch["input_ids"],
        token_type_ids=batch["token_type_ids"],
        attention_mask=batch["attention_mask"],
        start_positions=batch["start_positions"],
        end_positions=batch["end_positions"],
    )


def predict_span_logits(
    model: nn.Module, features: QAFeatures, batch_size: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray, float]:
    """Start and end logits [N, max_length] in window order, and the mean start/end loss.

    Positions a trimmed batch did not compute get PADDING_LOGIT, as padding does inside the
    model. The loss uses each window's targets (from `prepare_features`; [CLS] for windows
    without the answer) and is averaged over windows. The model's mode is the caller's: the
    loop and a loaded predictor put it in eval mode once.
    """
    num_windows, max_length = features.input_ids.shape
    start_logits = np.full((num_windows, max_length), PADDING_LOGIT, dtype=np.float32)
    end_logits = np.full((num_windows, max_length), PADDING_LOGIT, dtype=np.float32)
    loss_sum = 0.0
    with torch.no_grad():
        for indices, batch in _sequential_batches(features, batch_size):
            batch = {key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}
            output = span_outputs(model, batch)
            width = batch["input_ids"].shape[1]
            start_logits[indices, :width] = output.start_logits.float().cpu().numpy()
            end_logits[indices, :width] = output.end_logits.float().cpu().numpy()
            loss_sum += float(output.loss) * len(indices)
    return start_logits, end_logits, loss_sum / max(num_windows, 1)


@dataclass
class QAEvaluation:
    """Everything one evaluation produced: the flat metrics and the answers behind them."""

    metrics: dict[str, float]  # what the loop logs: exact_match, f1, loss (+ HasAns_/NoAns_ scores for v2.0)
    scores: dict[str, float]  # evaluate_predictions' full report, question counts (ints) included
    predictions: dict[str, str]  # official format: question id -> answer text ("" = no answer)
    n_best: dict[str, list[dict]]


def evaluate_qa(
    model: nn.Module,
    examples: list[QAExample],
    features: QAFeatures,
    flavor: Flavor,
    decoding: DecodingConfig,
    batch_size: int,
    device: torch.device,
) -> QAEvaluation:
    """Official-script EM / F1 (and the v2.0 HasAns/NoAns breakdown) of the model's answers."""
    start_logits, end_logits, loss = predict_span_logits(model, features, batch_size, device)
    predictions, n_best = decode_predictions(
        examples,
        features,
        start_logits,
        end_logits,
        n_best_size=decoding.n_best_size,
        max_answer_length=decoding.max_answer_length,
        null_score_diff_threshold=decoding.null_score_diff_threshold,
        version_2=decoding.version_2,
    )
    scores = dict(evaluate_predictions(examples, predictions, flavor))
    scores["loss"] = loss
    # Question counts are facts about the data, not scores; logging them every evaluation is noise.
    metrics = {key: value for key, value in scores.items() if not key.endswith("total") and key != "missing_predictions"}
    return QAEvaluation(metrics, scores, predictions, n_best)


class QATask(TrainsOnBatches):
    """Adapts `QABatches` and an eval set to the loop's `TrainingTask` protocol.

    `evaluate` returns the flat numbers the loop logs and selects checkpoints by (exact_match,
    f1, loss, ...); the answers of the latest evaluation stay in `last_evaluation` for the
    recipe to write as predictions.json.
    """

    # HasAns_/NoAns_ scores appear for SQuAD v2.0 data.
    metric_directions = {
        "loss": "min",
        "exact_match": "max",
        "f1": "max",
        "HasAns_exact_match": "max",
        "HasAns_f1": "max",
        "NoAns_exact_match": "max",
        "NoAns_f1": "max",
        "rouge_w": "max",
        "HasAns_rouge_w": "max",
        "NoAns_rouge_w": "max",
    }

    def __init__(
        self,
        train_batches: QABatches,
        eval_examples: list[QAExample] | None,
        eval_features: QAFeatures | None,
        flavor: Flavor,
        decoding: DecodingConfig,
        eval_batch_size: int,
        device: torch.device,
    ):
        self.train_batches = train_batches
        self.eval_examples = eval_examples
        self.eval_features = eval_features
        self.flavor = flavor
        self.decoding = decoding
        self.eval_batch_size = eval_batch_size
        self.device = device
        self.last_evaluation: QAEvaluation | None = None

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        output = span_outputs(model, batch)
        return output.loss, {"loss": float(output.loss.detach())}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        if self.eval_examples is None or self.eval_features is None:
            return {}
        self.last_evaluation = evaluate_qa(
            model, self.eval_examples, self.eval_features, self.flavor, self.decoding, self.eval_batch_size, self.device
        )
        return self.last_evaluation.metrics


# ---------------------------------------------------------------------------------------------
# The task on the fine-tuning interface

PREDICTIONS_FILE = "predictions.json"
NBEST_FILE = "nbest_predictions.json"
EVAL_METRICS_FILE = "eval_metrics.json"


@dataclass
class QADataConfig:
    max_length: int = option(384, "QA: tokens per window, [CLS] question [SEP] context [SEP] (BERT's max_seq_length)")
    doc_stride: int = option(128, "QA: tokens between the starts of consecutive windows of a long context (Google BERT's meaning)")
    max_query_length: int = option(64, "QA: questions are cut to this many tokens")
    n_best_size: int = option(20, "QA: start and end candidates per window considered when decoding an answer")
    max_answer_length: int = option(30, "QA: longest answer in tokens")
    null_score_diff_threshold: float = option(
        0.0, 'QA (SQuAD v2.0): answer "" when the no-answer score beats the best span by more than this'
    )
    metric: Literal["auto", "squad", "squad_v2", "korquad", "klue"] = option(
        "auto",
        "QA: official script to score with; auto reads the eval file's version and layout (KorQuAD_v1.0 -> korquad; "
        "KLUE-MRC's guid/question_type questions -> klue: exact match and character ROUGE-W; v2.0 or is_impossible -> squad_v2)",
    )

    def __post_init__(self) -> None:
        if self.doc_stride < 1 or self.max_query_length < 1 or self.n_best_size < 1 or self.max_answer_length < 1:
            raise PrefineError("--doc-stride, --max-query-length, --n-best-size and --max-answer-length must be at least 1")
        if self.max_length - self.max_query_length - 3 < 1:
            raise PrefineError(
                f"--max-length {self.max_length} leaves no room for context after a {self.max_query_length}-token question; "
                "raise --max-length or lower --max-query-length"
            )

    def decoding(self, version_2: bool) -> DecodingConfig:
        return DecodingConfig(self.n_best_size, self.max_answer_length, self.null_score_diff_threshold, version_2)

    def features(self, examples: list[QAExample], tokenizer: Tokenizer, for_training: bool) -> QAFeatures:
        return prepare_features(examples, tokenizer, self.max_length, self.doc_stride, self.max_query_length, for_training=for_training)


@dataclass
class QAPredictConfig:
    question: str | None = option(None, "QA runs: the question to answer in --context")
    context: str | None = option(None, "QA runs: the passage holding the answer")
    nbest: int = option(0, "QA runs: also show the N best answers with probabilities (with --data: write them instead of the answers)")


def resolve_flavor(configured: Literal["auto", "squad", "squad_v2", "korquad", "klue"], detected: Flavor) -> Flavor:
    return detected if configured == "auto" else configured


def load_qa_file(path: str, what: str) -> tuple[list[QAExample], Flavor]:
    examples, flavor, report = load_squad_json(path)
    if not examples:
        raise PrefineError(f"{path} holds no questions; point {what} at a SQuAD-format file with data")
    if report.mismatched:
        notice_once(f"{path}: {report.summary()}")
    return examples, flavor


def format_qa_scores(scores: dict[str, float], flavor: str) -> str:
    rouge = f"  ROUGE-W (KLUE) {scores['rouge_w']:.2f}" if "rouge_w" in scores else ""
    lines = [f"{flavor} on {int(scores['total'])} questions: exact match {scores['exact_match']:.2f}  F1 {scores['f1']:.2f}{rouge}"]
    for group, meaning in (("HasAns", "answerable"), ("NoAns", "unanswerable")):
        if f"{group}_total" in scores:
            group_rouge = f"  ROUGE-W {scores[group + '_rouge_w']:.2f}" if group + "_rouge_w" in scores else ""
            lines.append(
                f"  {meaning} ({int(scores[group + '_total'])}): "
                f"exact match {scores[group + '_exact_match']:.2f}  F1 {scores[group + '_f1']:.2f}{group_rouge}"
            )
    if scores.get("missing_predictions"):
        lines.append(f"  {int(scores['missing_predictions'])} questions got no prediction (scored 0)")
    return "\n".join(lines)


def _as_evaluation(evaluation: QAEvaluation, flavor: str) -> Evaluation:
    outputs = {PREDICTIONS_FILE: evaluation.predictions, NBEST_FILE: evaluation.n_best, EVAL_METRICS_FILE: evaluation.scores}
    counts = {key: int(value) for key, value in evaluation.scores.items() if key not in evaluation.metrics}
    return Evaluation(evaluation.metrics, format_qa_scores(evaluation.scores, flavor), outputs, counts)


class QAPredictor(Predictor):
    input_fields = ("question", "context")

    def __init__(self, task, model, tokenizer, saved, head, device) -> None:
        super().__init__(task, model, tokenizer, saved, head, device)
        self.flavor: Flavor = saved["flavor"]  # how the run's own eval set was scored
        self.allows_no_answer = bool(saved["allows_no_answer"])

    def answer(self, examples: list[QAExample], batch_size: int) -> tuple[dict[str, str], dict[str, list[dict]]]:
        """(answers, n-best lists) by question id, for questions without gold answers."""
        features = self.data.features(examples, self.tokenizer, for_training=False)
        start_logits, end_logits, _ = predict_span_logits(self.model, features, batch_size, self.device)
        decoding = self.data.decoding(self.allows_no_answer)
        return decode_predictions(
            examples,
            features,
            start_logits,
            end_logits,
            decoding.n_best_size,
            decoding.max_answer_length,
            decoding.null_score_diff_threshold,
            decoding.version_2,
        )

    def predict_records(self, records: list[dict[str, Any]], batch_size: int = 64) -> list[dict[str, Any]]:
        examples = []
        for index, record in enumerate(records):
            if not isinstance(record.get("question"), str) or not isinstance(record.get("context"), str):
                raise PrefineError(f'input {index + 1} needs "question" and "context" strings')
            examples.append(QAExample(str(index), record["question"], record["context"], []))
        _, n_best = self.answer(examples, batch_size)
        results = []
        for example in examples:
            best: dict[str, Any] = (
                n_best[example.id][0] if n_best.get(example.id) else {"text": "", "probability": 0.0, "start_char": -1, "end_char": -1}
            )
            results.append(
                {
                    "answer": best["text"],
                    "probability": float(best["probability"]),
                    "start": int(best.get("start_char", -1)),
                    "end": int(best.get("end_char", -1)),
                }
            )
        return results

    def evaluate_source(self, source: str, batch_size: int) -> Evaluation:
        examples, detected = load_qa_file(source, "--data")
        flavor = resolve_flavor(self.data.metric, detected)
        features = self.data.features(examples, self.tokenizer, for_training=False)
        # v2.0 data asks the model to abstain; a v1.1-trained model then abstains only when [CLS] wins.
        decoding = self.data.decoding(self.allows_no_answer or flavor in NO_ANSWER_FLAVORS)
        return _as_evaluation(evaluate_qa(self.model, examples, features, flavor, decoding, batch_size, self.device), flavor)

    def predict_cli(self, source: str, options: QAPredictConfig, output: TextIO, format: str, batch_size: int) -> int:
        single = options.question is not None or options.context is not None
        if single:
            if not options.question or not options.context:
                raise PrefineError("pass both --question and --context (or --data FILE.json with many questions)")
            if source != "-":
                raise PrefineError("pass either --question/--context or --data FILE.json, not both")
            examples = [QAExample("question", options.question, options.context, [])]
        elif source == "-":
            raise PrefineError('this run answers questions: pass --question "..." --context "...", or --data FILE.json (SQuAD format)')
        else:
            examples = read_questions(source)
        predictions, n_best = self.answer(examples, batch_size)
        if single:
            output.write(predictions["question"] + "\n")
            for entry in n_best["question"][: options.nbest]:
                output.write(f"{entry['probability']:.4f}\t{entry['text'] or '(no answer)'}\n")
            return 1
        payload = {key: entries[: options.nbest] for key, entries in n_best.items()} if options.nbest else predictions
        output.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        return len(predictions)


def write_squad_part(path: Path, dataset_json: dict[str, Any]) -> str:
    """One part of a split as a SQuAD object on a single line.

    The recipes look for a carved split at dev-split/train.jsonl and dev.jsonl on every rank
    (`finetune.scoring_for`), so those are the names; one object on one line is both the SQuAD
    JSON `load_squad_json` reads and a valid JSON-lines file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataset_json, ensure_ascii=False) + "\n", encoding="utf-8")
    return str(path)


@dataclass
class PreparedQA:
    train_features: QAFeatures
    eval_examples: list[QAExample] | None
    eval_features: QAFeatures | None
    flavor: Flavor
    decoding: DecodingConfig


class QAFinetuneTask(FinetuneTask):
    name = "qa"
    aliases = ("question-answering",)
    help = "extractive question answering on SQuAD-format JSON (SQuAD v1.1/v2.0, KorQuAD 1.0, KLUE-MRC)"
    data_config = QADataConfig
    predict_config = QAPredictConfig
    architecture = "BertForQuestionAnswering"
    train_hint = "--train FILE.json (SQuAD format)"
    metric_directions = QATask.metric_directions

    def default_best_metric(self, prepared: PreparedData) -> str:
        return "f1"

    def max_length(self, data: QADataConfig) -> tuple[int, str]:
        return data.max_length, "--max-length"

    def check_inputs(self, train: str, eval: str | None, data: QADataConfig) -> None:
        load_qa_file(train, "--train")
        if eval:
            load_qa_file(eval, "--eval")

    def split_dev(self, train: str, data: QADataConfig, fraction: float, seed: int, folder: Path) -> DevSplit:
        load_qa_file(train, "--train")  # the format checks, with their one-line errors, before the raw JSON is cut
        split = split_squad_dataset(read_json_file(Path(train)), fraction, seed, source=train)
        if split.grouped_by != "article":
            notice_once(
                f"{train}: the dev split holds out whole paragraphs, not articles: {split.num_groups} paragraph(s) "
                f"but too few articles (titles) to hold out {fraction:g} of them; articles may be on both sides, contexts are not"
            )
        # num_train/num_dev count questions; grouped_by is "article", or "paragraph" when the file
        # had too few articles (qa_data.split_squad_dataset).
        return DevSplit(
            train=write_squad_part(folder / "train.jsonl", split.train),
            dev=write_squad_part(folder / "dev.jsonl", split.dev),
            num_train=split.num_train,
            num_dev=split.num_dev,
            stratified=False,  # no labels to keep shares of; the groups are drawn at random
            grouped_by=split.grouped_by,
        )

    def prepare(self, train: str, eval: str | None, data: QADataConfig, tokenizer: Tokenizer, fraction: float, seed: int) -> PreparedData:
        train_examples, train_flavor = load_qa_file(train, "--train")
        train_examples = [train_examples[index] for index in subsample_indices(len(train_examples), fraction, seed)]
        features = data.features(train_examples, tokenizer, for_training=True)
        if features.skipped_example_ids:
            notice_once(f"{train}: {len(features.skipped_example_ids)} questions without a usable answer span are left out of training")
        if not len(features):
            raise PrefineError("the QA training data yields no windows (every question was skipped); check the answers in --train")
        # A model trained on unanswerable questions has learned when to point at [CLS]; only then may it answer "".
        allows_no_answer = train_flavor in NO_ANSWER_FLAVORS
        flavor = resolve_flavor(data.metric, train_flavor)
        eval_examples = eval_features = None
        if eval:
            eval_examples, eval_flavor = load_qa_file(eval, "--eval")
            flavor = resolve_flavor(data.metric, eval_flavor)
            eval_features = data.features(eval_examples, tokenizer, for_training=False)
        train_features = compact_training_features(features)
        del features  # the character offsets are only needed for eval windows
        return PreparedData(
            num_train_examples=len(train_examples),
            num_train_items=len(train_features.input_ids),
            has_eval=eval_examples is not None,
            head={"max_seq_length": data.max_length, "qa_data": dataclasses.asdict(data), "allows_no_answer": allows_no_answer},
            record={"flavor": flavor, "allows_no_answer": allows_no_answer, "num_train_windows": len(train_features.input_ids)},
            summary=f"{len(train_examples)} questions ({len(train_features.input_ids)} windows of up to {data.max_length} tokens); "
            f"scored as {flavor}",
            payload=PreparedQA(train_features, eval_examples, eval_features, flavor, data.decoding(allows_no_answer)),
        )

    def build_model(self, config: BertConfig, head: dict[str, Any], run: Any = None) -> nn.Module:

        return BertForQuestionAnswering(config)

    def onnx_outputs(self) -> tuple[str, ...]:
        return ("start_logits", "end_logits")

    def training_task(
        self, prepared: PreparedData, micro_batch_size: int, pad_id: int, seed: int, eval_batch_size: int, device: torch.device
    ) -> TrainingTask:
        data: PreparedQA = prepared.payload
        batches = QABatches(data.train_features, micro_batch_size, seed)
        return QATask(batches, data.eval_examples, data.eval_features, data.flavor, data.decoding, eval_batch_size, device)

    def predictor(self, model, tokenizer, saved, head, device) -> QAPredictor:
        return QAPredictor(self, model, tokenizer, saved, head, device)

    def final_evaluation(self, predictor: Predictor, prepared: PreparedData, batch_size: int) -> Evaluation:
        data: PreparedQA = prepared.payload
        if data.eval_examples is None or data.eval_features is None:
            raise ValueError("final_evaluation needs prepared data with held-out questions (fine-tuning calls it only then)")
        evaluation = evaluate_qa(
            predictor.model, data.eval_examples, data.eval_features, data.flavor, data.decoding, batch_size, predictor.device
        )
        return _as_evaluation(evaluation, data.flavor)


register_task(QAFinetuneTask())
