"""The markdown report of a study and its plots, regenerated from ``DIR/results.json`` alone.

The plots are drawn by :mod:`colliderfm.studies.plots` (``auc_vs_n.png``,
``rejection_vs_n.png``, ``auc_vs_pretrain_size.png``, and for compute studies
``val_auc_vs_step.png`` and ``val_auc_vs_time.png``); the tables read the aggregates of
:mod:`colliderfm.studies.results`.

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
from colliderfm.studies.plots import plot_curves, plot_scaling, plot_vs_n
from colliderfm.studies.results import (
    aggregate,
    arm_names,
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
        f"- **Points:** {len(arms)} arm(s) x {len(ns)} label count(s) x {len(seeds)} seed(s) = "
        f"{len(rows)} fine-tuning runs (arms: {', '.join(arms)}; N_train: "
        f"{', '.join(map(str, ns))}; seeds: {', '.join(map(str, seeds))}).",
        f"- **Data:** training subsets drawn class-balanced from `{data.get('train')}` "
        f"({data.get('train_labelled')} labelled {unit}); validation `{data.get('val')}` (at "
        f"most the first {data.get('val_max')} {unit}); test `{data.get('test')}` "
        f"({', '.join(map(str, n_test))} {unit}).",
        f"- **Budget per point (identical for every arm, scratch included):** "
        f"{budget.get('max_steps')} optimizer steps, {optim}, validation every "
        f"{budget.get('eval_every')} steps, test metrics of the checkpoint selected by "
        f"`{budget.get('select')}`; model {data.get('model')}, precision "
        f"{data.get('precision')}.",
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
    md += [
        "## Test AUC (mean ± std over seeds)",
        "",
        _table(summary, "auc", 4),
        "",
        f"![AUC vs N]({plots[0].name})",
        "",
        "## Background rejection 1/eps_B at eps_S = 0.3",
        "",
        _table(summary, "rej0.3", 1),
        "",
        "## Background rejection 1/eps_B at eps_S = 0.5",
        "",
        _table(summary, "rej0.5", 1),
        "",
        f"![rejection vs N]({plots[1].name})",
        "",
    ]
    if any(r.get("sic0.3_n") for r in summary):  # results written before SIC was recorded: none
        for wp in ("0.3", "0.5"):
            md += [
                f"## Significance improvement eps_S / sqrt(eps_B) at eps_S = {wp}",
                "",
                _table(summary, f"sic{wp}", 2),
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
