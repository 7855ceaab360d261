"""Pre-training task statistics: the discriminator's ROC AUC, against hand-computed cases and scikit-learn."""

from __future__ import annotations

import math

import pytest
import torch

from prefine.objectives.electra import roc_auc


def test_auc_hand_computed_with_ties_counting_half():
    # Pairs (positive, negative): 0.9 beats 0.1 and 0.5; 0.5 ties 0.5 (half) and beats 0.1 -> (2 + 1.5) / 4.
    scores = torch.tensor([0.9, 0.5, 0.5, 0.1])
    positive = torch.tensor([True, True, False, False])
    assert roc_auc(scores, positive) == pytest.approx(3.5 / 4)
    assert roc_auc(torch.tensor([0.2, 0.8]), torch.tensor([False, True])) == 1.0
    assert roc_auc(torch.tensor([0.8, 0.2]), torch.tensor([False, True])) == 0.0
    assert roc_auc(torch.zeros(6), torch.tensor([True, False] * 3)) == 0.5  # a constant score cannot rank


def test_auc_is_undefined_with_one_class_only():
    assert math.isnan(roc_auc(torch.tensor([0.1, 0.7]), torch.tensor([False, False])))


def test_auc_matches_scikit_learn_on_tied_logits():
    metrics = pytest.importorskip("sklearn.metrics")
    generator = torch.Generator().manual_seed(3)
    positive = torch.rand(2000, generator=generator) < 0.15
    # Rounded logits: many ties, as a discriminator stuck near its prior gives.
    scores = (torch.randn(2000, generator=generator) + positive.float() * 0.4).round(decimals=1)
    assert roc_auc(scores, positive) == pytest.approx(metrics.roc_auc_score(positive.numpy(), scores.numpy()), abs=1e-12)
