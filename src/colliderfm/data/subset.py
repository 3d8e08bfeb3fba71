"""Class-balanced, seeded subsets of labelled data (for ``--n-train N`` sweeps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from colliderfm.data.readers.base import reader_for
from colliderfm.data.readers.dispatch import iter_chunks
from colliderfm.data.schema import ConstituentChunk
from colliderfm.errors import DataError


def select_balanced(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Pick ``n`` indices with (as far as possible) equal counts per class.

    The draw depends only on ``labels``, ``n`` and ``seed``; a larger ``n`` with the same seed
    is not guaranteed to contain a smaller one.

    Args:
        labels: ``[N]`` class labels (``-1`` rows are never picked).
        n: subset size.
        seed: RNG seed.

    Returns:
        Sorted ``[n]`` int64 indices.
    """
    classes = np.unique(labels[labels >= 0])
    if len(classes) == 0:
        raise ValueError("no labelled rows to select from")
    rng = np.random.default_rng(seed)
    per = np.full(len(classes), n // len(classes))
    per[: n % len(classes)] += 1
    pools = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    avail = np.array([len(p) for p in pools])
    if avail.sum() < n:
        raise ValueError(f"asked for {n} labelled rows but only {int(avail.sum())} exist")
    # if a class is short, give its remaining quota to the others
    take = np.minimum(per, avail)
    short = n - int(take.sum())
    while short > 0:
        room = avail - take
        give = np.minimum(room, np.ceil(short / max((room > 0).sum(), 1)).astype(int))
        give = np.minimum(give, short)
        take += give
        short = n - int(take.sum())
    picked = np.concatenate([p[:k] for p, k in zip(pools, take, strict=True)])
    return np.sort(picked).astype(np.int64)


def read_labels(path: str | Path) -> np.ndarray:
    """All labels of a jet source (shard directories: only their label column is read).

    Args:
        path: any readable jet input.

    Returns:
        ``[N]`` int64 labels, in the order :func:`take_jets` counts the rows (bad rows skipped).
    """
    return reader_for(path).labels(Path(path))


def take_jets(path: str | Path, idx: np.ndarray) -> ConstituentChunk:
    """Load the jets at sorted indices ``idx`` of any readable input (streaming).

    Args:
        path: jet input.
        idx: sorted indices into the rows as :func:`read_labels` orders them.

    Returns:
        The jets, in file order.

    Raises:
        DataError: ``idx`` selects no jet.
    """
    parts: list[ConstituentChunk] = []
    start = 0
    for chunk in iter_chunks(path):
        stop = start + len(chunk)
        lo, hi = np.searchsorted(idx, [start, stop])
        if hi > lo:
            parts.append(chunk.take(idx[lo:hi] - start))
        start = stop
    if not parts:
        raise DataError(path, "no jets selected")
    return ConstituentChunk.concat(parts)


def load_subset(path: str | Path, n: int, seed: int) -> ConstituentChunk:
    """Load a class-balanced, seeded subset of ``n`` jets into memory.

    Args:
        path: any readable jet input.
        n: subset size.
        seed: RNG seed.

    Returns:
        The subset as one chunk (in file order).
    """
    labels = read_labels(path)
    try:
        idx = select_balanced(labels, n, seed)
    except ValueError as exc:
        raise DataError(path, str(exc)) from exc
    return take_jets(path, idx)
