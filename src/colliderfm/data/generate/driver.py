"""The one driver of the jet and event generators: plan the units, run them, write the shards.

A generator (:mod:`.jets`, :mod:`.events`) supplies what differs: its settings, the row order of
its processes, the function that generates one unit, how a shard's parts are written and the
manifest's ``source`` record. This module does the rest, the same way for both:

1. :class:`GenerationJob` checks the common arguments (processes, counts, seed, workers and
   the batch-system mode ``num_shards``/``shard_index``, which derives the rows per shard);
2. :meth:`GenerationJob.plan` cuts the rows into shards of ``rows_per_shard`` and every shard into
   units of at most ``unit_rows`` rows of one process, each with seeds derived from
   ``(seed, process, shard, chunk)`` (only the units of ``shard_index`` in batch mode);
3. :meth:`GenerationJob.run` runs the units in a :class:`~.units.UnitPool` with a progress bar and
   writes every shard, shuffled with ``default_rng([seed, SHUFFLE_TAG, shard])``, in shard order as
   soon as its units are done, so the output does not depend on the number of workers.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import InitVar, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from colliderfm.data.generate.units import Unit, UnitPool
from colliderfm.data.shards import ShardWriter, read_manifest
from colliderfm.errors import ColliderFMError

__all__ = ["SHUFFLE_TAG", "GenerationJob", "package_version", "round_robin"]

#: Entropy tag of the per-shard shuffle, ``default_rng([seed, SHUFFLE_TAG, shard])``.
SHUFFLE_TAG = 0x5EED

#: ``(seed, process, shard, chunk) -> (pythia seeds, detector seed)`` of one unit.
UnitSeeds = Callable[[int, str, int, int], tuple[tuple[int, ...], int]]
#: Writes one shard: ``(writer, the parts of its units in unit order, shuffle RNG)``.
WriteShard = Callable[[ShardWriter, list[Any], np.random.Generator], None]


def package_version(dist: str) -> str:
    """The installed version of a distribution, for the manifest.

    Args:
        dist: distribution name, e.g. ``"pythia8mc"``.

    Returns:
        Its version, or ``"unknown"`` when it is not installed.
    """
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:  # pragma: no cover - depends on the environment
        return "unknown"


def round_robin(keys: Sequence[str], n: int) -> np.ndarray:
    """The process of every output row: ``n`` rows of each key, interleaved round-robin.

    Args:
        keys: process keys, in output order.
        n: rows per key.

    Returns:
        ``[n * len(keys)]`` object array of keys.
    """
    return np.array(list(keys), dtype=object)[np.arange(n * len(keys)) % len(keys)]


@dataclass
class GenerationJob:
    """The arguments every generator shares, checked on creation; plans and runs the units.

    The checks run in this order: batch mode, processes, counts (``--n``, ``--seed``,
    ``--workers``, rows per shard); the messages name the command-line options.

    Args:
        kind: ``"jets"`` or ``"events"`` (manifest kind, progress bar and error messages).
        processes: requested process keys (checked only, not kept).
        valid: every valid process key (named in the error).
        n: rows per process.
        out: output shard directory.
        seed: base seed.
        workers: parallel generator processes.
        rows_per_shard: rows per Parquet shard; in batch mode replaced by
            ``ceil(n * len(processes) / num_shards)``.
        progress: show a progress bar on stderr.
        overwrite: replace an existing output directory.
        num_shards: batch-system mode: the data set is cut into this many shards.
        shard_index: batch-system mode: the one shard this job writes.

    Raises:
        ColliderFMError: an argument is invalid.
    """

    kind: str
    processes: InitVar[Sequence[str]]
    valid: InitVar[Sequence[str]]
    n: int
    out: str | Path
    seed: int
    workers: int
    rows_per_shard: int
    progress: bool = True
    overwrite: bool = False
    num_shards: int | None = None
    shard_index: int | None = None

    def __post_init__(self, processes: Sequence[str], valid: Sequence[str]) -> None:
        if (self.num_shards is None) != (self.shard_index is None):
            raise ColliderFMError("--num-shards and --shard-index must be given together")
        if self.num_shards is not None and self.shard_index is not None:
            if self.num_shards < 1 or not 0 <= self.shard_index < self.num_shards:
                raise ColliderFMError(
                    "need 0 <= --shard-index < --num-shards "
                    f"(got {self.shard_index}, {self.num_shards})"
                )
            self.rows_per_shard = -(-self.n * len(set(processes)) // self.num_shards)
        unknown = [p for p in processes if p not in valid]
        if unknown or not processes:
            what = f"unknown process {', '.join(map(repr, unknown))}" if unknown else "no process"
            raise ColliderFMError(f"{what}; valid processes: {', '.join(valid)}")
        for name, value, lo in (
            ("--n", self.n, 1),
            ("--seed", self.seed, 0),
            ("--workers", self.workers, 1),
            (f"--{self.kind}-per-shard", self.rows_per_shard, 1),
        ):
            if value < lo:
                raise ColliderFMError(f"{name} must be >= {lo} (got {value})")

    @property
    def batch_mode(self) -> bool:
        """Whether this job writes one shard of a larger data set (``--shard-index``)."""
        return self.shard_index is not None

    def plan(
        self,
        rows: np.ndarray,
        labels: Mapping[str, int],
        unit_rows: int,
        unit_seeds: UnitSeeds,
        settings: Any,
    ) -> list[Unit]:
        """Cut the rows into shards and units (in batch mode only those of ``shard_index``).

        Args:
            rows: the process of every output row (:func:`round_robin` or a mix of it).
            labels: process -> label, in the order of the units within a shard.
            unit_rows: most rows one unit generates.
            unit_seeds: derives a unit's seeds from ``(seed, process, shard, chunk)``.
            settings: the generator's settings, passed to every unit.

        Returns:
            The units, indexed in output order.

        Raises:
            ColliderFMError: in batch mode, ``shard_index`` is beyond the last shard.
        """
        n_shards = -(-len(rows) // self.rows_per_shard)
        units: list[Unit] = []
        for s in range(n_shards):
            here = Counter(rows[s * self.rows_per_shard : (s + 1) * self.rows_per_shard].tolist())
            for key, label in labels.items():
                count = here.get(key, 0)
                for c, lo in enumerate(range(0, count, unit_rows)):
                    py_seeds, det_seed = unit_seeds(self.seed, key, s, c)
                    n = min(unit_rows, count - lo)
                    unit = Unit(len(units), key, label, s, c, n, py_seeds, det_seed, settings)
                    units.append(unit)
        if self.shard_index is None:
            return units
        if self.shard_index >= n_shards:
            raise ColliderFMError(
                f"shard {self.shard_index} is empty: {self.n} {self.kind} per process fill only "
                f"{n_shards} shards"
            )
        mine = [u for u in units if u.shard == self.shard_index]
        return [dataclasses.replace(u, index=i) for i, u in enumerate(mine)]

    def run(
        self,
        units: list[Unit],
        classes: list[str],
        run_unit: Callable[..., tuple[int, Any, Sequence[float]]],
        write_shard: WriteShard,
        stats: dict[str, list[Any]],
        source: Callable[[], dict[str, Any]],
    ) -> dict[str, Any]:
        """Run the units and write the shards and the manifest (atomically, see ShardWriter).

        Args:
            units: from :meth:`plan`.
            classes: class names of the manifest.
            run_unit: top-level (picklable) ``run_unit(unit, progress)`` returning
                ``(unit index, rows, statistics)``.
            write_shard: writes one shard's parts, shuffled with the given RNG.
            stats: process -> running totals; each unit's statistics are added element-wise
                to its process's list (in place).
            source: builds the manifest's ``source`` record once all units are done (it reads
                ``stats``); the batch-mode ``num_shards``/``shard_index`` are added to it.

        Returns:
            The manifest dict (as written to ``out/manifest.json``).
        """
        from tqdm.auto import tqdm

        shards = sorted({u.shard for u in units})
        shard_units = [[u.index for u in units if u.shard == s] for s in shards]
        # the manifest's source is filled in once the unit statistics are known
        writer = ShardWriter(
            self.out,
            self.kind,
            classes,
            {},
            rows_per_shard=self.rows_per_shard,
            overwrite=self.overwrite,
        )
        pool = UnitPool(min(self.workers, len(units)))  # before the progress bar (see UnitPool)
        bar = tqdm(
            total=sum(u.n for u in units),
            unit=self.kind[:-1],
            file=sys.stderr,
            disable=not self.progress,
            desc=f"generate {self.kind}",
            smoothing=0.1,
        )
        with writer, bar:
            pending: dict[int, Any] = {}
            next_shard = 0
            for index, part, unit_stats in pool.run(run_unit, units, bar):
                pending[index] = part
                totals = stats[units[index].process]
                for i, value in enumerate(unit_stats):
                    totals[i] += value
                # write every shard whose units are all done, in shard order
                while next_shard < len(shards) and all(
                    i in pending for i in shard_units[next_shard]
                ):
                    parts = [pending.pop(i) for i in shard_units[next_shard]]
                    rng = np.random.default_rng([self.seed, SHUFFLE_TAG, shards[next_shard]])
                    write_shard(writer, parts, rng)
                    next_shard += 1
            writer.source = source()
            if self.batch_mode:
                writer.source.update(num_shards=self.num_shards, shard_index=self.shard_index)
        return read_manifest(self.out)
