"""Classification and regression metrics, computed with numpy, plus a plain-text report table.

Everything is derived from one confusion matrix built with `np.bincount`, so a million
predictions cost one vectorised pass and no per-example Python. The numbers follow
scikit-learn's conventions (`precision_recall_fscore_support(labels=all classes,
zero_division=0)`, `matthews_corrcoef`, `scipy.stats.pearsonr`, `scipy.stats.spearmanr`) so
that scores reported by prefine can be compared with papers and other tools without either
dependency. The suites' official numbers are among them: Matthews correlation (GLUE CoLA) and,
for a regression, the F1 of the scores binarised at a threshold (KLUE-STS: `>= 3.0` on both
sides, as KLUE's `klue_sts_f1` computes it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from prefine.errors import PrefineError


def _as_label_array(values: Sequence[int] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise PrefineError(f"{name} must be a flat list of class indices, got an array of shape {array.shape}.")
    whole_floats = array.dtype.kind == "f" and bool(np.all(array == np.round(array)))
    if array.size and array.dtype.kind not in "biu" and not whole_floats:
        raise PrefineError(f"{name} must hold integer class indices; map label names to indices first.")
    return array.astype(np.int64)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator with 0 where the denominator is 0 (sklearn's zero_division=0)."""
    numerator = numerator.astype(np.float64)
    result = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=result, where=denominator != 0)
    return result


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    label_names: list[str],
) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    `y_true` and `y_pred` hold class indices into `label_names`. Every class in `label_names`
    counts towards macro-F1, including a class that never occurs and is never predicted: its
    precision, recall and F1 are all 0 (scikit-learn's `labels=range(K), zero_division=0`), so
    macro-F1 cannot be inflated by dropping classes the model ignores. With exactly two classes
    `binary_f1` is the F1 of class index 1 (the positive class, as in GLUE's MRPC/QQP).

    `mcc` is the Matthews correlation coefficient in its multi-class form (Gorodkin's R_K, as
    scikit-learn's `matthews_corrcoef`; 0 when either side holds a single class).

    Returns {"accuracy", "macro_f1", "mcc", ["binary_f1"], "per_class": {name: {precision, recall,
    f1, support}}, "confusion_matrix": [[...]] (rows = true class, columns = predicted),
    "label_names", "num_examples"}.
    """
    true = _as_label_array(y_true, "y_true")
    pred = _as_label_array(y_pred, "y_pred")
    num_classes = len(label_names)
    if num_classes == 0:
        raise PrefineError("No label names given; pass the list of class names the indices refer to.")
    if true.shape != pred.shape:
        raise PrefineError(f"Got {true.size} true labels but {pred.size} predictions; they must be the same length.")
    if true.size == 0:
        raise PrefineError("No examples to evaluate: the evaluation set is empty.")
    for name, array in (("y_true", true), ("y_pred", pred)):
        bad = (array < 0) | (array >= num_classes)
        if bad.any():
            raise PrefineError(
                f"{name} contains class index {int(array[bad][0])}, outside 0..{num_classes - 1} "
                f"for labels {label_names}; check the label column and the label list."
            )

    # One bincount over (true, pred) pairs gives the whole confusion matrix.
    confusion = np.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    confusion = confusion.reshape(num_classes, num_classes)
    true_positives = np.diag(confusion)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)

    precision = _safe_divide(true_positives, predicted)
    recall = _safe_divide(true_positives, support)
    # 2PR/(P+R) == 2TP/(2TP+FP+FN); the latter needs no special case when TP is 0.
    f1 = _safe_divide(2 * true_positives, support + predicted)

    metrics: dict = {
        "accuracy": float(true_positives.sum() / true.size),
        "macro_f1": float(f1.mean()),
        "mcc": _matthews(confusion),
    }
    if num_classes == 2:
        metrics["binary_f1"] = float(f1[1])
    metrics["per_class"] = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(label_names)
    }
    metrics["confusion_matrix"] = confusion.tolist()
    metrics["label_names"] = list(label_names)
    metrics["num_examples"] = int(true.size)
    return metrics


def _matthews(confusion: np.ndarray) -> float:
    """Matthews correlation from a confusion matrix (rows true, columns predicted), K classes."""
    confusion = confusion.astype(np.float64)
    true_counts, predicted_counts = confusion.sum(axis=1), confusion.sum(axis=0)
    total, correct = confusion.sum(), np.trace(confusion)
    covariance = correct * total - predicted_counts @ true_counts
    spread = (total**2 - predicted_counts @ predicted_counts) * (total**2 - true_counts @ true_counts)
    return float(covariance / np.sqrt(spread)) if spread > 0 else 0.0


def f1_at_threshold(y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray, threshold: float) -> float:
    """F1 of (y_pred >= threshold) against (y_true >= threshold): a regression scored as a binary decision.

    KLUE-STS reports it with threshold 3.0 on the real-valued similarity (scikit-learn's binary
    F1, 0 when no pair is positive on either side).
    """
    true = np.asarray(y_true, dtype=np.float64).reshape(-1) >= threshold
    pred = np.asarray(y_pred, dtype=np.float64).reshape(-1) >= threshold
    if true.shape != pred.shape:
        raise PrefineError(f"Got {true.size} true values but {pred.size} predictions; they must be the same length.")
    both = int(np.sum(true & pred))
    denominator = int(true.sum() + pred.sum())
    return 2 * both / denominator if denominator else 0.0


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of the ranks they span (scipy's 'average')."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    first_rank_of_group = np.cumsum(counts) - counts + 1
    average_rank_of_group = first_rank_of_group + (counts - 1) / 2.0
    return average_rank_of_group[inverse.reshape(-1)]


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant (undefined, as in scipy)."""
    x_centered = x - x.mean()
    y_centered = y - y.mean()
    denominator = np.sqrt((x_centered**2).sum() * (y_centered**2).sum())
    if denominator == 0:
        return float("nan")
    return float(np.clip((x_centered * y_centered).sum() / denominator, -1.0, 1.0))


def regression_metrics(
    y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray, binary_threshold: float | None = None
) -> dict:
    """Mean squared error, Pearson and Spearman correlation (as used for STS-B).

    Spearman is Pearson on average ranks, so ties are handled like `scipy.stats.spearmanr`.
    A correlation with a constant side is undefined and reported as NaN rather than 0,
    because 0 would read as "no relation" when the truth is "no variation".
    Returns {"mse", "pearson", "spearman", ["f1_at_threshold"], "num_examples"};
    the F1 (see `f1_at_threshold`) only when `binary_threshold` is given.
    """
    true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if true.shape != pred.shape:
        raise PrefineError(f"Got {true.size} true values but {pred.size} predictions; they must be the same length.")
    if true.size == 0:
        raise PrefineError("No examples to evaluate: the evaluation set is empty.")
    if not (np.isfinite(true).all() and np.isfinite(pred).all()):
        raise PrefineError("Regression targets or predictions contain NaN or infinity; check the label column.")
    metrics: dict = {
        "mse": float(np.mean((true - pred) ** 2)),
        "pearson": _pearson(true, pred),
        "spearman": _pearson(_average_ranks(true), _average_ranks(pred)),
    }
    if binary_threshold is not None:
        metrics["f1_at_threshold"] = f1_at_threshold(true, pred, binary_threshold)
    metrics["num_examples"] = int(true.size)
    return metrics


def _format_number(value: float) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _render_rows(rows: list[list[str]]) -> list[str]:
    """Left-align the first column and right-align the rest, as numbers read best."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return lines


def format_metrics_table(metrics: dict) -> str:
    """A plain-text report: headline numbers, then per-class P/R/F1/support, then the confusion matrix.

    Works for the output of `classification_metrics`, `regression_metrics` or any flat dict of
    numbers (QA scores); sections whose data is absent are left out.
    """
    headline = [[key, _format_number(value)] for key, value in metrics.items() if isinstance(value, (int, float))]
    sections: list[list[str]] = []
    if headline:
        sections.append(_render_rows(headline))

    per_class = metrics.get("per_class")
    if per_class:
        rows = [["class", "precision", "recall", "f1", "support"]]
        for name, scores in per_class.items():
            rows.append([name] + [f"{scores[key]:.4f}" for key in ("precision", "recall", "f1")] + [str(scores["support"])])
        sections.append(_render_rows(rows))

    confusion = metrics.get("confusion_matrix")
    if confusion:
        names = metrics.get("label_names") or list(per_class or range(len(confusion)))
        names = [str(name) for name in names]
        rows = [["true \\ predicted"] + names]
        rows += [[name] + [str(count) for count in row] for name, row in zip(names, confusion)]
        sections.append(_render_rows(rows))

    return "\n\n".join("\n".join(section) for section in sections)
