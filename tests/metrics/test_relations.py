"""KLUE-RE's scores (micro F1 without no_relation, AUPRC over all classes) against scikit-learn, as KLUE's baseline computes them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from prefine.errors import PrefineError
from prefine.metrics.relations import average_precision_area, relation_auprc, relation_metrics, relation_micro_f1

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def klue_re_micro_f1(preds, labels, label_list, no_relation="no_relation"):
    """klue_baseline/metrics/functional.py's klue_re_micro_f1, without the x100."""
    label_indices = list(range(len(label_list)))
    if no_relation in label_list:
        label_indices.remove(label_list.index(no_relation))
    return sklearn_metrics.f1_score(labels, preds, average="micro", labels=label_indices)


def klue_re_auprc(probs, labels, num_classes):
    """klue_baseline/metrics/functional.py's klue_re_auprc (30 classes there), without the x100."""
    one_hot = np.eye(num_classes)[labels]
    score = np.zeros((num_classes,))
    for c in range(num_classes):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a class without gold positives warns
            precision, recall, _ = sklearn_metrics.precision_recall_curve(one_hot[:, c], probs[:, c])
        score[c] = sklearn_metrics.auc(recall, precision)
    return np.average(score)


def random_case(rng: np.random.Generator, num_classes: int, count: int, ties: bool):
    labels = rng.integers(0, num_classes, count)
    logits = rng.normal(size=(count, num_classes)) + 2.0 * np.eye(num_classes)[labels] * rng.random((count, 1))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if ties:
        probs = np.round(probs, 1)  # many equal scores: a threshold admits a whole tie at once
    return labels, probs


@pytest.mark.parametrize("seed", range(8))
def test_micro_f1_matches_klue_definition_with_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    num_classes = int(rng.integers(2, 31))
    names = [f"rel:{index}" for index in range(num_classes)]
    names[int(rng.integers(0, num_classes))] = "no_relation"  # anywhere in the label order
    labels, probs = random_case(rng, num_classes, int(rng.integers(1, 200)), ties=False)
    predicted = probs.argmax(axis=1)
    assert relation_micro_f1(labels, predicted, names) == pytest.approx(klue_re_micro_f1(predicted, labels, names), abs=1e-12)


def test_micro_f1_leaves_out_no_relation_and_without_it_counts_everything():
    names = ["no_relation", "org:members", "per:title"]
    # All right, but all no_relation: no real relation found or missed scores 0, not 1.
    assert relation_micro_f1([0, 0, 0], [0, 0, 0], names) == 0.0
    assert relation_micro_f1([0, 1, 2], [0, 1, 0], names) == pytest.approx(klue_re_micro_f1([0, 1, 0], [0, 1, 2], names))
    other = ["a", "b", "c"]
    assert relation_micro_f1([0, 1, 2], [0, 1, 0], other) == pytest.approx(2 / 3)
    assert relation_micro_f1([0, 1, 2], [0, 1, 0], ["none", "b", "c"], no_relation="none") == pytest.approx(
        klue_re_micro_f1([0, 1, 0], [0, 1, 2], ["none", "b", "c"], no_relation="none")
    )


@pytest.mark.parametrize("seed", range(8))
def test_auprc_matches_klue_definition_with_scikit_learn(seed):
    rng = np.random.default_rng(100 + seed)
    num_classes = int(rng.integers(2, 31))
    labels, probs = random_case(rng, num_classes, int(rng.integers(1, 150)), ties=seed % 2 == 1)
    ours, areas = relation_auprc(labels, probs)
    assert ours == pytest.approx(klue_re_auprc(probs, labels, num_classes), abs=1e-12)
    assert len(areas) == num_classes


def test_one_class_area_matches_scikit_learn_including_a_class_no_gold_label_has():
    rng = np.random.default_rng(7)
    scores = rng.random(50)
    for targets in (rng.integers(0, 2, 50), np.zeros(50, dtype=int), np.ones(50, dtype=int)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            precision, recall, _ = sklearn_metrics.precision_recall_curve(targets, scores)
        assert average_precision_area(targets, scores) == pytest.approx(sklearn_metrics.auc(recall, precision), abs=1e-12)


def test_relation_metrics_reports_both_klue_scores_accuracy_and_the_per_class_report():
    rng = np.random.default_rng(3)
    names = ["no_relation", "org:members", "per:employee_of", "per:title"]
    labels, probs = random_case(rng, len(names), 60, ties=False)
    metrics = relation_metrics(labels, probs, names)
    predicted = probs.argmax(axis=1)
    assert metrics["micro_f1"] == pytest.approx(klue_re_micro_f1(predicted, labels, names))
    assert metrics["auprc"] == pytest.approx(klue_re_auprc(probs, labels, len(names)))
    assert metrics["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(labels, predicted))
    assert set(metrics["per_class"]) == set(names) == set(metrics["auprc_per_class"])


def test_mismatched_inputs_are_clear_errors():
    with pytest.raises(PrefineError, match="same length"):
        relation_micro_f1([0, 1], [0], ["no_relation", "a"])
    with pytest.raises(PrefineError, match="outside"):
        relation_micro_f1([0, 2], [0, 1], ["no_relation", "a"])
    with pytest.raises(PrefineError, match="rows of probabilities"):
        relation_auprc([0, 1, 1], np.full((2, 2), 0.5))
