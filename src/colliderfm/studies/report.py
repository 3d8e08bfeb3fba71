"""The markdown report of a study and its plots, regenerated from ``DIR/results.json`` alone.

The plots are drawn by :mod:`colliderfm.studies.plots` (``auc_vs_n.png``,
``rejection_vs_n.png``, ``auc_vs_pretrain_size.png``, and for compute studies
``val_auc_vs_step.png`` and ``val_auc_vs_time.png``, for data-efficiency studies
``val_auc_vs_step.png`` at the N closest to :data:`~colliderfm.studies.plots.CURVES_N`); the
tables read the aggregates of :mod:`colliderfm.studies.results`. Only a point whose row has no
validation curve (older results) has it read from its run directory's ``metrics.csv``.

The report names no machine: a path inside the study directory is shown relative to it (a
checkpoint the study pretrained reads ``pretrain/p7500``), any other absolute path relative to
the working directory of whoever writes the report (:func:`shown_path`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from colliderfm.fileio import write_text
from colliderfm.studies.plots import (
    curves_n,
    plot_curves,
    plot_scaling,
    plot_val_auc_vs_step,
    plot_vs_n,
)
from colliderfm.studies.results import (
    aggregate,
    arm_names,
    differences,
    read_curve,
    read_results,
    reference_arm,
    steps_to_target,
)

#: an absolute POSIX path inside free text (commands, YAML): a "/" that starts a word
_ABS_PATH = re.compile(r"(?<![\w./~:-])/[^\s`'\"(),\[\]{}]+")


def shown_path(
    path: str | Path | None, study_dir: str | Path, cwd: str | Path | None = None
) -> str:
    """A path as the report shows it: never absolute.

    Args:
        path: a path from ``results.json`` (absolute or relative; ``"none"`` and None are
            shown as ``none`` and ``None``).
        study_dir: the study directory.
        cwd: directory other absolute paths are made relative to (default: the working
            directory).

    Returns:
        Relative paths unchanged; an absolute path inside ``study_dir`` relative to it; any other
        absolute path (``study_dir`` itself included) relative to ``cwd``.
    """
    p = str(path)
    if path is None or not os.path.isabs(p):
        return p
    p = os.path.normpath(p)
    root = os.path.abspath(study_dir)
    if p.startswith(root.rstrip(os.sep) + os.sep):  # the study directory itself: from cwd
        return os.path.relpath(p, root)
    return os.path.relpath(p, os.path.abspath(cwd if cwd is not None else os.getcwd()))


def relative_text(text: str, study_dir: str | Path, cwd: str | Path | None = None) -> str:
    """``text`` with every absolute path in it replaced by :func:`shown_path`.

    Args:
        text: free text (a command line, a YAML dump).
        study_dir: the study directory.
        cwd: see :func:`shown_path`.

    Returns:
        The text without absolute paths.
    """
    return _ABS_PATH.sub(lambda m: shown_path(m.group(0), study_dir, cwd), text)


def _fmt(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f} ± {0.0 if std is None else std:.{digits}f}"


def _table(summary: list[dict[str, Any]], metric: str, digits: int, col: str = "n_train") -> str:
    keys = sorted({r[col] for r in summary if r[col] is not None})
    head = "| arm | init | mode | " + " | ".join(f"N={k}" for k in keys) + " |"
    lines = [head, "|" + "---|" * (3 + len(keys))]
    for arm in arm_names(summary):
        rs = {r[col]: r for r in summary if r["arm"] == arm}
        first = next(iter(rs.values()))
        cells = []
        for k in keys:
            r = rs.get(k)
            if r is None:
                cells.append("")
                continue
            cell = _fmt(r[f"{metric}_mean"], r[f"{metric}_std"], digits)
            if r[f"{metric}_n"] < r["seeds"]:
                cell += f" ({r[f'{metric}_n']}/{r['seeds']} finite)"
            cells.append(cell)
        lines.append(f"| {arm} | {first['init']} | {first['mode']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _arm_ns_text(rows: list[dict[str, Any]], arms: list[str], ns: list[int]) -> str:
    """The label counts of the arms that do not run at every N of the study (``""`` if none).

    Args:
        rows: per-point rows.
        arms: the arms, in report order.
        ns: the study's label counts.

    Returns:
        ``"; only `arm` at N = 1000, 10000"``-style text (appended to the N_train list), or
        ``""``.
    """
    parts = []
    for arm in arms:
        have = sorted({r["n_train"] for r in rows if r["arm"] == arm})
        if have and have != sorted(ns):
            parts.append(f"`{arm}` at N = {', '.join(map(str, have))}")
    return f"; only {'; '.join(parts)}" if parts else ""


def _num(v: Any, digits: int) -> str:
    """A number with ``digits`` decimals, ``n/a`` for None."""
    return "n/a" if v is None else f"{float(v):.{digits}f}"


def _setting_text(setting: dict[str, Any] | None) -> str:
    """A grid setting as ``key=value, ...`` (``-`` without one)."""
    return ", ".join(f"{k}={v}" for k, v in (setting or {}).items()) or "-"


def _points_table(rows: list[dict[str, Any]]) -> str:
    """One line per point: steps and epochs actually run, wall time, validation and test metrics.

    Args:
        rows: per-point rows (the chosen grid settings).

    Returns:
        A markdown table.
    """
    grid = any(r.get("setting") for r in rows)
    head = "| arm | N | seed | " + ("setting | " if grid else "")
    head += (
        "steps (max) | epochs | train s | best val AUC | test AUC | 1/eps_B@0.3 | 1/eps_B@0.5 "
        "| SIC@0.3 | SIC@0.5 |"
    )
    lines = [head, "|" + "---|" * (12 + grid)]
    for r in sorted(rows, key=lambda r: (r["n_train"], arm_names(rows).index(r["arm"]), r["seed"])):
        steps = "n/a" if r.get("steps") is None else str(r["steps"])
        if r.get("max_steps") is not None:
            steps += f" ({r['max_steps']})"
        if r.get("lbfgs_iters") is not None:  # mode linear: the L-BFGS probe, no steps
            steps += f" (L-BFGS: {r['lbfgs_iters']} it., l2={r.get('probe_l2'):g})"
        cells = [r["arm"], str(r["n_train"]), str(r["seed"])]
        if grid:
            cells.append(_setting_text(r.get("setting")))
        cells += [
            steps,
            _num(r.get("epochs"), 1),
            _num(r.get("train_wall_s"), 0),
            _num(r.get("best_val_auc"), 4),
            _num(r.get("auc"), 4),
            _num(r.get("rej0.3"), 1),
            _num(r.get("rej0.5"), 1),
            _num(r.get("sic0.3"), 2),
            _num(r.get("sic0.5"), 2),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _se_table(summary: list[dict[str, Any]], metric: str, digits: int) -> str:
    """Mean ± standard error over seeds per (arm, N)."""
    keys = sorted({r["n_train"] for r in summary})
    lines = ["| arm | " + " | ".join(f"N={k}" for k in keys) + " |", "|" + "---|" * (1 + len(keys))]
    for arm in arm_names(summary):
        rs = {r["n_train"]: r for r in summary if r["arm"] == arm}
        cells = [
            _fmt(rs[k].get(f"{metric}_mean"), rs[k].get(f"{metric}_se"), digits) if k in rs else ""
            for k in keys
        ]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _diff_table(summary: list[dict[str, Any]], metric: str, digits: int) -> tuple[str, str | None]:
    """Each arm minus the reference (scratch) arm per N, ± combined standard error, and that
    difference in units of the combined standard error."""
    diffs = differences(summary, metric)
    ref = diffs[0]["reference"] if diffs else reference_arm(summary)
    keys = sorted({d["n_train"] for d in diffs})
    lines = ["| arm | " + " | ".join(f"N={k}" for k in keys) + " |", "|" + "---|" * (1 + len(keys))]
    for arm in [a for a in arm_names(summary) if a != ref]:
        ds = {d["n_train"]: d for d in diffs if d["arm"] == arm}
        cells = []
        for k in keys:
            d = ds.get(k)
            if d is None or d["diff"] is None:
                cells.append("n/a" if d is not None else "")
                continue
            z = "n/a" if d["z"] is None else f"{d['z']:+.1f}"
            cells.append(f"{d['diff']:+.{digits}f} ± {d['se']:.{digits}f} ({z} SE)")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines), ref


def _baseline_lines(res: dict[str, Any], metric: str) -> list[str]:
    """One line naming the one-variable baselines' value of ``metric`` on the test set.

    Args:
        res: the study's results (``baselines``: :func:`~colliderfm.evaluate.baselines.
            simple_baselines`; results written before baselines were recorded have none).
        metric: ``auc``, ``rej0.3``, ``rej0.5``, ``sic0.3`` or ``sic0.5``.

    Returns:
        ``["", line]``, or ``[]`` without baselines.
    """
    base = res.get("baselines") or {}
    if not base:
        return []
    parts = []
    for name, m in base.items():
        if metric == "auc":
            v, digits = m.get("auc"), 4
        elif metric.startswith("rej"):
            v, digits = m.get("rejection", {}).get(metric[3:]), 1
        else:
            v, digits = m.get("sic", {}).get(metric[3:]), 2
        parts.append(f"`{name}` ({m.get('description', '')}) {_num(v, digits)}")
    return [
        "",
        "One-variable baselines on the same test set (no training; larger = class 1): "
        + "; ".join(parts)
        + ".",
    ]


def _budget_lines(budget: dict[str, Any], data: dict[str, Any], optim: str) -> list[str]:
    """The budget bullet of the report (``converge`` or ``fixed`` = compute-matched).

    Args:
        budget: the study's budget section (results written before ``mode`` existed: fixed).
        data: the data facts of ``results.json``.
        optim: the optimizer line.

    Returns:
        Markdown lines.
    """
    mode = budget.get("mode", "fixed")
    tail = f"model {data.get('model')}, precision {data.get('precision')}."
    if mode == "converge":
        by_n = data.get("max_steps_by_n") or {}
        maxima = ", ".join(f"{s} at N={n}" for n, s in by_n.items())
        cap = f", capped at {budget.get('max_steps')}" if budget.get("max_steps") else ""
        return [
            "- **Budget per point: trained to convergence (`budget.mode: converge`), the same "
            "rules for every arm, scratch included:** early stopping on validation AUC after "
            f"{budget.get('patience')} validations without improvement, validation every "
            f"{budget.get('eval_every')} steps, at most {budget.get('max_epochs')} epochs of the "
            f"point's N and at least {budget.get('min_steps')} steps{cap} (step maxima: "
            f"{maxima or 'n/a'}; the learning-rate schedule runs over that maximum), {optim}; "
            f"test metrics of the best-validation checkpoint; {tail}"
        ]
    return [
        "- **Budget per point: compute-matched (`budget.mode: fixed`; identical for every arm, "
        f"scratch included):** {budget.get('max_steps')} optimizer steps, {optim}, validation "
        f"every {budget.get('eval_every')} steps, test metrics of the checkpoint selected by "
        f"`{budget.get('select')}`; {tail}"
    ]


def _linear_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The bullet on linear-probe arms (``mode: linear``), which no step budget applies to.

    Args:
        rows: per-point rows.

    Returns:
        Markdown lines (none without a linear arm that ran the L-BFGS probe).
    """
    probes = [r for r in rows if r.get("mode") == "linear" and r.get("probe")]
    if not probes:
        return []
    arms = ", ".join(f"`{a}`" for a in dict.fromkeys(r["arm"] for r in probes))
    grids = sorted({tuple(g["l2"] for g in r["probe"].get("grid", [])) for r in probes})
    shown = "; ".join(", ".join(f"{v:g}" for v in g) for g in grids)
    iters = [r["lbfgs_iters"] for r in probes if r.get("lbfgs_iters") is not None]
    fell_back = sum(r["probe"].get("chosen_by") != "val_auc" for r in probes)
    return [
        f"- **Linear-probe arms ({arms}, `mode: linear`): no training steps, so the step "
        "budget does not apply to them:** logistic regression on the frozen backbone's "
        "embeddings of the point's N examples (standardised), fitted with L-BFGS to "
        f"convergence for each L2 strength in [{shown}] and the strength with the best "
        "validation AUC kept (validation only); steps 0, "
        f"{min(iters, default=0)}-{max(iters, default=0)} L-BFGS iterations per chosen fit"
        + (
            f"; {fell_back} point(s) without a usable validation AUC used the fixed fallback "
            "strength"
            if fell_back
            else ""
        )
        + "."
    ]


def _grid_lines(res: dict[str, Any]) -> list[str]:
    """The grid section: the grid of every arm, the choice per (arm, N) and its validation AUC."""
    selection = res.get("selection") or []
    grids = {a: g for a, g in ((res.get("data") or {}).get("grid") or {}).items() if g}
    if not selection and not grids:
        return []
    md = [
        "## Settings chosen on validation",
        "",
        "Every value of the grid was trained; per (arm, N) the setting with the best validation "
        "AUC (mean over seeds) was chosen, on validation only, and its test metrics are the ones "
        "reported everywhere else in this report.",
        "",
    ]
    for a, g in grids.items():
        md.append(f"- `{a}`: " + ", ".join(f"`{k}` in {v}" for k, v in g.items()))
    md += ["", "| arm | N | chosen | val AUC per setting (mean over seeds) |", "|---|---|---|---|"]
    for sel in selection:
        cands = "; ".join(
            f"{_setting_text(c['setting'])}: {_num(c['val_auc_mean'], 4)}"
            for c in sel["candidates"]
        )
        if sel.get("from_n") is not None:  # grid_from: not trained over the grid at this N
            cands = f"the choice at N = {sel['from_n']} (`grid_from`; only it was trained here)"
        md.append(f"| {sel['arm']} | {sel['n_train']} | {_setting_text(sel['chosen'])} | {cands} |")
    return [*md, ""]


def _scaling_table(summary: list[dict[str, Any]], unit: str = "jets") -> str:
    ns = sorted({r["n_train"] for r in summary})
    lines = [
        f"| arm | pretraining {unit} | mode | " + " | ".join(f"AUC at N={n}" for n in ns) + " |",
        "|" + "---|" * (3 + len(ns)),
    ]
    arms = sorted(
        arm_names(summary),
        key=lambda a: next((r.get("pretrain_size") or 0) for r in summary if r["arm"] == a),
    )
    for arm in arms:
        rs = {r["n_train"]: r for r in summary if r["arm"] == arm}
        first = next(iter(rs.values()))
        size = first.get("pretrain_size") or ("0 (scratch)" if first["init"] == "none" else "?")
        cells = [_fmt(rs[n]["auc_mean"], rs[n]["auc_std"], 4) if n in rs else "" for n in ns]
        lines.append(f"| {arm} | {size} | {first['mode']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _compute_table(rows: list[dict[str, Any]]) -> tuple[str, str | None]:
    ref = reference_arm(rows)
    reach = steps_to_target(rows, ref)
    lines = [
        "| arm | N | reached | steps (mean ± std) | seconds (mean ± std) |",
        "|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in reach:
        groups.setdefault((r["arm"], r["n_train"]), []).append(r)
    for (arm, n), rs in groups.items():
        ok = [r for r in rs if r["steps"] is not None]
        st = np.array([r["steps"] for r in ok], dtype=float)
        sec = np.array([r["seconds"] for r in ok if r["seconds"] is not None], dtype=float)

        def ms(a: np.ndarray, d: int) -> str:
            if a.size == 0:
                return "never"
            return _fmt(float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0, d)

        lines.append(f"| {arm} | {n} | {len(ok)}/{len(rs)} | {ms(st, 0)} | {ms(sec, 1)} |")
    return "\n".join(lines), ref


def _with_curves(
    rows: list[dict[str, Any]], out: Path, n: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """The points at N = ``n`` with a validation curve; a row without one in ``results.json``
    reads it from its run directory (``points/KEY/run/metrics.csv``); points with neither are
    left out and named.

    Args:
        rows: per-point rows.
        out: study directory.
        n: the N_train whose curves are plotted.

    Returns:
        (rows with curves, keys of the points left out).
    """
    kept, missing = [], []
    for r in rows:
        if r["n_train"] != n:
            continue
        curve = r.get("curve") or {}
        if not any(a is not None for a in curve.get("val_auc", [])):
            try:
                curve = read_curve(out / "points" / str(r.get("key")) / "run")
            except Exception:  # unreadable metrics.csv: left out, named in the report
                curve = {}
        if any(a is not None for a in curve.get("val_auc", [])):
            kept.append({**r, "curve": curve})
        else:
            missing.append(str(r.get("key")))
    return kept, missing


def write_report(out: str | Path) -> Path:
    """Regenerate every plot and ``report.md`` from ``out/results.json``.

    Args:
        out: study directory.

    Returns:
        Path of ``report.md``.
    """
    out = Path(out)
    res = read_results(out)
    # every path the report shows is relative (to the study directory, else the working one)
    rows = [{**r, "init": shown_path(r.get("init"), out)} for r in res["points"]]
    summary = aggregate(rows)
    kind = res.get("kind", "data-efficiency")
    data = {
        k: shown_path(v, out) if k in ("train", "val", "test") and v is not None else v
        for k, v in res.get("data", {}).items()
    }
    study = res.get("study", {})
    budget = study.get("budget", {})
    arms = arm_names(summary)
    ns = sorted({r["n_train"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    n_test = sorted({r.get("n_test") for r in rows if r.get("n_test") is not None})
    unit = str(data.get("unit", "jets"))  # results written before events were studied: jets
    plots = plot_vs_n(summary, out, unit)
    scaling_png = plot_scaling(summary, out, unit)
    curve_pngs = plot_curves(rows, out) if kind == "compute" else []
    step_pngs: list[Path] = []
    curves_missing: list[str] = []
    if kind == "data-efficiency" and ns:
        curve_rows, curves_missing = _with_curves(rows, out, curves_n(ns))
        step_pngs = plot_val_auc_vs_step(curve_rows, out, [curves_n(ns)])
    schedules: dict[str, str] = data.get("schedules") or {}
    per_arm: list[str] = []
    if len(set(schedules.values())) > 1:  # e.g. AdamW and SGD arms
        optim = "each arm with its own optimizer settings (next line)"
        per_arm = [
            "- **Optimizer per arm:** "
            + "; ".join(f"`{a}`: {v}" for a, v in schedules.items() if a in arms)
            + "."
        ]
    elif schedules:
        optim = next(iter(schedules.values()))
    else:  # results written before schedules were recorded
        optim = f"batch {data.get('batch_size')}, lr {data.get('lr')} (warm-up + cosine)"
    train_s = sum(r["train_wall_s"] for r in rows)
    eval_s = sum(r["eval_wall_s"] for r in rows)
    md = [f"# colliderfm study: {kind}", ""]
    md += [
        "## Scale of this run",
        "",
        f"- **Points:** {len(rows)} fine-tuning runs over {len(arms)} arm(s), {len(ns)} label "
        f"count(s) and {len(seeds)} seed(s) (arms: {', '.join(arms)}; N_train: "
        f"{', '.join(map(str, ns))}{_arm_ns_text(rows, arms, ns)}; seeds: "
        f"{', '.join(map(str, seeds))}).",
        f"- **Data:** training subsets drawn class-balanced from `{data.get('train')}` "
        f"({data.get('train_labelled')} labelled {unit}); validation `{data.get('val')}` ("
        + (
            f"{data['val_size']} labelled {unit} used"
            if data.get("val_size") is not None
            else f"at most the first {data.get('val_max')} {unit}"
        )
        + f"); test `{data.get('test')}` ({', '.join(map(str, n_test))} {unit}).",
        *_budget_lines(budget, data, optim),
        *_linear_lines(rows),
        *per_arm,
        f"- **Compute:** {train_s:.0f} s of fine-tuning and {eval_s:.0f} s of test evaluation "
        f"in total ({(train_s + eval_s) / 3600:.2f} h, summed over points and invocations); "
        f"the last invocation took {res.get('sweep_wall_s', 0):.0f} s of wall time.",
    ]
    if len(seeds) < 3:
        md.append(
            f"- **Caution:** only {len(seeds)} seed(s): the ± values are not meaningful "
            "error estimates."
        )
    md += [
        "- ± is the sample standard deviation over seeds (each seed changes both the labelled "
        "subset and the initialisation of the trainable parts). Rejection is 1/eps_B with eps_B "
        "linearly interpolated on the ROC curve; a small test set limits it: 'n/a' or 'k/n "
        f"finite' means that in some seeds no background {unit[:-1]} passed at that signal "
        "efficiency (rejection beyond what the test set can measure; those seeds are left out).",
        "",
    ]
    if kind == "scaling" and scaling_png is not None:
        md += [
            "## Test AUC vs pretraining-set size",
            "",
            _scaling_table(summary, unit),
            "",
            f"![AUC vs pretraining size]({scaling_png.name})",
            "",
        ]
    if kind == "compute":
        table, ref = _compute_table(rows)
        md += [
            f"## Steps to reach `{ref}`'s best validation AUC",
            "",
            "Per seed, the target is the reference run's best validation AUC with that seed and "
            "N; seconds are estimated as step x the run's mean time per step.",
            "",
            table,
            "",
            *[f"![{p.stem}]({p.name})" for p in curve_pngs],
            "",
        ]
    md += _grid_lines(res)
    diff_auc, ref = _diff_table(summary, "auc", 4)
    md += [
        "## Test AUC (mean ± standard error over seeds)",
        "",
        _se_table(summary, "auc", 4),
        *_baseline_lines(res, "auc"),
        "",
        f"## Difference to `{ref}` (mean ± combined standard error, and in units of it)",
        "",
        "Each arm's mean minus the reference arm's mean at the same N; the combined standard "
        "error is sqrt(SE_arm^2 + SE_ref^2) with SE = std / sqrt(seeds).",
        "",
        "Test AUC:",
        "",
        diff_auc,
        "",
        "1/eps_B at eps_S = 0.3:",
        "",
        _diff_table(summary, "rej0.3", 1)[0],
        "",
        "1/eps_B at eps_S = 0.5:",
        "",
        _diff_table(summary, "rej0.5", 1)[0],
        "",
        "## Test AUC (mean ± std over seeds)",
        "",
        _table(summary, "auc", 4),
        "",
        f"![AUC vs N]({plots[0].name})",
        "",
        "## Background rejection 1/eps_B at eps_S = 0.3",
        "",
        _table(summary, "rej0.3", 1),
        *_baseline_lines(res, "rej0.3"),
        "",
        "## Background rejection 1/eps_B at eps_S = 0.5",
        "",
        _table(summary, "rej0.5", 1),
        *_baseline_lines(res, "rej0.5"),
        "",
        f"![rejection vs N]({plots[1].name})",
        "",
    ]
    if step_pngs or curves_missing:
        md += [
            f"## Validation AUC vs step at N = {curves_n(ns)}",
            "",
            "Mean over seeds (each seed interpolated onto the union of the seeds' steps, never "
            "past its own last validation), band = ±1 standard error where >= 2 seeds cover the "
            "step; linear-probe arms (no steps) as a dashed horizontal line at their mean "
            "validation AUC.",
            "",
            *[f"![validation AUC vs step]({p.name})" for p in step_pngs],
        ]
        if curves_missing:
            md.append(
                f"Left out (no validation curve in results.json or the run's metrics.csv): "
                f"{', '.join(f'`{k}`' for k in curves_missing)}."
            )
        md.append("")
    if any(r.get("sic0.3_n") for r in summary):  # results written before SIC was recorded: none
        for wp in ("0.3", "0.5"):
            md += [
                f"## Significance improvement eps_S / sqrt(eps_B) at eps_S = {wp}",
                "",
                _table(summary, f"sic{wp}", 2),
                *_baseline_lines(res, f"sic{wp}"),
                "",
            ]
    md += [
        "## Test accuracy",
        "",
        _table(summary, "accuracy", 4),
        "",
        "## Fine-tuning wall time per point [s]",
        "",
        _table(summary, "train_wall_s", 0),
        "",
        "## Every point",
        "",
        "Steps actually run (the maximum in brackets), epochs of N they amount to, fine-tuning "
        "wall time, the best validation AUC (the checkpoint that was tested) and the test "
        "metrics.",
        "",
        _points_table(rows),
        "",
    ]
    if kind != "scaling" and scaling_png is not None:
        md += [f"![AUC vs pretraining size]({scaling_png.name})", ""]
    md += ["## Command", "", "```bash"]
    commands = [c for c in res.get("commands", []) if c]
    md += [relative_text(c, out) for c in commands] or [
        relative_text(str(res.get("command") or "(library call)"), out)
    ]
    md += [
        "```",
        "",
        "Regenerate this report from `results.json`: `colliderfm study report "
        f"{shown_path(out, out)}`. Per-point rows: "
        "`results.csv`; aggregates: `summary.csv`. Paths are relative to the study directory "
        "when they lie inside it, else to the directory the report was written from.",
        "",
        "## Study config (resolved)",
        "",
        "```yaml",
        relative_text(yaml.safe_dump(study, sort_keys=False).rstrip(), out),
        "```",
        "",
        "## Fine-tuning config of the first point",
        "",
        "```yaml",
        relative_text(str(res.get("base_config", "")).rstrip(), out),
        "```",
        "",
        f"colliderfm {res.get('version', '?')}, results written {res.get('created', '?')}.",
        "",
    ]
    return write_text(out / "report.md", "\n".join(md))
