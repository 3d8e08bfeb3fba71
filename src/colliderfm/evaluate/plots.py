"""ROC-curve and score-distribution plots (matplotlib with the mplhep CMS-like style)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from colliderfm.fileio import atomic_path


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        import mplhep

        plt.style.use(mplhep.style.ROOT)
    except Exception:  # pragma: no cover - style is cosmetic
        pass
    return plt


def _save(fig, path: Path) -> None:  # type: ignore[no-untyped-def]
    """Save a figure as PNG atomically (no half-written image is ever left behind)."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")


def plot_roc(
    eps_s: np.ndarray,
    eps_b: np.ndarray,
    path: str | Path,
    label: str = "",
    auc: float | None = None,
) -> Path:
    """Background rejection ``1/eps_B`` vs signal efficiency (log scale), saved as PNG.

    Args:
        eps_s: ROC signal efficiencies.
        eps_b: ROC background efficiencies.
        path: output PNG.
        label: legend label.
        auc: AUC shown in the legend.

    Returns:
        The PNG path.
    """
    plt = _plt()
    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 6))
    ok = eps_b > 0
    text = label + (f" (AUC = {auc:.4f})" if auc is not None else "")
    ax.plot(eps_s[ok], 1.0 / eps_b[ok], label=text or None)
    ax.plot(eps_s[ok], 1.0 / np.maximum(eps_s[ok], 1e-12), ls=":", c="grey", label="random")
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_xlabel(r"Signal efficiency $\varepsilon_S$")
    ax.set_ylabel(r"Background rejection $1/\varepsilon_B$")
    ax.legend(loc="lower left")
    _save(fig, path)
    plt.close(fig)
    return path


def plot_scores(
    labels: np.ndarray,
    scores: np.ndarray,
    path: str | Path,
    names: tuple[str, str] = ("background", "signal"),
) -> Path:
    """Normalised score distributions of signal and background, saved as PNG.

    Args:
        labels: ``[N]`` 1 signal / 0 background.
        scores: ``[N]`` signal scores in [0, 1].
        path: output PNG.
        names: legend names (background, signal).

    Returns:
        The PNG path.
    """
    plt = _plt()
    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 6))
    bins = np.linspace(0, 1, 41)
    for cls, name in ((0, names[0]), (1, names[1])):
        sel = labels == cls
        if sel.any():
            ax.hist(scores[sel], bins=bins, density=True, histtype="step", lw=2, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("Classifier score")
    ax.set_ylabel("Normalised entries")
    ax.legend(loc="upper center")
    _save(fig, path)
    plt.close(fig)
    return path
