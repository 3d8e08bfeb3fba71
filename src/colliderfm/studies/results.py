"""Study results and their statistics: ``results.json`` I/O, CSV tables, aggregates over seeds.

Everything here works on result rows (one dict per finished point, as
:func:`colliderfm.studies.sweep.run_point` writes them) and never trains anything, so the report
(:mod:`colliderfm.studies.report`) and the sweep runner (:mod:`colliderfm.studies.sweep`) both
build on it without depending on each other's direction.

* :func:`aggregate`: mean, sample standard deviation (ddof=1) and standard error over seeds
  per (arm, N);
* :func:`select_grid`: per (arm, N), the grid setting with the best mean validation AUC over
  seeds (validation only; test metrics never take part in the choice);
* :func:`differences`: each arm minus the reference (scratch) arm per N, in units of the
  combined standard error;
* :func:`steps_to_target`: compute studies, steps (and seconds) each arm needs to reach the
  reference arm's best validation AUC;
* :func:`read_results` / :func:`write_results`: ``results.json`` plus ``results.csv`` (one row
  per point) and ``summary.csv`` (one row per arm and N), all written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from colliderfm.errors import ColliderFMError
from colliderfm.fileio import write_json, write_text
from colliderfm.train.logging import read_metrics

#: the per-point metrics aggregated over seeds
METRICS = ("auc", "accuracy", "rej0.3", "rej0.5", "sic0.3", "sic0.5")

#: more per-point quantities aggregated over seeds (reports: steps and epochs actually run)
EXTRA = ("best_val_auc", "steps", "epochs")

#: columns of ``results.csv``
POINT_COLUMNS = [
    "arm",
    "init",
    "mode",
    "pretrain_size",
    "n_train",
    "seed",
    "setting",
    "auc",
    "accuracy",
    "rej0.3",
    "rej0.5",
    "sic0.3",
    "sic0.5",
    "n_test",
    "steps",
    "max_steps",
    "epochs",
    "best_step",
    "best_val_auc",
    "train_wall_s",
    "eval_wall_s",
    "lbfgs_iters",
    "probe_l2",
]


def _stats(values: list[Any]) -> dict[str, Any]:
    """Mean, sample standard deviation (ddof=1), standard error and count of the finite values."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return {"mean": None, "std": None, "se": None, "n": 0}
    a = np.asarray(vals)
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    return {
        "mean": float(a.mean()),
        "std": std,
        "se": std / math.sqrt(a.size),
        "n": int(a.size),
    }


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation (ddof=1) over seeds per (arm, N).

    Rejections that are unbounded at the test-set size (``None``) are left out of the mean and
    counted in ``<metric>_n``.

    Args:
        rows: per-point rows.

    Returns:
        One row per (arm, N) in first-seen order, with ``<metric>_mean``, ``_std``, ``_se``
        (standard error, std / sqrt(n)) and ``_n``; also for ``best_val_auc``, ``steps`` and
        ``epochs``.
    """
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["arm"], r["n_train"]), []).append(r)
    out = []
    for (arm, n), rs in groups.items():
        agg: dict[str, Any] = {
            "arm": arm,
            "init": rs[0]["init"],
            "mode": rs[0]["mode"],
            "pretrain_size": rs[0].get("pretrain_size"),
            "n_train": n,
            "seeds": len(rs),
        }
        for m in (*METRICS, "train_wall_s", *EXTRA):
            s = _stats([r.get(m) for r in rs])
            agg[f"{m}_mean"], agg[f"{m}_std"], agg[f"{m}_n"] = s["mean"], s["std"], s["n"]
            agg[f"{m}_se"] = s["se"]
        out.append(agg)
    return out


def _setting_key(row: dict[str, Any]) -> str:
    """A row's grid setting as a comparable string (``""`` without a grid)."""
    return json.dumps(row.get("setting") or {}, sort_keys=True)


def select_grid(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Choose, per (arm, N), the grid setting with the best mean validation AUC over seeds.

    Only ``best_val_auc`` takes part: the test metrics of the candidates are never looked at, so
    the chosen setting's test metrics are an unbiased estimate. Ties go to the setting listed
    first; a setting without any validation AUC is never chosen over one with.

    Args:
        rows: per-point rows, each with ``setting`` (a dict; empty or absent without a grid).

    Returns:
        (the rows of the chosen settings, in input order; one selection record per (arm, N)
        that had more than one setting: ``arm``, ``n_train``, ``chosen`` (the setting),
        ``candidates`` (``setting``, ``val_auc_mean``, ``seeds``) in grid order). Without a grid,
        the rows unchanged and no records.
    """
    groups: dict[tuple[str, int], dict[str, list[dict[str, Any]]]] = {}
    for r in rows:
        groups.setdefault((r["arm"], r["n_train"]), {}).setdefault(_setting_key(r), []).append(r)
    chosen: dict[tuple[str, int], str] = {}
    selection: list[dict[str, Any]] = []
    for (arm, n), by_setting in groups.items():
        candidates = []
        for key, rs in by_setting.items():
            st = _stats([r.get("best_val_auc") for r in rs])
            candidates.append(
                {"setting": json.loads(key), "val_auc_mean": st["mean"], "seeds": len(rs)}
            )
        best = max(
            range(len(candidates)),
            key=lambda i: (
                candidates[i]["val_auc_mean"] is not None,
                candidates[i]["val_auc_mean"] or 0.0,
                -i,
            ),
        )
        chosen[(arm, n)] = list(by_setting)[best]
        if len(candidates) > 1:
            selection.append(
                {
                    "arm": arm,
                    "n_train": n,
                    "chosen": candidates[best]["setting"],
                    "candidates": candidates,
                }
            )
    picked = [r for r in rows if _setting_key(r) == chosen[(r["arm"], r["n_train"])]]
    return picked, selection


def differences(
    summary: list[dict[str, Any]], metric: str = "auc", ref: str | None = None
) -> list[dict[str, Any]]:
    """Each arm minus the reference arm per N, in units of the combined standard error.

    Args:
        summary: aggregated rows (:func:`aggregate`).
        metric: the metric (``auc``, ``rej0.3``, ...).
        ref: the reference arm (default: the first from-scratch arm, :func:`reference_arm`).

    Returns:
        One row per (other arm, N) present in both: ``arm``, ``reference``, ``n_train``,
        ``diff`` (mean minus reference mean), ``se`` (sqrt(se_arm^2 + se_ref^2)) and ``z``
        (diff / se; None when se is 0 or a mean is missing).
    """
    ref = ref or reference_arm(summary)
    refs = {r["n_train"]: r for r in summary if r["arm"] == ref}
    out = []
    for r in summary:
        base = refs.get(r["n_train"])
        if r["arm"] == ref or base is None:
            continue
        m, m0 = r.get(f"{metric}_mean"), base.get(f"{metric}_mean")
        if m is None or m0 is None:
            diff = se = z = None
        else:
            diff = m - m0
            se = math.hypot(r.get(f"{metric}_se") or 0.0, base.get(f"{metric}_se") or 0.0)
            z = diff / se if se > 0 else None
        out.append(
            {
                "arm": r["arm"],
                "reference": ref,
                "n_train": r["n_train"],
                "diff": diff,
                "se": se,
                "z": z,
            }
        )
    return out


def arm_names(summary: list[dict[str, Any]]) -> list[str]:
    """Arm names in first-seen order.

    Args:
        summary: aggregated (or per-point) rows.

    Returns:
        Each arm once.
    """
    seen: list[str] = []
    for r in summary:
        if r["arm"] not in seen:
            seen.append(r["arm"])
    return seen


def summary_columns() -> list[str]:
    """Columns of ``summary.csv``.

    Returns:
        Column names.
    """
    cols = ["arm", "init", "mode", "pretrain_size", "n_train", "seeds"]
    for m in (*METRICS, "train_wall_s", *EXTRA):
        cols += [f"{m}_mean", f"{m}_std", f"{m}_se", f"{m}_n"]
    return cols


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

    The target is per (N, seed): the reference run's best validation AUC with that seed. A
    linear-probe point (``mode: linear``, no steps) reaches it at step 0 or never, in the
    seconds its whole fit took.

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
        seconds = None if s is None or per_step is None else s * per_step
        if r.get("mode") == "linear" and s is not None:
            seconds = r["train_wall_s"]  # no steps: the probe's whole fit reaches it
        out.append(
            {
                "arm": r["arm"],
                "n_train": r["n_train"],
                "seed": r["seed"],
                "reference": ref,
                "target": t,
                "steps": s,
                "seconds": seconds,
            }
        )
    return out


def _cell(value: Any) -> Any:
    """A CSV cell: empty for None (and an empty grid setting), JSON for a mapping."""
    if value is None or value == {}:
        return ""
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else value


def write_csv(rows: list[dict[str, Any]], path: Path, columns: list[str]) -> Path:
    """Write rows as CSV atomically (missing values empty).

    Args:
        rows: dicts.
        path: target file.
        columns: column order.

    Returns:
        The path.
    """
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(columns)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in columns])
    return write_text(path, buf.getvalue())


def read_results(out: str | Path) -> dict[str, Any]:
    """The results of a study directory, with at least one finished point.

    Args:
        out: study directory.

    Returns:
        The dict in ``out/results.json``.

    Raises:
        ColliderFMError: no ``results.json``, not valid JSON, or no finished points.
    """
    f = Path(out) / "results.json"
    if not f.is_file():
        raise ColliderFMError(f"{f}: no study results here (run `colliderfm study ...` first)")
    try:
        res = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise ColliderFMError(f"{f}: not valid JSON") from exc
    if not res.get("points", []):
        raise ColliderFMError(f"{f}: holds no finished points")
    return dict(res)


def previous_results(out: str | Path) -> dict[str, Any]:
    """What an earlier invocation wrote to ``out/results.json`` (empty if none or unreadable).

    Args:
        out: study directory.

    Returns:
        The earlier results dict, or ``{}``.
    """
    f = Path(out) / "results.json"
    if not f.is_file():
        return {}
    try:
        return dict(json.loads(f.read_text()))
    except json.JSONDecodeError:
        return {}


def write_results(results: dict[str, Any], out: str | Path) -> Path:
    """Write ``results.csv``, ``summary.csv`` and (last) ``results.json`` into a study directory.

    Args:
        results: the results dict, with ``points`` and ``summary``.
        out: study directory.

    Returns:
        Path of ``results.json``.
    """
    out = Path(out)
    write_csv(results["points"], out / "results.csv", POINT_COLUMNS)
    write_csv(results["summary"], out / "summary.csv", summary_columns())
    return write_json(results, out / "results.json")


def read_curve(run_dir: Path) -> dict[str, list[Any]]:
    """Validation curve of a run (lp-ft: the probe phase, then the full phase, steps offset).

    Args:
        run_dir: the point's run directory (``metrics.csv``, and ``lp/metrics.csv`` for lp-ft).

    Returns:
        ``{"step": [...], "val_auc": [...], "val_loss": [...]}`` (None where not logged).
    """
    steps: list[float] = []
    aucs: list[float | None] = []
    losses: list[float | None] = []
    offset = 0
    for d in (run_dir / "lp", run_dir):
        if not (d / "metrics.csv").is_file():
            continue
        m = read_metrics(d)
        auc = dict(m.get("val_auc", []))
        loss = dict(m.get("val_loss", []))
        for s in sorted(set(auc) | set(loss)):
            steps.append(float(s + offset))
            aucs.append(auc.get(s))
            losses.append(loss.get(s))
        train_steps = [s for s, _ in m.get("train_loss", [])] + [s for s in auc]
        offset += max(train_steps, default=0)
    return {"step": steps, "val_auc": aucs, "val_loss": losses}
