"""Classifier metrics: ROC, AUC, accuracy and background rejection at fixed signal efficiency.

Conventions (the same everywhere in colliderfm):

* ROC points are (eps_S, eps_B) = (true-positive rate, false-positive rate) over all score
  thresholds, ties handled as one threshold, optional per-example weights.
* AUC is the trapezoidal area under eps_B(eps_S)'s complement, i.e. the usual ROC AUC.
* Rejection at eps_S is ``1 / eps_B`` where ``eps_B`` is *linearly interpolated* on the ROC
  curve at the requested signal efficiency. If ``eps_B`` interpolates to 0 the rejection is
  reported as ``None`` (unbounded at this sample size).
* Significance improvement (SIC) at eps_S is ``eps_S / sqrt(eps_B)`` with the same
  interpolated ``eps_B`` (``None`` where it is 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

WORKING_POINTS: tuple[float, ...] = (0.3, 0.5)


def roc_curve(
    labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of a binary problem.

    Args:
        labels: ``[N]`` 1 for signal, 0 for background.
        scores: ``[N]`` higher means more signal-like.
        weights: ``[N]`` optional example weights.

    Returns:
        (eps_S, eps_B, thresholds), each starting at (0, 0) and ending at (1, 1).
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    w = np.ones_like(scores) if weights is None else np.asarray(weights, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    s, y, w = scores[order], labels[order], w[order]
    tp = np.cumsum(w * y)
    fp = np.cumsum(w * ~y)
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # end of each tie group
    tp, fp, thr = tp[last], fp[last], s[last]
    n_s, n_b = max(tp[-1] if tp.size else 0.0, 1e-300), max(fp[-1] if fp.size else 0.0, 1e-300)
    eps_s = np.r_[0.0, tp / n_s]
    eps_b = np.r_[0.0, fp / n_b]
    return eps_s, eps_b, np.r_[np.inf, thr]


def auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Area under the ROC curve (0.5 = random, 1 = perfect).

    Args:
        labels: ``[N]`` 1 for signal, 0 for background.
        scores: ``[N]`` discriminant.
        weights: optional example weights.

    Returns:
        AUC (NaN if one class is absent).
    """
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        return float("nan")
    eps_s, eps_b, _ = roc_curve(labels, scores, weights)
    return float(np.trapezoid(eps_s, eps_b))


def rejection(eps_s: np.ndarray, eps_b: np.ndarray, target: float) -> float | None:
    """Background rejection ``1/eps_B`` at signal efficiency ``target`` (linear interpolation).

    Args:
        eps_s: ROC signal efficiencies (non-decreasing).
        eps_b: ROC background efficiencies.
        target: signal efficiency, e.g. 0.3.

    Returns:
        ``1/eps_B`` or None when the interpolated ``eps_B`` is 0.
    """
    b = float(np.interp(target, eps_s, eps_b))
    return None if b <= 0 else 1.0 / b


def sic(eps_s: np.ndarray, eps_b: np.ndarray, target: float) -> float | None:
    """Significance improvement ``eps_S / sqrt(eps_B)`` at signal efficiency ``target``.

    ``eps_B`` is linearly interpolated on the ROC curve, as for :func:`rejection`: the factor by
    which a cut at this working point raises ``S / sqrt(B)`` (MPM reports it for CWoLa).

    Args:
        eps_s: ROC signal efficiencies (non-decreasing).
        eps_b: ROC background efficiencies.
        target: signal efficiency, e.g. 0.3.

    Returns:
        The SIC, or None when the interpolated ``eps_B`` is 0.
    """
    b = float(np.interp(target, eps_s, eps_b))
    return None if b <= 0 else float(target / np.sqrt(b))


def binary_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    weights: np.ndarray | None = None,
    working_points: tuple[float, ...] = WORKING_POINTS,
) -> dict[str, Any]:
    """AUC, accuracy (score > 0.5) and rejections for a binary problem.

    Args:
        labels: ``[N]`` 1 signal / 0 background.
        scores: ``[N]`` signal probability.
        weights: optional example weights.
        working_points: signal efficiencies for the rejection.

    Returns:
        ``{"auc", "accuracy", "rejection": {"0.3": .., "0.5": ..}, "sic": {..}, "n"}``.
    """
    labels = np.asarray(labels).astype(int)
    eps_s, eps_b, _ = roc_curve(labels, scores, weights)
    acc = float(np.mean((np.asarray(scores) > 0.5) == labels.astype(bool))) if labels.size else 0.0
    return {
        "auc": auc(labels, scores, weights),
        "accuracy": acc,
        "rejection": {str(wp): rejection(eps_s, eps_b, wp) for wp in working_points},
        "sic": {str(wp): sic(eps_s, eps_b, wp) for wp in working_points},
        "n": int(labels.size),
    }


def classifier_metrics(
    labels: np.ndarray, probs: np.ndarray, classes: list[str], signal_class: int = 1
) -> dict[str, Any]:
    """Metrics of a (binary or multi-class) classifier's softmax outputs.

    Binary: the score is ``probs[:, signal_class]``. Multi-class: one-vs-rest AUC per class and
    their macro mean as ``auc``; ``accuracy`` is argmax accuracy; ``rejection`` is for
    ``signal_class`` vs class 0 (the QCD background in JetClass order) using the score
    ``p_sig / (p_sig + p_0)``, as in the ParT paper.

    Args:
        labels: ``[N]`` class indices.
        probs: ``[N, C]`` class probabilities.
        classes: class names.
        signal_class: the signal class for rejection.

    Returns:
        Metrics dict (JSON-serialisable).
    """
    labels = np.asarray(labels).astype(int)
    n_cls = probs.shape[1]
    if n_cls == 2:
        out = binary_metrics(labels == signal_class, probs[:, signal_class])
        out["accuracy"] = float(np.mean(probs.argmax(1) == labels)) if labels.size else 0.0
        out["classes"] = list(classes)
        return out
    per_class = {classes[c]: auc(labels == c, probs[:, c]) for c in range(n_cls)}
    finite = [v for v in per_class.values() if np.isfinite(v)]
    sel = (labels == signal_class) | (labels == 0)
    p_sig, p_bkg = probs[sel, signal_class], probs[sel, 0]
    pair = binary_metrics(labels[sel] == signal_class, p_sig / np.maximum(p_sig + p_bkg, 1e-12))
    return {
        "auc": float(np.mean(finite)) if finite else float("nan"),
        "auc_per_class": per_class,
        "accuracy": float(np.mean(probs.argmax(1) == labels)) if labels.size else 0.0,
        "rejection": pair["rejection"],
        "sic": pair["sic"],
        "signal_class": classes[signal_class],
        "classes": list(classes),
        "n": int(labels.size),
    }


def validation_metrics(
    labels: np.ndarray, probs: np.ndarray, classes: list[str], signal_class: int = 1
) -> dict[str, float]:
    """The validation metrics fine-tuning logs and selects on (``val_auc`` etc.).

    Args:
        labels: ``[N]`` class indices.
        probs: ``[N, C]`` class probabilities.
        classes: class names.
        signal_class: the signal class (AUC and rejection, see :func:`classifier_metrics`).

    Returns:
        ``val_loss`` (mean cross-entropy), ``val_auc``, ``val_acc`` and ``val_rej<eps_S>`` for
        the working points where the rejection is finite.
    """
    labels = np.asarray(labels).astype(int)
    m = classifier_metrics(labels, probs, classes, signal_class)
    p_true = probs[np.arange(len(labels)), labels]
    out = {
        "val_loss": float(-np.log(np.clip(p_true, 1e-12, None)).mean()),
        "val_auc": float(m["auc"]),
        "val_acc": float(m["accuracy"]),
    }
    for wp, r in m["rejection"].items():
        if r is not None:
            out[f"val_rej{wp}"] = float(r)
    return out
