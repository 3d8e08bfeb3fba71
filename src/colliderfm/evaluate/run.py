"""``colliderfm evaluate``: metrics JSON + ROC and score plots for a checkpoint on any input."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from colliderfm.checkpoints import load_model
from colliderfm.config import signal_index
from colliderfm.data.readers.dispatch import data_classes
from colliderfm.errors import DataError
from colliderfm.evaluate.metrics import classifier_metrics, roc_curve
from colliderfm.evaluate.plots import plot_roc, plot_scores
from colliderfm.evaluate.predict import predict
from colliderfm.fileio import write_json
from colliderfm.runtime import resolve_device
from colliderfm.train.checkpoint import read_meta
from colliderfm.train.logging import log


def label_map(model_classes: list[str], data_classes: list[str]) -> np.ndarray | None:
    """Map data labels onto a model's classes by name (-1 for classes the model lacks).

    ``Top`` in a data set is treated as ``Tbqq`` (hadronic top) for convenience.

    Args:
        model_classes: classes the model was trained on.
        data_classes: classes of the data.

    Returns:
        ``[len(data_classes)]`` int array, or None when identical.
    """
    if list(model_classes) == list(data_classes) or not data_classes:
        return None
    alias = {"Top": "Tbqq"}
    idx = {c: i for i, c in enumerate(model_classes)}
    return np.array([idx.get(alias.get(c, c), -1) for c in data_classes], dtype=np.int64)


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    out: str | Path | None = None,
    batch_size: int = 512,
    max_jets: int | None = None,
    plots: bool = True,
    device: str = "auto",
) -> dict[str, Any]:
    """Evaluate a classifier checkpoint on any readable jet input.

    Args:
        checkpoint: checkpoint directory.
        data: shard directory, ``.parquet``, JetClass ROOT or Top Tagging HDF5.
        out: metrics JSON path (plots go next to it); None: don't write.
        batch_size: jets per forward pass.
        max_jets: evaluate at most this many jets.
        plots: write ``roc.png`` and ``scores.png``.
        device: where the model runs (``auto``: CUDA when available; ``cpu``, ``cuda``,
            ``cuda:N``, ``mps``); a device this machine lacks is refused before any work.

    Returns:
        The metrics dict (``auc``, ``accuracy``, ``rejection``, ``n``, ...).
    """
    if out is not None and Path(out).is_dir():  # before any work: nothing to clean up later
        raise DataError(out, "is a directory; --out names the metrics file (e.g. DIR/metrics.json)")
    dev = resolve_device(device, what="--device")
    meta = read_meta(checkpoint)
    m = meta["model"]
    if m.get("task", "classifier") != "classifier":
        raise DataError(
            checkpoint, f"not a classifier checkpoint (task {m.get('task')!r}); fine-tune it first"
        )
    model = load_model(checkpoint, device=dev)
    classes = list(m["classes"])
    data_cls = data_classes(data)
    lmap = label_map(classes, data_cls)
    if lmap is not None and (lmap < 0).all():
        raise DataError(data, f"none of its classes {data_cls} are known to the model {classes}")
    if lmap is None:  # the model's classes, or no names (a lone .parquet): labels are indices
        lmap = np.arange(len(classes), dtype=np.int64)
    cfg = meta["config"]
    dropped: Counter[int] = Counter()
    labels, probs = predict(
        model,
        data,
        batch_size=batch_size,
        max_particles=cfg["data"]["max_particles"],
        feature_set=m.get("feature_set", "part"),
        max_jets=max_jets,
        label_map=lmap,
        dropped=dropped,
    )
    _check_labels(data, labels.size, dropped, classes, data_cls)
    bad = ~np.isfinite(probs).all(axis=1)
    if bad.any():  # metrics of NaN scores would be silently wrong
        raise DataError(
            data,
            f"{int(bad.sum())} of {len(bad)} jets give non-finite model outputs "
            "(NaN/inf values in the input, or a broken checkpoint)",
        )
    sig = signal_index(cfg["finetune"].get("signal_class", 1), classes)
    metrics = classifier_metrics(labels, probs, classes, signal_class=sig)
    metrics["checkpoint"], metrics["data"] = str(checkpoint), str(data)
    if out is not None:
        out = Path(out)
        # plots first, the metrics JSON last: its presence means the evaluation completed; a
        # failure (or Ctrl-C) on the way removes this evaluation's plots, so no half set stays
        shown = [out.with_name("roc.png"), out.with_name("scores.png")] if plots else []
        try:
            if plots:
                try:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    _write_plots(out, labels, probs, classes, sig, metrics)
                except OSError as exc:
                    why = exc.strerror or exc
                    raise DataError(out.parent, f"cannot write plots ({why})") from exc
            write_json(metrics, out)
        except BaseException:
            for path in shown:
                path.unlink(missing_ok=True)
            raise
        log.info("wrote %s", out)
    return metrics


def _check_labels(
    data: str | Path, n: int, dropped: Counter[int], classes: list[str], data_cls: list[str]
) -> None:
    """Refuse an evaluation without usable labels; warn with counts when some were left out.

    Jets whose label is -1 (unlabelled), outside the data's classes, or of a class the model
    does not know are not evaluated (metrics of such labels would read as accuracy 0).

    Args:
        data: the evaluated input (for messages).
        n: jets evaluated.
        dropped: source label -> jets left out.
        classes: the model's classes.
        data_cls: the data's classes (empty: labels are the model's class indices).

    Raises:
        DataError: no jet has a label the model knows.
    """
    if not dropped:
        if not n:
            raise DataError(data, "no labelled jets to evaluate")
        return

    def name(v: int) -> str:
        if v == -1:
            return "unlabelled (-1)"
        if 0 <= v < len(data_cls):
            return data_cls[v]
        return f"label {v}"

    what = ", ".join(f"{name(v)}: {k}" for v, k in sorted(dropped.items()))
    total = sum(dropped.values())
    if not n:
        if set(dropped) == {-1}:
            raise DataError(
                data,
                f"no labelled jets to evaluate: all {total} are unlabelled (-1); evaluate needs "
                "labelled jets (e.g. data converted without --unlabel)",
            )
        raise DataError(
            data,
            f"no jets with a label the model knows (its classes: {', '.join(classes)}); "
            f"labels found: {what}",
        )
    log.warning(
        "%s: evaluated %d jets; left out %d whose labels the model does not know (%s)",
        data,
        n,
        total,
        what,
    )


def _write_plots(
    out: Path,
    labels: np.ndarray,
    probs: np.ndarray,
    classes: list[str],
    sig: int,
    metrics: dict[str, Any],
) -> None:
    """``roc.png`` and ``scores.png`` next to ``out`` (signal class vs the rest / class 0)."""
    if probs.shape[1] == 2:
        y, s = labels == sig, probs[:, sig]
    else:
        sel = (labels == sig) | (labels == 0)
        ps, pb = probs[sel, sig], probs[sel, 0]
        y, s = labels[sel] == sig, ps / np.maximum(ps + pb, 1e-12)
    eps_s, eps_b, _ = roc_curve(y, s)
    plot_roc(
        eps_s,
        eps_b,
        out.with_name("roc.png"),
        label=f"{classes[sig]} vs rest",
        auc=metrics["auc"] if probs.shape[1] == 2 else None,
    )
    plot_scores(y.astype(int), s, out.with_name("scores.png"), names=(classes[0], classes[sig]))
