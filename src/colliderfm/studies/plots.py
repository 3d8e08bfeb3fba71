"""Study plots (PNG, matplotlib like :mod:`colliderfm.evaluate.plots`), from result rows alone.

* ``auc_vs_n.png`` and ``rejection_vs_n.png``: test AUC and 1/eps_B at eps_S = 0.3 and 0.5 vs
  the number of labelled jets or events (log x), one line per arm, band = mean +- std over seeds;
* ``auc_vs_pretrain_size.png`` (arms with ``pretrain_size``): test AUC vs pretraining-set size,
  one line per N_train, the from-scratch control as a horizontal band;
* ``val_auc_vs_step.png`` and ``val_auc_vs_time.png`` (compute studies): validation AUC during
  fine-tuning, per arm and N_train;
* ``val_auc_vs_step.png`` (data-efficiency studies, :func:`plot_val_auc_vs_step`): validation
  AUC vs step at the N closest to :data:`CURVES_N`, every arm on one figure.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from colliderfm.evaluate.plots import _plt, _save
from colliderfm.studies.results import arm_names

_LABELS = {
    "auc": "test AUC",
    "accuracy": "test accuracy",
    "rej0.3": r"$1/\varepsilon_B$ at $\varepsilon_S=0.3$",
    "rej0.5": r"$1/\varepsilon_B$ at $\varepsilon_S=0.5$",
}


def _band(ax: Any, x: np.ndarray, mean: np.ndarray, std: np.ndarray, label: str, **kw: Any) -> None:
    ok = np.isfinite(mean)
    if not ok.any():
        return
    (line,) = ax.plot(x[ok], mean[ok], marker="o", label=label, **kw)
    s = np.nan_to_num(std[ok])
    if ok.sum() == 1:  # a band of one point has no width: an error bar instead
        ax.errorbar(x[ok], mean[ok], yerr=s, color=line.get_color(), capsize=4, ls="none")
        return
    ax.fill_between(x[ok], mean[ok] - s, mean[ok] + s, alpha=0.25, color=line.get_color(), lw=0)


def _legend(ax: Any, **kw: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def _family(arm: str) -> str:
    """The recipe an arm of a scaling study stands for: its name without ``-p<size>``."""
    return re.sub(r"-p\d+$", "", arm)


def _logx(ax: Any, xs: list[float] | np.ndarray) -> None:
    """Log x axis with one labelled tick per value (no overlapping minor labels)."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    vals = sorted({float(x) for x in xs})
    if vals:
        ax.set_xticks(vals)
        ax.set_xticklabels([f"{v:g}" for v in vals], rotation=45 if len(vals) > 5 else 0)
    ax.xaxis.set_minor_formatter(NullFormatter())


def _series(
    summary: list[dict[str, Any]], arm: str, metric: str, x: str = "n_train"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rs = sorted((r for r in summary if r["arm"] == arm), key=lambda r: r[x] or 0)
    xs = np.array([r[x] for r in rs], dtype=float)
    mean = np.array([np.nan if r[f"{metric}_mean"] is None else r[f"{metric}_mean"] for r in rs])
    std = np.array([np.nan if r[f"{metric}_std"] is None else r[f"{metric}_std"] for r in rs])
    return xs, mean.astype(float), std.astype(float)


def plot_vs_n(summary: list[dict[str, Any]], out: Path, unit: str = "jets") -> list[Path]:
    """AUC vs N and rejection (eps_S = 0.3, 0.5) vs N, one band per arm.

    Args:
        summary: aggregated rows.
        out: study directory.
        unit: what the study counts (``jets`` or ``events``), for the axis labels.

    Returns:
        The PNGs written.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 5.5))
    for arm in arm_names(summary):
        _band(ax, *_series(summary, arm, "auc"), label=arm)
    ns = [r["n_train"] for r in summary]
    _logx(ax, ns)
    ax.set_xlabel(f"labelled training {unit} $N_{{train}}$")
    ax.set_ylabel("test AUC")
    _legend(ax, loc="lower right", fontsize="small")
    _save(fig, out / "auc_vs_n.png")
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    fig.subplots_adjust(wspace=0.35)
    for ax, m in zip(axes, ("rej0.3", "rej0.5"), strict=True):
        for arm in arm_names(summary):
            _band(ax, *_series(summary, arm, m), label=arm)
        _logx(ax, ns)
        ax.set_yscale("log")
        ax.set_xlabel(f"labelled training {unit} $N_{{train}}$")
        ax.set_ylabel(_LABELS[m])
        _legend(ax, loc="upper left", fontsize="small")
    _save(fig, out / "rejection_vs_n.png")
    plt.close(fig)
    return [out / "auc_vs_n.png", out / "rejection_vs_n.png"]


def plot_scaling(summary: list[dict[str, Any]], out: Path, unit: str = "jets") -> Path | None:
    """Test AUC vs pretraining-set size per N_train; scratch arms as horizontal bands.

    Args:
        summary: aggregated rows.
        out: study directory.
        unit: what the study counts (``jets`` or ``events``), for the axis label.

    Returns:
        The PNG, or None without pretrained arms.
    """
    pre = [r for r in summary if r.get("pretrain_size")]
    if not pre:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 5.5))
    groups = sorted(
        {(_family(r["arm"]), r["mode"], r["n_train"]) for r in pre},
        key=lambda g: (g[2], g[0], g[1]),
    )
    modes, families = {g[1] for g in groups}, {g[0] for g in groups}
    sizes = np.array(sorted({r["pretrain_size"] for r in pre}), dtype=float)
    drawn: set[int] = set()
    for family, mode, n in groups:
        rs = sorted(
            (
                r
                for r in pre
                if _family(r["arm"]) == family and r["mode"] == mode and r["n_train"] == n
            ),
            key=lambda r: r["pretrain_size"],
        )
        x = np.array([r["pretrain_size"] for r in rs], dtype=float)
        mean = np.array([np.nan if r["auc_mean"] is None else r["auc_mean"] for r in rs])
        std = np.array([np.nan if r["auc_std"] is None else r["auc_std"] for r in rs])
        label = f"$N_{{train}}$={n}" + (f" ({mode})" if len(modes) > 1 else "")
        label = f"{family}, {label}" if len(families) > 1 else label
        _band(ax, x, mean.astype(float), std.astype(float), label=label)
        color = ax.lines[-1].get_color() if ax.lines else None
        for r in summary:
            if n in drawn:  # one scratch line per N, however many pretrained families
                break
            if r["init"] == "none" and r["n_train"] == n and r["auc_mean"] is not None:
                m, s = r["auc_mean"], r["auc_std"] or 0.0
                ax.axhline(m, ls="--", color=color, lw=1, label=f"{r['arm']}, $N$={n}")
                lo, hi = (sizes.min(), sizes.max()) if len(sizes) > 1 else ax.get_xlim()
                ax.fill_between([lo, hi], m - s, m + s, color=color, alpha=0.1, lw=0)
        drawn.add(n)
    _logx(ax, sizes)
    ax.set_xlabel(f"pretraining {unit}")
    ax.set_ylabel("test AUC")
    _legend(ax, loc="lower right", fontsize="small")
    path = out / "auc_vs_pretrain_size.png"
    _save(fig, path)
    plt.close(fig)
    return path


def _mean_curve(
    rows: list[dict[str, Any]], time: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Mean and std of validation AUC over seeds at the steps every seed logged."""
    curves = []
    for r in rows:
        c = r.get("curve") or {}
        pairs = [
            (s, a)
            for s, a in zip(c.get("step", []), c.get("val_auc", []), strict=False)
            if a is not None
        ]
        steps, aucs = [p[0] for p in pairs], [p[1] for p in pairs]
        if steps:
            per = r["train_wall_s"] / r["steps"] if r.get("steps") else 0.0
            curves.append(dict(zip(steps, aucs, strict=True)) | {"_per": per})
    if not curves:
        return None
    common = sorted(set.intersection(*(set(k for k in c if k != "_per") for c in curves)))
    if not common:
        return None
    a = np.array([[c[s] for s in common] for c in curves], dtype=float)
    x = np.array(common, dtype=float)
    if time and all(r.get("mode") == "linear" for r in rows):  # no steps: at its fit's end
        x = np.full(len(common), float(np.mean([r["train_wall_s"] for r in rows])))
    elif time:
        x = x * float(np.mean([c["_per"] for c in curves]))
    std = a.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros(len(common))
    return x, a.mean(axis=0), std


def plot_curves(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """Validation AUC vs step and vs (estimated) wall time, per arm, one panel per N_train.

    Args:
        rows: per-point rows with curves.
        out: study directory.

    Returns:
        The PNGs written.
    """
    ns = sorted({r["n_train"] for r in rows})
    arms: list[str] = []
    for r in rows:
        if r["arm"] not in arms:
            arms.append(r["arm"])
    plt = _plt()
    paths = []
    for time, name, xlabel in (
        (False, "val_auc_vs_step.png", "fine-tuning step"),
        (True, "val_auc_vs_time.png", "fine-tuning wall time [s] (mean s/step x step)"),
    ):
        fig, axes = plt.subplots(1, len(ns), figsize=(6.5 * len(ns), 5.5), squeeze=False)
        for ax, n in zip(axes[0], ns, strict=True):
            for arm in arms:
                c = _mean_curve([r for r in rows if r["arm"] == arm and r["n_train"] == n], time)
                if c is not None:
                    _band(ax, *c, label=arm)
            ax.set_title(f"$N_{{train}}$ = {n}", fontsize="medium")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("validation AUC")
            _legend(ax, loc="lower right", fontsize="small")
        _save(fig, out / name)
        plt.close(fig)
        paths.append(out / name)
    return paths


#: Data-efficiency studies: ``val_auc_vs_step.png`` shows the validation curves at the study's
#: N_train closest to this value (ties: the smaller N). Study configs have no plot section, so
#: this constant is the default; :func:`plot_val_auc_vs_step` also takes explicit ``ns``.
CURVES_N = 1000


def curves_n(ns: list[int], target: int = CURVES_N) -> int:
    """The label count closest to ``target`` (ties: the smaller).

    Args:
        ns: the study's N_train values (non-empty).
        target: the wanted N.

    Returns:
        One of ``ns``.
    """
    return min(ns, key=lambda n: (abs(n - target), n))


def seed_curve(rows: list[dict[str, Any]]) -> dict[str, np.ndarray] | None:
    """Mean over seeds of validation AUC vs optimizer step, on the union of the seeds' steps.

    Each seed's curve (``row["curve"]``, ``None`` AUCs dropped) is linearly interpolated onto the
    union of all seeds' logged steps, but only inside that seed's own range: it is never
    extrapolated past its last validation (early stopping), so beyond it the mean is over the
    seeds still running. Seeds on a common evaluation grid are thus averaged exactly.

    Args:
        rows: the points of one arm and N (one per seed).

    Returns:
        ``step``, ``mean``, ``se`` (standard error std/sqrt(n), NaN where fewer than 2 seeds
        cover the step) and ``n`` (seeds covering each step); None without any curve.
    """
    seeds = []
    for r in rows:
        c = r.get("curve") or {}
        pairs = sorted(
            (float(s), float(a))
            for s, a in zip(c.get("step", []), c.get("val_auc", []), strict=False)
            if a is not None and s is not None
        )
        if pairs:
            seeds.append((np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])))
    if not seeds:
        return None
    grid = np.array(sorted({float(s) for x, _ in seeds for s in x}))
    vals = np.full((len(seeds), len(grid)), np.nan)
    for i, (x, y) in enumerate(seeds):
        inside = (grid >= x[0]) & (grid <= x[-1])
        vals[i, inside] = np.interp(grid[inside], x, y)
    n = np.isfinite(vals).sum(axis=0)
    mean = np.nanmean(vals, axis=0)
    se = np.full(len(grid), np.nan)
    many = n >= 2
    if many.any():
        se[many] = np.nanstd(vals[:, many], axis=0, ddof=1) / np.sqrt(n[many])
    return {"step": grid, "mean": mean, "se": se, "n": n}


def plot_val_auc_vs_step(
    rows: list[dict[str, Any]], out: Path, ns: list[int] | None = None
) -> list[Path]:
    """Validation AUC vs optimizer step at one (or each given) N_train, every arm on one figure.

    One line per arm: the mean over seeds (:func:`seed_curve`), with a +-1 standard-error band
    where >= 2 seeds cover the step. Linear-probe arms (``mode: linear``, a single step-0 point)
    are drawn as a horizontal dashed line at their mean validation AUC over seeds (band: +-1 SE).

    Args:
        rows: per-point rows (with ``curve``); points without a curve are skipped.
        out: study directory.
        ns: the N_train values to plot; default the study's N closest to :data:`CURVES_N`.

    Returns:
        The PNGs written: ``val_auc_vs_step.png`` for one N, else ``val_auc_vs_step_n{N}.png``
        each; none without any curve at the chosen N.
    """
    all_ns = sorted({r["n_train"] for r in rows})
    if not all_ns:
        return []
    ns = ns or [curves_n(all_ns)]
    arms: list[str] = []
    for r in rows:
        if r["arm"] not in arms:
            arms.append(r["arm"])
    plt = _plt()
    cycle = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    paths = []
    for n in ns:
        fig, ax = plt.subplots(figsize=(7, 5.5))
        drawn = False
        for i, arm in enumerate(arms):
            color = cycle[i % len(cycle)]  # fixed per arm (axhline would not advance the cycle)
            rs = [r for r in rows if r["arm"] == arm and r["n_train"] == n]
            c = seed_curve(rs)
            if c is None:
                continue
            drawn = True
            band_ok = np.isfinite(c["se"])
            if rs and all(r.get("mode") == "linear" for r in rs):
                m = float(c["mean"][0])
                s = float(c["se"][0]) if band_ok[0] else 0.0
                ax.axhline(m, ls="--", lw=1.5, color=color, label=f"{arm} (linear probe)")
                if s:
                    ax.axhspan(m - s, m + s, color=color, alpha=0.15, lw=0)
                continue
            ax.plot(c["step"], c["mean"], color=color, label=arm)
            se = np.where(band_ok, c["se"], np.nan)
            ax.fill_between(
                c["step"],
                c["mean"] - se,
                c["mean"] + se,
                where=band_ok,
                color=color,
                alpha=0.25,
                lw=0,
            )
        if not drawn:
            plt.close(fig)
            continue
        ax.set_title(f"$N_{{train}}$ = {n} (mean over seeds, ±1 SE)", fontsize="medium")
        ax.set_xlabel("fine-tuning step")
        ax.set_ylabel("validation AUC")
        _legend(ax, loc="lower right", fontsize="small")
        path = out / ("val_auc_vs_step.png" if len(ns) == 1 else f"val_auc_vs_step_n{n}.png")
        _save(fig, path)
        plt.close(fig)
        paths.append(path)
    return paths
