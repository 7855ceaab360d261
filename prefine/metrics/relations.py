"""Relation-extraction scores as KLUE defines them: micro F1 without no_relation, and AUPRC over every class.

KLUE's baseline (klue_baseline/metrics/functional.py) scores relation extraction with two numbers:

- `klue_re_micro_f1`: scikit-learn's `f1_score(average="micro", labels=<every class but
  no_relation>)`. Counting only the real relations is what keeps a model that answers
  "no_relation" to everything from scoring well: its true positives are all no_relation, which
  do not count, and every real relation it misses is a false negative.
- `klue_re_auprc`: for each class c, the area under the precision-recall curve of "is it c?"
  (one-hot gold labels against the predicted probability of c), computed as
  `auc(recall, precision)` over `precision_recall_curve`, i.e. the trapezoid rule, and averaged
  over all classes, no_relation included (KLUE's 30; here the classes of the run's head, which are
  KLUE's 30 when it trains on KLUE-RE). It scores the probabilities, not the argmax, so it
  rewards a model that ranks the right pairs first even where its decision is wrong.

KLUE multiplies both by 100; here they stay in 0-1, like every other prefine metric. The
numbers follow scikit-learn exactly (the tests compare them on random inputs), including its
convention for a class no gold label has: recall is taken as 1 at every threshold, so that class
adds an area of (precision at the lowest threshold + 1) / 2, i.e. 0.5, to the average. KLUE's
2021 scikit-learn gave NaN there instead; on KLUE's dev set every class occurs, so the two agree.
prefine computes them with numpy; scikit-learn is only a test dependency.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from prefine.errors import PrefineError
from prefine.metrics.classification import classification_metrics

NO_RELATION = "no_relation"


def _class_indices(values: Sequence[int] | np.ndarray, num_classes: int, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "biu"):
        raise PrefineError(f"{name} must be a flat list of integer class indices, got an array of shape {array.shape} ({array.dtype})")
    array = array.astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise PrefineError(f"{name} holds a class index outside 0..{num_classes - 1}; check the label list")
    return array


def relation_micro_f1(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, label_names: Sequence[str], no_relation: str = NO_RELATION
) -> float:
    """Micro F1 over every relation class except `no_relation` (KLUE's `klue_re_micro_f1`, in 0-1).

    `y_true`/`y_pred` index `label_names`. Without a `no_relation` class every class counts (plain
    micro F1, which is accuracy). A set with no real relation in gold or prediction scores 0
    (scikit-learn's zero_division default).
    """
    num_classes = len(label_names)
    true = _class_indices(y_true, num_classes, "y_true")
    pred = _class_indices(y_pred, num_classes, "y_pred")
    if true.shape != pred.shape:
        raise PrefineError(f"got {true.size} gold labels but {pred.size} predictions; they must be the same length")
    counted = np.ones(num_classes, dtype=bool)
    if no_relation in label_names:
        counted[list(label_names).index(no_relation)] = False
    # Micro over the counted classes: TP where gold == predicted and counted; FP where a counted
    # class is predicted wrongly; FN where a counted gold class is missed.
    true_positives = int(np.sum((true == pred) & counted[true]))
    predicted = int(np.sum(counted[pred]))
    gold = int(np.sum(counted[true]))
    denominator = predicted + gold
    return 2.0 * true_positives / denominator if denominator else 0.0


def average_precision_area(targets: np.ndarray, scores: np.ndarray) -> float:
    """The trapezoid area under one class's precision-recall curve: scikit-learn's `auc(*precision_recall_curve(...)[1::-1])`.

    `targets` is 0/1 gold membership, `scores` the predicted probability of the class. The curve
    has one point per distinct score (highest first), then (recall 0, precision 1).
    """
    order = np.argsort(scores, kind="mergesort")[::-1]
    sorted_scores = scores[order]
    sorted_targets = targets[order].astype(np.float64)
    # The last index of every run of equal scores: a threshold admits all of a tie at once.
    threshold_ends = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
    true_positives = np.cumsum(sorted_targets)[threshold_ends]
    precision = true_positives / (threshold_ends + 1)
    recall = true_positives / true_positives[-1] if true_positives[-1] else np.ones_like(true_positives)
    precision = np.r_[precision[::-1], 1.0]
    recall = np.r_[recall[::-1], 0.0]
    # Recall falls along the curve; scikit-learn's auc then integrates with the sign flipped.
    return float(-np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2.0))


def relation_auprc(y_true: Sequence[int] | np.ndarray, probabilities: np.ndarray) -> tuple[float, list[float]]:
    """KLUE's `klue_re_auprc` in 0-1: the mean over all classes of each class's PR-curve area; and the per-class areas.

    `probabilities` is [N, num_classes] (a row per example); every class counts, no_relation included.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or not probabilities.shape[1]:
        raise PrefineError(f"probabilities must be [examples, classes], got shape {probabilities.shape}")
    num_classes = probabilities.shape[1]
    true = _class_indices(y_true, num_classes, "y_true")
    if true.size != probabilities.shape[0]:
        raise PrefineError(f"got {true.size} gold labels but {probabilities.shape[0]} rows of probabilities")
    if not true.size:
        raise PrefineError("no examples to score: the evaluation set is empty")
    areas = [average_precision_area((true == c).astype(np.int64), probabilities[:, c]) for c in range(num_classes)]
    return float(np.mean(areas)), areas


def relation_metrics(
    y_true: Sequence[int] | np.ndarray, probabilities: np.ndarray, label_names: Sequence[str], no_relation: str = NO_RELATION
) -> dict:
    """micro_f1 and auprc (KLUE's two RE scores), accuracy, and classification_metrics' per-class report and confusion matrix.

    The prediction of an example is its most probable class. `auprc_per_class` maps each class to its area.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predicted = probabilities.argmax(axis=1) if probabilities.ndim == 2 else probabilities
    auprc, areas = relation_auprc(y_true, probabilities)
    report = classification_metrics(y_true, predicted, list(label_names))
    return {
        "micro_f1": relation_micro_f1(y_true, predicted, label_names, no_relation),
        "auprc": auprc,
        **report,
        "auprc_per_class": {name: area for name, area in zip(label_names, areas)},
    }
