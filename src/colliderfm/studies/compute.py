"""Compute-efficiency study: validation AUC vs training step and wall time, pretrained vs scratch.

The sweep is the data-efficiency one (usually one ``n_train`` and a longer budget with frequent
validation); the analysis reads each point's validation curve (from the run's ``metrics.csv``)
and reports how many steps (and seconds) each arm needs to reach the from-scratch control's best
validation AUC.

Wall time at a step is estimated as ``step * train_wall_s / steps`` (the run's mean time per step,
validation included), because the training loop logs steps, not timestamps.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from colliderfm.studies.config import StudyConfig
from colliderfm.studies.sweep import execute


def run_compute(study: StudyConfig, out: str | Path, command: str | None = None) -> dict[str, Any]:
    """Run (or resume) a compute-efficiency study.

    Args:
        study: validated study config.
        out: study directory.
        command: the command line, recorded in the report.

    Returns:
        The results written to ``out/results.json``.
    """
    return execute("compute", study, list(study.arms), out, command)


def reference_arm(rows: list[dict[str, Any]]) -> str | None:
    """The control arm: the first arm initialised from scratch (else the first arm).

    Args:
        rows: per-point rows.

    Returns:
        The arm name, or None without rows.
    """
    for r in rows:
        if r["init"] == "none" and r["mode"] in ("full", "lp-ft"):
            return str(r["arm"])
    for r in rows:
        if r["init"] == "none":
            return str(r["arm"])
    return str(rows[0]["arm"]) if rows else None


def first_reach(curve: dict[str, list[Any]], target: float) -> int | None:
    """First validation step whose AUC reaches ``target``.

    Args:
        curve: ``{"step": [...], "val_auc": [...]}``.
        target: AUC to reach.

    Returns:
        The step, or None if never reached.
    """
    for s, a in zip(curve.get("step", []), curve.get("val_auc", []), strict=False):
        if a is not None and math.isfinite(a) and a >= target - 1e-12:
            return int(s)
    return None


def steps_to_target(rows: list[dict[str, Any]], ref: str | None = None) -> list[dict[str, Any]]:
    """Steps and seconds each arm needs to reach the reference arm's best validation AUC.

    The target is per (N, seed): the reference run's best validation AUC with that seed.

    Args:
        rows: per-point rows (with ``curve``).
        ref: reference arm (default :func:`reference_arm`).

    Returns:
        One row per (arm, N, seed): ``target``, ``steps``, ``seconds`` (None if not reached).
    """
    ref = ref or reference_arm(rows)
    targets: dict[tuple[int, int], float] = {}
    for r in rows:
        if r["arm"] == ref:
            vals = [a for a in r.get("curve", {}).get("val_auc", []) if a is not None]
            if vals:
                targets[(r["n_train"], r["seed"])] = max(vals)
    out = []
    for r in rows:
        t = targets.get((r["n_train"], r["seed"]))
        if t is None:
            continue
        s = first_reach(r.get("curve", {}), t)
        per_step = r["train_wall_s"] / r["steps"] if r.get("steps") else None
        out.append(
            {
                "arm": r["arm"],
                "n_train": r["n_train"],
                "seed": r["seed"],
                "reference": ref,
                "target": t,
                "steps": s,
                "seconds": None if s is None or per_step is None else s * per_step,
            }
        )
    return out
