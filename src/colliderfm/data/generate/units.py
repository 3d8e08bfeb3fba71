"""Plumbing shared by the jet and event generators: independent units, their seeds, the
progress counter of pool workers, and starting Pythia (the settings every generator shares).

A data set is cut into units (a process, a shard, a chunk of it); each unit derives its own
seeds from the user's seed and its coordinates, so the output does not depend on how many
workers run the units or in which order they finish.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from colliderfm.data.generate.vetoes import EarlyVeto, attach
from colliderfm.errors import require


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


def pythia_base_settings(sqrt_s: float, mpi: bool, tau0_max: float) -> list[str]:
    """The Pythia ``readString`` lines both generators share (beams, output, MPI, decays).

    Args:
        sqrt_s: centre-of-mass energy, GeV.
        mpi: multi-parton interactions on.
        tau0_max: particles with ``c tau`` above this (mm) are stable.

    Returns:
        Settings lines (hadronisation always on).
    """
    return [
        f"Beams:eCM = {sqrt_s}",
        "Print:quiet = on",
        "Next:numberCount = 0",
        f"PartonLevel:MPI = {'on' if mpi else 'off'}",
        "HadronLevel:all = on",
        "ParticleDecays:limitTau0 = on",
        f"ParticleDecays:tau0Max = {tau0_max}",
    ]


def pythia_seed_settings(seed: int | None) -> list[str]:
    """The seed lines of a Pythia instance (none for ``seed=None``).

    Args:
        seed: Pythia ``Random:seed`` (1..900000000), or None.

    Returns:
        Settings lines.
    """
    return [] if seed is None else ["Random:setSeed = on", f"Random:seed = {seed}"]


def start_pythias(
    process: str,
    settings: Any,
    pythia_seeds: Sequence[int],
    n_variants: int,
    veto: EarlyVeto | None = None,
    dry_run: bool = False,
) -> tuple[list[Any], list[Any]]:
    """Initialise one Pythia instance per variant of a process, with its early-veto hooks.

    Args:
        process: process key, passed to ``settings.pythia_settings(process, seed, variant)``.
        settings: the generator's settings dataclass.
        pythia_seeds: one seed per variant (extra seeds are ignored).
        n_variants: variants of the process.
        veto: early veto of the process (:mod:`.vetoes`), or None.
        dry_run: the hooks record what they would veto instead of vetoing.

    Returns:
        ``(pythias, hooks)``: the initialised ``pythia8.Pythia`` instances and their veto hooks
        (one per instance, or empty without a veto).

    Raises:
        RuntimeError: Pythia rejects a setting or fails to initialise.
    """
    pythia8 = require("pythia8mc", "gen")
    pythias = []
    for variant, seed in enumerate(pythia_seeds[:n_variants]):
        pythia = pythia8.Pythia("", False)  # type: ignore[attr-defined]
        for line in settings.pythia_settings(process, seed, variant):
            if not pythia.readString(line):
                raise RuntimeError(f"Pythia rejected setting {line!r}")
        pythias.append(pythia)
    hooks = attach(pythias, veto, dry_run)
    for pythia in pythias:
        if not pythia.init():
            raise RuntimeError(f"Pythia failed to initialise process {process!r}")
    return pythias, hooks


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


def _in_worker(fn: Callable[..., Any], unit: Unit) -> Any:
    """Run ``fn`` on a unit in a pool worker, counting its rows in the shared counter."""
    return fn(unit, progress=worker_progress())


class UnitPool:
    """Runs units in worker processes (inline with one worker), updating a progress bar.

    Create it before any progress bar: on Linux the workers are forked (no ``__main__`` guard
    needed in user scripts; they only run NumPy, Pythia and FastJet), and no helper thread may
    exist at fork time. Elsewhere (macOS, Windows) they are spawned.

    Args:
        n_workers: worker processes (1: run inline).
    """

    def __init__(self, n_workers: int) -> None:
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        ctx = multiprocessing.get_context(method)
        self.counter = ctx.Value("q", 0)
        self.pool = ctx.Pool(n_workers, init_worker, (self.counter,)) if n_workers > 1 else None

    def run(self, fn: Callable[..., Any], units: Sequence[Unit], bar: Any) -> Iterator[Any]:
        """Run ``fn(unit)`` for every unit, yielding results as they finish.

        Args:
            fn: top-level unit function taking ``(unit, progress)``; ``progress`` is called
                with the number of new rows (in a worker it adds them to the shared counter).
            units: the units.
            bar: tqdm bar advanced by the rows generated (live, also from workers).

        Yields:
            ``fn``'s results, in completion order.
        """
        if self.pool is None:
            for unit in units:
                yield fn(unit, progress=bar.update)
            return
        with self.pool:  # terminates the workers on any error
            results = self.pool.imap_unordered(partial(_in_worker, fn), units, chunksize=1)
            for _ in units:
                while True:
                    try:
                        result = results.next(timeout=0.5)
                        break
                    except multiprocessing.TimeoutError:
                        bar.update(self.counter.value - bar.n)
                yield result
                bar.update(self.counter.value - bar.n)
