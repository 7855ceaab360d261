"""Classification and regression metrics against hand-computed values (and scikit-learn/scipy when present)."""

import math

import numpy as np
import pytest

from prefine.errors import PrefineError
from prefine.metrics import classification_metrics, format_metrics_table, regression_metrics

LABELS = ["neg", "neutral", "pos"]
# 3 classes, 8 examples.
Y_TRUE = [0, 0, 0, 1, 1, 1, 2, 2]
Y_PRED = [0, 0, 1, 1, 1, 1, 2, 0]
# Confusion matrix (rows true, columns predicted):
#   neg:     [2, 1, 0]   true neg predicted neg, neg, neutral
#   neutral: [0, 3, 0]
#   pos:     [1, 0, 1]   true pos predicted pos, neg
# TP = [2, 3, 1], predicted per class = column sums = [3, 4, 1], support = row sums = [3, 3, 2]
# precision = TP / predicted = [2/3, 3/4, 1]; recall = TP / support = [2/3, 1, 1/2]
# F1 = 2PR/(P+R): neg 2/3; neutral 2*(3/4)(1)/(7/4) = 6/7; pos 2*(1)(1/2)/(3/2) = 2/3
# macro-F1 = (2/3 + 6/7 + 2/3) / 3 = 46/63; accuracy = (2 + 3 + 1) / 8 = 3/4


def test_three_class_hand_computed():
    metrics = classification_metrics(Y_TRUE, Y_PRED, LABELS)
    assert metrics["confusion_matrix"] == [[2, 1, 0], [0, 3, 0], [1, 0, 1]]
    assert metrics["accuracy"] == pytest.approx(3 / 4)
    assert metrics["macro_f1"] == pytest.approx(46 / 63)
    expected = {
        "neg": (2 / 3, 2 / 3, 2 / 3, 3),
        "neutral": (3 / 4, 1.0, 6 / 7, 3),
        "pos": (1.0, 1 / 2, 2 / 3, 2),
    }
    for name, (precision, recall, f1, support) in expected.items():
        scores = metrics["per_class"][name]
        assert scores["precision"] == pytest.approx(precision)
        assert scores["recall"] == pytest.approx(recall)
        assert scores["f1"] == pytest.approx(f1)
        assert scores["support"] == support
    assert "binary_f1" not in metrics
    assert metrics["num_examples"] == 8


def test_binary_hand_computed():
    # true  [1, 1, 1, 0, 0, 0]
    # pred  [1, 0, 0, 1, 0, 0]
    # positive class 1: TP 1, predicted 2, support 3 -> P 1/2, R 1/3, F1 2*1/(3+2) = 2/5
    # class 0: TP 2, predicted 4, support 3 -> P 1/2, R 2/3, F1 2*2/(3+4) = 4/7
    # macro-F1 = (2/5 + 4/7) / 2 = 17/35; accuracy = 3/6
    metrics = classification_metrics(np.array([1, 1, 1, 0, 0, 0]), np.array([1, 0, 0, 1, 0, 0]), ["no", "yes"])
    assert metrics["binary_f1"] == pytest.approx(2 / 5)
    assert metrics["per_class"]["no"]["f1"] == pytest.approx(4 / 7)
    assert metrics["macro_f1"] == pytest.approx(17 / 35)
    assert metrics["accuracy"] == pytest.approx(0.5)
    assert metrics["confusion_matrix"] == [[2, 1], [2, 1]]


def test_class_never_predicted_and_class_never_seen_count_as_zero():
    # true [0, 1, 2, 2], pred [0, 1, 1, 1]: class 2 is never predicted -> P = R = F1 = 0.
    # class 1: TP 1, predicted 3, support 1 -> F1 = 2/(1+3) = 1/2; class 0: F1 1.
    # "unused" (index 3) has no support and no prediction: F1 0, still averaged (sklearn
    # labels=all, zero_division=0): macro = (1 + 1/2 + 0 + 0) / 4.
    metrics = classification_metrics([0, 1, 2, 2], [0, 1, 1, 1], ["a", "b", "c", "unused"])
    assert metrics["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert metrics["per_class"]["b"]["f1"] == pytest.approx(1 / 2)
    assert metrics["per_class"]["unused"]["f1"] == 0.0
    assert metrics["macro_f1"] == pytest.approx(1.5 / 4)


def test_matches_sklearn_on_random_labels():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, size=500)
    y_pred = np.where(rng.random(500) < 0.6, y_true, rng.integers(0, 4, size=500))  # class 4 never predicted
    metrics = classification_metrics(y_true, y_pred, [f"c{i}" for i in range(5)])
    expected_macro = sklearn_metrics.f1_score(y_true, y_pred, labels=range(5), average="macro", zero_division=0)
    assert metrics["macro_f1"] == pytest.approx(expected_macro)
    assert metrics["confusion_matrix"] == sklearn_metrics.confusion_matrix(y_true, y_pred, labels=range(5)).tolist()


def test_bad_inputs_raise_prefine_error():
    with pytest.raises(PrefineError, match="outside 0..1"):
        classification_metrics([0, 2], [0, 1], ["a", "b"])
    with pytest.raises(PrefineError, match="same length"):
        classification_metrics([0, 1], [0], ["a", "b"])
    with pytest.raises(PrefineError, match="empty"):
        classification_metrics([], [], ["a", "b"])
    with pytest.raises(PrefineError, match="integer class indices"):
        classification_metrics(["b"], [1], ["a", "b"])


def test_regression_hand_computed():
    # x = [1, 2, 3], y = [1, 3, 2]: deviations [-1, 0, 1] and [-1, 1, 0];
    # pearson = 1 / sqrt(2 * 2) = 1/2; ranks equal the values, so spearman = 1/2;
    # mse = (0 + 1 + 1) / 3.
    metrics = regression_metrics([1, 2, 3], [1, 3, 2])
    assert metrics["pearson"] == pytest.approx(0.5)
    assert metrics["spearman"] == pytest.approx(0.5)
    assert metrics["mse"] == pytest.approx(2 / 3)


def test_spearman_with_ties_uses_average_ranks():
    # x = [1, 2, 2, 3] -> ranks [1, 2.5, 2.5, 4]; y = [10, 20, 30, 100] -> ranks [1, 2, 3, 4].
    # rank deviations [-1.5, 0, 0, 1.5] and [-1.5, -0.5, 0.5, 1.5]: sum of products 4.5,
    # sums of squares 4.5 and 5 -> spearman = 4.5 / sqrt(22.5) = 3 / sqrt(10).
    # pearson on raw values: deviations [-1, 0, 0, 1] and [-30, -20, -10, 60]:
    # 90 / sqrt(2 * 5000) = 0.9.
    metrics = regression_metrics(np.array([1.0, 2.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0, 100.0]))
    assert metrics["spearman"] == pytest.approx(3 / math.sqrt(10))
    assert metrics["pearson"] == pytest.approx(0.9)


def test_regression_matches_scipy_with_many_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 6, size=300).astype(float)  # STS-B-like scores with heavy ties
    y_pred = y_true + rng.normal(0, 1.5, size=300).round(1)
    metrics = regression_metrics(y_true, y_pred)
    assert metrics["spearman"] == pytest.approx(stats.spearmanr(y_true, y_pred).statistic)
    assert metrics["pearson"] == pytest.approx(stats.pearsonr(y_true, y_pred).statistic)


def test_constant_predictions_give_nan_correlation():
    metrics = regression_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert math.isnan(metrics["pearson"]) and math.isnan(metrics["spearman"])
    assert metrics["mse"] == pytest.approx(2 / 3)


def test_format_metrics_table_shows_headline_per_class_and_confusion():
    table = format_metrics_table(classification_metrics(Y_TRUE, Y_PRED, LABELS))
    lines = table.splitlines()
    assert lines[0].split() == ["accuracy", "0.7500"]
    assert lines[1].split() == ["macro_f1", f"{46 / 63:.4f}"]
    assert ["neutral", "0.7500", "1.0000", "0.8571", "3"] in [line.split() for line in lines]
    header = next(line for line in lines if line.startswith("true \\ predicted"))
    assert header.split()[-3:] == LABELS
    assert ["pos", "1", "0", "1"] in [line.split() for line in lines]
    regression_table = format_metrics_table(regression_metrics([1, 2, 3], [1, 3, 2]))
    assert "pearson" in regression_table and "predicted" not in regression_table
