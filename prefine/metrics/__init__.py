"""Task metrics: classification/regression scores (MCC, F1 at a threshold included) and the official SQuAD/KorQuAD/KLUE-MRC QA scores."""

from prefine.metrics.classification import classification_metrics, format_metrics_table, regression_metrics
from prefine.metrics.squad import (
    Flavor,
    detect_flavor,
    evaluate_predictions,
    exact_match_score,
    f1_score,
    normalize_answer,
)

__all__ = [
    "Flavor",
    "classification_metrics",
    "detect_flavor",
    "evaluate_predictions",
    "exact_match_score",
    "f1_score",
    "format_metrics_table",
    "normalize_answer",
    "regression_metrics",
]
