"""Extractive question answering on the shared training loop: window batches, the task, span logits.

`qa_data` turns SQuAD-format files into fixed-length windows ("[CLS] question [SEP] context
window [SEP]", padded to max_length) and decodes start/end logits back into answer text. This
module plugs those windows into the training loop:

1. `QABatches` serves training windows from a data position (epoch, windows consumed), in a
   fresh seeded order every epoch, so a resumed run sees exactly the batches the interrupted
   one would have seen. A batch is trimmed to its longest real window: short contexts and the
   last window of a long one are mostly padding, and attention over padding is wasted work.
2. `QATask` trains on the start/end loss and evaluates the way the official scripts score:
   logits of every eval window -> n-best spans merged across windows -> EM / F1.
3. `predict_span_logits` runs the model over windows in length-sorted batches and returns
   [N, max_length] logits in window order, the shape `decode_predictions` expects.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from prefine.errors import PrefineError
from prefine.tasks.batching import SeekableBatches
from prefine.metrics.squad import Flavor, evaluate_predictions
from prefine.pretraining_data.batches import DataPosition  # (epoch, examples consumed), shared with pre-training
from prefine.tasks.qa_data import QAExample, QAFeatures, decode_predictions

# Logit given to the padding positions a trimmed batch never computed: the same "never an
# answer boundary" value the model puts on masked positions.
PADDING_LOGIT = float(np.finfo(np.float32).min)


@dataclass
class DecodingConfig:
    """How logits become answers; the recipe's QADataConfig carries the same fields."""

    n_best_size: int = 20
    max_answer_length: int = 30
    null_score_diff_threshold: float = 0.0
    version_2: bool = False  # the model may answer "" (SQuAD v2.0 unanswerable questions)


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


class QABatches(SeekableBatches):
    """Training windows, trimmed per batch to the longest real window (see SeekableBatches).

    Only the training inputs are kept (compactly): a SQuAD training set is ~90k windows, and the
    character offsets that decoding needs are useless here.
    """

    unit = "windows"

    def __init__(self, features: QAFeatures, batch_size: int, seed: int, shuffle: bool = True):
        if not len(features):
            raise PrefineError("the QA training data yields no windows (every question was skipped); check the answers in --train")
        self.lengths = window_lengths(features)
        width = int(self.lengths.max())
        self.features = QAFeatures(
            input_ids=features.input_ids[:, :width].astype(np.int32),
            token_type_ids=features.token_type_ids[:, :width].astype(np.int8),
            attention_mask=features.attention_mask[:, :width].astype(np.int8),
            start_positions=features.start_positions,
            end_positions=features.end_positions,
            example_index=features.example_index,
            offsets=np.zeros((0, 0, 2), dtype=np.int32),
        )
        super().__init__(len(self.lengths), batch_size, seed, shuffle)

    def collate(self, indices: np.ndarray) -> dict[str, Any]:
        return _trimmed_batch(self.features, indices, self.lengths, with_targets=True)

    def windows_per_epoch(self, world_size: int) -> int:
        return self.items_per_epoch(world_size)


def _sequential_batches(features: QAFeatures, batch_size: int) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
    """(indices, batch) over every window once, longest first, so little padding is computed."""
    lengths = window_lengths(features)
    order = np.argsort(-lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        yield indices, _trimmed_batch(features, indices, lengths, with_targets=True)


def predict_span_logits(
    model: nn.Module, features: QAFeatures, batch_size: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray, float]:
    """Start and end logits [N, max_length] in window order, and the mean start/end loss.

    Positions a trimmed batch did not compute get PADDING_LOGIT, as padding does inside the
    model. The loss uses each window's targets (from `prepare_features`; [CLS] for windows
    without the answer) and is averaged over windows.
    """
    was_training = model.training
    model.eval()
    num_windows, max_length = features.input_ids.shape
    start_logits = np.full((num_windows, max_length), PADDING_LOGIT, dtype=np.float32)
    end_logits = np.full((num_windows, max_length), PADDING_LOGIT, dtype=np.float32)
    loss_sum = 0.0
    with torch.no_grad():
        for indices, batch in _sequential_batches(features, batch_size):
            batch = {key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}
            output = model(
                input_ids=batch["input_ids"],
                token_type_ids=batch["token_type_ids"],
                attention_mask=batch["attention_mask"],
                start_positions=batch["start_positions"],
                end_positions=batch["end_positions"],
            )
            width = batch["input_ids"].shape[1]
            start_logits[indices, :width] = output.start_logits.float().cpu().numpy()
            end_logits[indices, :width] = output.end_logits.float().cpu().numpy()
            loss_sum += float(output.loss) * len(indices)
    model.train(was_training)
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


class QATask:
    """Adapts `QABatches` and an eval set to the loop's `TrainingTask` protocol.

    `evaluate` returns the flat numbers the loop logs and selects checkpoints by (exact_match,
    f1, loss, ...); the answers of the latest evaluation stay in `last_evaluation` for the
    recipe to write as predictions.json.
    """

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

    def start_position(self) -> DataPosition:
        return self.train_batches.start_position()

    def batch_at(self, position: DataPosition, rank: int, world_size: int) -> tuple[dict[str, Any], DataPosition]:
        return self.train_batches.batch_at(position, rank, world_size)

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        output = model(
            input_ids=batch["input_ids"],
            token_type_ids=batch["token_type_ids"],
            attention_mask=batch["attention_mask"],
            start_positions=batch["start_positions"],
            end_positions=batch["end_positions"],
        )
        return output.loss, {"loss": float(output.loss.detach())}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        if self.eval_examples is None or self.eval_features is None:
            return {}
        self.last_evaluation = evaluate_qa(
            model, self.eval_examples, self.eval_features, self.flavor, self.decoding, self.eval_batch_size, self.device
        )
        return self.last_evaluation.metrics
