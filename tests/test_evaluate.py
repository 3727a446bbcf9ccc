"""Metrics against scikit-learn and a hand computation."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from boomda.evaluate import accuracy, confusion_matrix, weighted_f1


def test_weighted_f1_by_hand():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    # class 0: P=1, R=2/3 -> F1=0.8; class 1: P=1/2, R=1/2 -> 0.5; class 2: P=1/2, R=1 -> 2/3
    expected = (3 * 0.8 + 2 * 0.5 + 1 * (2 / 3)) / 6
    assert weighted_f1(y_true, y_pred, 3) == pytest.approx(expected)
    assert accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    assert confusion_matrix(y_true, y_pred, 3).tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_weighted_f1_matches_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(50):
        k = int(rng.integers(2, 8))
        y_true = rng.integers(0, k, 100)
        y_pred = np.where(rng.random(100) < 0.5, y_true, rng.integers(0, k, 100))
        expected = f1_score(y_true, y_pred, average="weighted", labels=np.arange(k),
                            zero_division=0)
        assert weighted_f1(y_true, y_pred, k) == pytest.approx(expected, abs=1e-12)
