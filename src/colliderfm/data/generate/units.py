"""Plumbing shared by the jet and event generators: independent units, their seeds, and the
progress counter of pool workers.

A data set is cut into units (a process, a shard, a chunk of it); each unit derives its own
seeds from the user's seed and its coordinates, so the output does not depend on how many
workers run the units or in which order they finish.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Unit:
    """One independent piece of work: ``n`` jets or events of ``process`` for one shard.

    Attributes:
        index: position of the unit in the data set (output order).
        process: process (or sub-process) name.
        label: class index written with the unit's rows.
        shard: output shard.
        chunk: chunk of the process within the shard.
        n: rows to generate.
        pythia_seeds: one Pythia seed per process variant.
        detector_seed: NumPy seed of the detector response.
        settings: the generator's settings dataclass.
    """

    index: int
    process: str
    label: int
    shard: int
    chunk: int
    n: int
    pythia_seeds: tuple[int, ...]
    detector_seed: int
    settings: Any


def derive_seeds(entropy: Sequence[int], n_variants: int) -> tuple[tuple[int, ...], int]:
    """Pythia seeds (in 1..900_000_000, one per variant) and a NumPy seed from a unit's key.

    Args:
        entropy: the unit's key, e.g. ``[seed, process index, shard, chunk]``.
        n_variants: Pythia instances the unit runs.

    Returns:
        ``(pythia_seeds, numpy_seed)``.
    """
    state = np.random.SeedSequence(list(entropy)).generate_state(1 + n_variants)
    return tuple(1 + int(s) % 900_000_000 for s in state[1:]), int(state[0])


_WORKER_COUNTER: Any = None  # shared row counter of a pool worker (progress only)


def init_worker(counter: Any) -> None:
    """Pool initialiser: remember the shared progress counter.

    Args:
        counter: a ``multiprocessing.Value`` counting generated rows.
    """
    global _WORKER_COUNTER
    _WORKER_COUNTER = counter


def worker_progress() -> Any:
    """The progress callback of a pool worker (adds to the shared counter), or None outside one.

    Returns:
        ``count(k)`` or None.
    """
    return _count if _WORKER_COUNTER is not None else None


def _count(k: int) -> None:
    with _WORKER_COUNTER.get_lock():
        _WORKER_COUNTER.value += k
