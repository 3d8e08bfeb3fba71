import numpy as np
import pytest

from colliderfm.evaluate.metrics import (
    auc,
    binary_metrics,
    classifier_metrics,
    rejection,
    roc_curve,
    sic,
)


def test_auc_hand_computed() -> None:
    # pairs (s, b): s scores 0.9, 0.4; b scores 0.6, 0.1 -> 3 of 4 pairs ordered -> 0.75
    labels = np.array([1, 1, 0, 0])
    scores = np.array([0.9, 0.4, 0.6, 0.1])
    assert auc(labels, scores) == pytest.approx(0.75)


def test_auc_matches_rank_statistic() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 2000)
    scores = rng.normal(labels * 1.0, 1.0).round(1)  # with ties
    s, b = scores[labels == 1], scores[labels == 0]
    mw = ((s[:, None] > b[None]).sum() + 0.5 * (s[:, None] == b[None]).sum()) / (s.size * b.size)
    assert auc(labels, scores) == pytest.approx(mw, abs=1e-9)


def test_rejection_interpolated() -> None:
    eps_s = np.array([0.0, 0.2, 0.4, 1.0])
    eps_b = np.array([0.0, 0.01, 0.03, 1.0])
    # at eps_S = 0.3: eps_B = 0.02 -> rejection 50
    assert rejection(eps_s, eps_b, 0.3) == pytest.approx(50.0)
    assert rejection(eps_s, np.zeros(4), 0.3) is None


def test_sic_interpolated() -> None:
    eps_s = np.array([0.0, 0.2, 0.4, 1.0])
    eps_b = np.array([0.0, 0.01, 0.03, 1.0])
    # at eps_S = 0.3: eps_B = 0.02 -> SIC 0.3 / sqrt(0.02) = 2.1213
    assert sic(eps_s, eps_b, 0.3) == pytest.approx(0.3 / np.sqrt(0.02))
    assert sic(eps_s, np.zeros(4), 0.3) is None
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(500), np.zeros(500)]
    m = binary_metrics(labels, rng.normal(labels, 1.0))
    for wp in ("0.3", "0.5"):  # SIC = eps_S * sqrt(rejection) at the same working point
        assert m["sic"][wp] == pytest.approx(float(wp) * np.sqrt(m["rejection"][wp]))


def test_perfect_and_random() -> None:
    labels = np.r_[np.ones(100), np.zeros(100)]
    m = binary_metrics(labels, np.r_[np.full(100, 0.9), np.full(100, 0.1)])
    assert m["auc"] == 1.0 and m["accuracy"] == 1.0 and m["rejection"]["0.5"] is None
    rng = np.random.default_rng(1)
    assert abs(auc(labels, rng.random(200)) - 0.5) < 0.1
    eps_s, eps_b, _ = roc_curve(labels, rng.random(200))
    assert eps_s[0] == eps_b[0] == 0 and eps_s[-1] == eps_b[-1] == 1


def test_multiclass() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2])
    probs = np.eye(3)[labels] * 0.8 + 0.2 / 3
    m = classifier_metrics(labels, probs, ["QCD", "A", "B"], signal_class=1)
    assert m["auc"] == 1.0 and m["accuracy"] == 1.0 and set(m["auc_per_class"]) == {"QCD", "A", "B"}
