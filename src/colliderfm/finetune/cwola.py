"""Weak supervision: Classification Without Labels (CWoLa, Metodiev, Nachman, Thaler 2017).

A classifier trained to separate two mixed samples whose signal fractions differ is, in the
limit of infinite data, a monotonic function of the signal-vs-background likelihood ratio. Two
ways to get the mixtures:

* **from labelled data** (``finetune.cwola_fractions: [f_A, f_B]``, default ``[0.7, 0.3]``):
  two equal-size, disjoint mixtures are drawn (seeded by ``train.seed``) from ``data.train``, A
  with signal fraction ``f_A`` and B with ``f_B``; ``finetune.n_train`` is their total size
  (default: as many as the data allow). Signal is ``finetune.signal_class`` (binary data only).
* **from two given samples** (``finetune.cwola_samples: [A, B]``): e.g. a signal region and a
  sideband; with ``n_train``, ``n_train // 2`` jets are drawn from each (seeded), otherwise the
  larger sample is cut to the size of the smaller one, so the two classes stay balanced.

Mixture A is trained as class ``signal_class`` (1 by default) and B as the other class. Truth
labels are never used for training; validation (``data.val``, hence the best checkpoint) and
test metrics use the true labels of those sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from colliderfm.config import Config, signal_index
from colliderfm.data.readers.dispatch import data_classes
from colliderfm.data.schema import ConstituentChunk
from colliderfm.data.subset import read_labels, take_jets
from colliderfm.errors import ConfigError, DataError


@dataclass
class CwolaData:
    """The training jets of a CWoLa run (labels = mixture ids) and what they hold."""

    chunk: ConstituentChunk
    classes: list[str]
    info: dict[str, Any] = field(default_factory=dict)


def check_fractions(fractions: list[float]) -> tuple[float, float]:
    """Validate ``finetune.cwola_fractions``.

    Args:
        fractions: ``[f_A, f_B]``.

    Returns:
        ``(f_A, f_B)`` as floats.
    """
    key = "finetune.cwola_fractions"
    if not isinstance(fractions, list) or len(fractions) != 2:
        raise ConfigError(f"config key '{key}' must be two signal fractions [f_A, f_B]")
    try:
        f_a, f_b = (float(f) for f in fractions)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config key '{key}' must hold numbers, got {fractions!r}") from exc
    if not (0.0 <= f_b < f_a <= 1.0):
        raise ConfigError(
            f"config key '{key}' = {fractions!r} needs 0 <= f_B < f_A <= 1 (mixture A is the "
            "signal-rich one)"
        )
    return f_a, f_b


def mixture_indices(
    labels: np.ndarray,
    fractions: tuple[float, float] | list[float],
    n: int | None,
    seed: int,
    signal_class: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Pick two disjoint, equal-size mixtures with signal fractions ``f_A`` and ``f_B``.

    Each mixture holds ``m = n // 2`` jets: ``round(f * m)`` signal jets and the rest background
    (every labelled class other than ``signal_class``). No jet is used twice; the draw depends
    only on ``labels``, ``fractions``, ``n`` and ``seed``.

    Args:
        labels: ``[N]`` true labels (``-1`` rows are never picked).
        fractions: ``(f_A, f_B)`` with ``f_A > f_B``.
        n: total jets in both mixtures (None: the most the data allow).
        seed: RNG seed.
        signal_class: the signal label.

    Returns:
        (sorted indices of mixture A, sorted indices of mixture B).
    """
    f_a, f_b = check_fractions(list(fractions))
    labels = np.asarray(labels)
    sig = np.flatnonzero(labels == signal_class)
    bkg = np.flatnonzero((labels >= 0) & (labels != signal_class))

    def need(m: int) -> tuple[int, int, int, int]:
        s_a, s_b = round(f_a * m), round(f_b * m)
        return s_a, m - s_a, s_b, m - s_b

    def fits(m: int) -> bool:
        s_a, b_a, s_b, b_b = need(m)
        return s_a + s_b <= sig.size and b_a + b_b <= bkg.size

    if n is None:
        m = int(min(sig.size / (f_a + f_b), bkg.size / (2.0 - f_a - f_b)))
        while m > 0 and not fits(m):
            m -= 1
    else:
        m = n // 2
        if not fits(m):
            s_a, b_a, s_b, b_b = need(m)
            raise ValueError(
                f"mixtures of {m} jets with signal fractions {f_a}, {f_b} need {s_a + s_b} "
                f"signal and {b_a + b_b} background jets, but only {sig.size} and {bkg.size} exist"
            )
    if m < 1:
        raise ValueError(
            f"too few jets for two mixtures ({sig.size} signal, {bkg.size} background)"
        )
    s_a, b_a, s_b, b_b = need(m)
    rng = np.random.default_rng(seed)
    ps, pb = rng.permutation(sig), rng.permutation(bkg)
    a = np.concatenate([ps[:s_a], pb[:b_a]])
    b = np.concatenate([ps[s_a : s_a + s_b], pb[b_a : b_a + b_b]])
    return np.sort(a).astype(np.int64), np.sort(b).astype(np.int64)


def _relabel(a: ConstituentChunk, b: ConstituentChunk, signal_class: int) -> ConstituentChunk:
    out = ConstituentChunk.concat([a, b])
    out.label = np.concatenate(
        [np.full(len(a), signal_class), np.full(len(b), 1 - signal_class)]
    ).astype(np.int64)
    return out


def _from_fractions(cfg: Config) -> CwolaData:
    ft = cfg.finetune
    path = cfg.data.train
    assert path is not None
    classes = data_classes(path)
    if len(classes) != 2:
        raise ConfigError(
            f"finetune.cwola with cwola_fractions needs binary data; {path} has classes "
            f"{classes} (or give finetune.cwola_samples=[A,B])"
        )
    sig = signal_index(ft.signal_class, classes)
    fracs = check_fractions(ft.cwola_fractions)
    labels = read_labels(path)
    try:
        ia, ib = mixture_indices(labels, fracs, ft.n_train, cfg.train.seed, sig)
    except ValueError as exc:
        raise DataError(path, str(exc)) from exc
    a, b = take_jets(path, ia), take_jets(path, ib)
    info = {
        "source": "fractions",
        "requested_fractions": list(fracs),
        "fractions": [float(np.mean(a.label == sig)), float(np.mean(b.label == sig))],
        "sizes": [len(a), len(b)],
    }
    return CwolaData(_relabel(a, b, sig), classes, info)


def _load_sample(path: str, m: int | None, seed: int) -> ConstituentChunk:
    n = len(read_labels(path))
    idx = np.arange(n) if m is None else np.sort(np.random.default_rng(seed).permutation(n)[:m])
    return take_jets(path, idx)


def _from_samples(cfg: Config) -> CwolaData:
    ft = cfg.finetune
    key = "finetune.cwola_samples"
    samples = ft.cwola_samples or []
    if len(samples) != 2 or not all(isinstance(s, str) for s in samples):
        raise ConfigError(f"config key '{key}' must be two paths [A, B] (A: the signal-rich one)")
    for s in samples:
        if not Path(s).exists():
            raise ConfigError(f"config key '{key}': {s} does not exist")
    classes = data_classes(cfg.data.val) if cfg.data.val is not None else []
    if len(classes) == 2:
        sig = signal_index(ft.signal_class, classes)
    elif ft.signal_class in (0, 1):
        sig = int(ft.signal_class)
        classes = ["mixture_B", "mixture_A"] if sig == 1 else ["mixture_A", "mixture_B"]
    else:
        raise ConfigError(
            "config key 'finetune.signal_class' must be 0 or 1 for CWoLa (a class name needs a "
            "binary data.val to name the classes)"
        )
    sizes = [len(read_labels(s)) for s in samples]
    m = min(sizes) if ft.n_train is None else ft.n_train // 2
    if m < 1 or m > min(sizes):
        raise DataError(
            samples[int(np.argmin(sizes))],
            f"cannot draw {m} jets per mixture (the samples hold {sizes[0]} and {sizes[1]})",
        )
    a = _load_sample(samples[0], m, cfg.train.seed)
    b = _load_sample(samples[1], m, cfg.train.seed + 1)
    info: dict[str, Any] = {"source": "samples", "samples": list(samples), "sizes": [m, m]}
    if (a.label >= 0).all() and (b.label >= 0).all():  # truth known: report the real fractions
        info["fractions"] = [float(np.mean(a.label == sig)), float(np.mean(b.label == sig))]
    return CwolaData(_relabel(a, b, sig), classes, info)


def prepare_cwola(cfg: Config) -> CwolaData:
    """Build the CWoLa training set of a run from its config.

    Args:
        cfg: run config with ``finetune.cwola`` set.

    Returns:
        The mixed training jets (labels = mixture ids), class names and a summary.
    """
    if cfg.finetune.cwola_samples:
        return _from_samples(cfg)
    if cfg.data.train is None:
        raise ConfigError("data.train is not set (CWoLa draws its mixtures from it)")
    return _from_fractions(cfg)
