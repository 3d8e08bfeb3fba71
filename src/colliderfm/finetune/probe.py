"""``finetune.mode: linear``: the classifier's linear head fitted as a converged linear probe.

No training loop: the backbone stays frozen, the embeddings of the training examples and of
the validation set are computed once (eval mode, batched, on the backbone's device), and a
logistic regression (binary for two classes, multinomial for more) is fitted with L-BFGS to
convergence on the standardised training embeddings (:func:`colliderfm.evaluate.probe.fit_logistic`,
the fit of the pretraining probe) for each L2 strength of ``finetune.probe_l2``, at most
``finetune.probe_max_iter`` iterations each.

Choosing the strength (:func:`select_strength`): the best validation AUC (the ``val_auc`` every
fine-tuning mode selects on; ties go to the stronger regularisation); validation data only, the
test set is never read here. The chosen fit is kept (not refitted). Without a validation set (or
when its AUC is undefined, e.g. one class only) the strength is :data:`PROBE_L2_FALLBACK` (the
periodic probe's), or the grid's value when it holds one, with a warning.

The fit is written into the classifier's own ``Linear(D, C)`` head (:func:`set_linear_head`),
the standardisation folded into its weights, so the saved checkpoint applies to raw embeddings
and loads, evaluates and exports like any other fine-tuned classifier (binary: logits
``[0, z]``, whose softmax is the probe's ``sigmoid(z)``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from colliderfm.data.schema import ConstituentChunk
from colliderfm.errors import DataError
from colliderfm.evaluate.metrics import validation_metrics
from colliderfm.evaluate.probe import LogisticFit, embed_source, fit_logistic
from colliderfm.train.logging import log

#: the L2 strength used when there is no validation set to choose one (the periodic probe's)
PROBE_L2_FALLBACK = 1e-3

#: jets per embedding pass (the validation pass's batch size)
EMBED_BATCH = 512


@dataclass
class ProbeResult:
    """What the linear probe chose and how it got there.

    Attributes:
        fit: the chosen fit (raw-embedding weights in ``fit.weight``/``fit.bias``).
        l2: the chosen strength.
        chosen_by: ``"val_auc"``, or why the fallback was used.
        grid: one entry per strength tried: ``l2``, ``val_auc`` (None without validation),
            the other validation metrics, ``lbfgs_iters``, ``converged``, ``train_loss``.
        val: validation metrics of the chosen fit (None without validation).
        n_train: training examples embedded.
        n_val: labelled validation examples embedded.
        embed_s: seconds spent computing embeddings.
        fit_s: seconds spent in the L-BFGS fits.
    """

    fit: LogisticFit
    l2: float
    chosen_by: str
    grid: list[dict[str, Any]] = field(default_factory=list)
    val: dict[str, float] | None = None
    n_train: int = 0
    n_val: int = 0
    embed_s: float = 0.0
    fit_s: float = 0.0

    def summary(self, max_iter: int) -> dict[str, Any]:
        """The ``probe`` section of a run summary.

        Args:
            max_iter: the L-BFGS iteration limit.

        Returns:
            Plain, JSON-serialisable dict.
        """
        return {
            "method": "lbfgs logistic regression on frozen embeddings (standardised)",
            "l2": self.l2,
            "chosen_by": self.chosen_by,
            "grid": self.grid,
            "lbfgs_iters": self.fit.iters,
            "lbfgs_iters_total": sum(g["lbfgs_iters"] for g in self.grid),
            "converged": self.fit.converged,
            "max_iter": max_iter,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "embed_s": round(self.embed_s, 2),
            "fit_s": round(self.fit_s, 2),
        }


def select_strength(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    classes: list[str],
    grid: list[float],
    signal_class: int = 1,
    max_iter: int = 1000,
    device: torch.device | str | None = None,
) -> ProbeResult:
    """Fit one probe per L2 strength and keep the one with the best validation AUC.

    Args:
        x_train: ``[N, D]`` training embeddings.
        y_train: ``[N]`` labels in ``0 .. len(classes) - 1``.
        x_val: ``[M, D]`` validation embeddings, or None.
        y_val: ``[M]`` validation labels, or None.
        classes: class names (their number decides binary or multinomial).
        grid: L2 strengths to try (``finetune.probe_l2``).
        signal_class: signal class of the validation AUC (binary) and rejection.
        max_iter: L-BFGS iteration limit per fit.
        device: where to fit (None: CPU).

    Returns:
        The result (``embed_s`` and the counts left for the caller).
    """
    n_classes = len(classes)
    have_val = x_val is not None and y_val is not None and len(y_val) > 0
    t0 = time.perf_counter()
    if not have_val:
        l2 = grid[0] if len(grid) == 1 else PROBE_L2_FALLBACK
        why = (
            f"no validation set: the grid's only strength l2={l2:g}"
            if len(grid) == 1
            else f"no validation set: fixed l2={l2:g} (PROBE_L2_FALLBACK)"
        )
        log.warning("linear probe: %s, not chosen on validation (set data.val)", why)
        fit = fit_logistic(x_train, y_train, n_classes, l2=l2, max_iter=max_iter, device=device)
        entry = _entry(fit, None)
        _log_fit(entry)
        return ProbeResult(fit, l2, why, [entry], None, fit_s=time.perf_counter() - t0)
    assert x_val is not None and y_val is not None
    fits: list[LogisticFit] = []
    entries: list[dict[str, Any]] = []
    for l2 in grid:
        fit = fit_logistic(x_train, y_train, n_classes, l2=l2, max_iter=max_iter, device=device)
        val = validation_metrics(y_val, fit.probabilities(x_val), classes, signal_class)
        fits.append(fit)
        entries.append(_entry(fit, val))
        _log_fit(entries[-1])
    aucs = [e["val_auc"] for e in entries]
    finite = [i for i, a in enumerate(aucs) if a is not None and math.isfinite(a)]
    if finite:
        # best validation AUC; ties: the stronger regularisation
        best = max(finite, key=lambda i: (aucs[i], grid[i]))
        chosen_by = "val_auc"
        log.info(
            "linear probe: l2=%g chosen on validation (AUC %.4f; grid %s)",
            grid[best],
            aucs[best],
            ", ".join(f"{g:g}" for g in grid),
        )
        fit = fits[best]
        val = {k: v for k, v in entries[best].items() if k.startswith("val_")}
        return ProbeResult(fit, grid[best], chosen_by, entries, val, fit_s=time.perf_counter() - t0)
    l2 = PROBE_L2_FALLBACK
    why = f"validation AUC undefined (one class only?): fixed l2={l2:g} (PROBE_L2_FALLBACK)"
    log.warning("linear probe: %s", why)
    if l2 in grid:
        fit = fits[grid.index(l2)]
    else:
        fit = fit_logistic(x_train, y_train, n_classes, l2=l2, max_iter=max_iter, device=device)
    val = validation_metrics(y_val, fit.probabilities(x_val), classes, signal_class)
    return ProbeResult(fit, l2, why, entries, val, fit_s=time.perf_counter() - t0)


def _entry(fit: LogisticFit, val: dict[str, float] | None) -> dict[str, Any]:
    """One grid row of the summary."""
    out: dict[str, Any] = {"l2": fit.l2, "val_auc": None if val is None else val["val_auc"]}
    if val is not None:
        out.update({k: v for k, v in val.items() if k != "val_auc"})
    out.update(
        lbfgs_iters=fit.iters,
        converged=fit.converged,
        train_loss=fit.loss,
        grad_max=fit.grad_max,
    )
    return out


def _log_fit(e: dict[str, Any]) -> None:
    auc = "n/a" if e["val_auc"] is None else f"{e['val_auc']:.4f}"
    log.info(
        "linear probe: l2=%g: validation AUC %s, %d L-BFGS iterations (%s)",
        e["l2"],
        auc,
        e["lbfgs_iters"],
        "converged" if e["converged"] else "iteration limit reached",
    )


def set_linear_head(model: nn.Module, fit: LogisticFit) -> None:
    """Write a probe fit into a classifier's linear head (in place, dtype and device kept).

    Args:
        model: a :class:`~colliderfm.models.heads.Classifier` with a linear head
            (``head_hidden=None``) of ``fit.n_classes`` outputs.
        fit: the fit (its raw-embedding weights are used: standardisation folded in).
    """
    head: Any = model.head
    net = head.net
    linear = net[-1]
    if len(net) != 1 or not isinstance(linear, nn.Linear):
        raise ValueError("the linear probe needs a classifier with a linear head (no hidden layer)")
    w, b = fit.head_parameters()
    if tuple(linear.weight.shape) != w.shape:
        raise ValueError(f"head of shape {tuple(linear.weight.shape)} cannot take a {w.shape} fit")
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(w).to(linear.weight))
        linear.bias.copy_(torch.from_numpy(b).to(linear.bias))


def probe_head(
    model: nn.Module,
    train: str | Path | ConstituentChunk,
    val: str | Path | ConstituentChunk | None,
    classes: list[str],
    grid: list[float],
    signal_class: int = 1,
    max_iter: int = 1000,
    feature_set: str = "part",
    max_particles: int = 128,
    fit_device: torch.device | str | None = None,
) -> ProbeResult:
    """Embed the training and validation data once, fit the probe, set the classifier's head.

    Args:
        model: classifier (frozen backbone, linear head) on the device to embed on.
        train: training examples (labels ``0 .. len(classes) - 1``).
        val: validation examples (true labels), or None.
        classes: class names.
        grid: L2 strengths.
        signal_class: signal class of the validation AUC.
        max_iter: L-BFGS iteration limit per fit.
        feature_set: input features.
        max_particles: particle slots.
        fit_device: where to run L-BFGS (None: CPU).

    Returns:
        The result; ``model.head`` holds the chosen fit.

    Raises:
        DataError: training labels outside the classes, or no training examples.
    """
    t0 = time.perf_counter()
    backbone: Any = model.backbone
    x, y = embed_source(backbone, train, feature_set, max_particles, EMBED_BATCH)
    where = train if not isinstance(train, ConstituentChunk) else "the training set"
    if len(y) == 0:
        raise DataError(where, "holds no training examples for the linear probe")
    bad = (y < 0) | (y >= len(classes))
    if bad.any():
        raise DataError(
            where,
            f"{int(bad.sum())} training examples have labels outside 0..{len(classes) - 1} "
            f"(classes {classes}); the linear probe needs every training example labelled",
        )
    xv = yv = None
    if val is not None:
        xv, yv = embed_source(backbone, val, feature_set, max_particles, EMBED_BATCH)
        keep = (yv >= 0) & (yv < len(classes))
        xv, yv = xv[keep], yv[keep]
    embed_s = time.perf_counter() - t0
    log.info(
        "linear probe: embedded %d training and %d validation examples in %.1f s",
        len(y),
        0 if yv is None else len(yv),
        embed_s,
    )
    res = select_strength(x, y, xv, yv, classes, grid, signal_class, max_iter, fit_device)
    set_linear_head(model, res.fit)
    res.n_train, res.n_val, res.embed_s = len(y), 0 if yv is None else len(yv), embed_s
    return res
