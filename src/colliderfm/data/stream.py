"""Streaming jets into padded, masked batches with bounded memory.

:class:`ConstituentStream` is an ``IterableDataset`` that

* splits its work units (Parquet row groups, in-memory blocks, or whole foreign files) across
  (DDP rank, DataLoader worker) so every jet is seen once per pass by exactly one consumer;
* reshuffles the unit order every pass and shuffles jets through a bounded buffer;
* is deterministic for a seed (same seed, same world size and workers -> same batches);
* pads each jet to ``max_particles`` (keeping the highest-pT particles) and trims each batch to
  its longest jet, then builds the model features in torch;
* applies the skip policy to every chunk (jets/events with NaN/inf or without particles are
  dropped) and counts, per pass, the skipped jets and the jets cut to ``max_particles``
  (:attr:`ConstituentStream.skipped`, :attr:`ConstituentStream.truncated`; one log line per
  pass when non-zero).

Event shards stream the same way: each event is a "jet" whose particles are its reconstructed
objects (``type_id`` = ObjectType); ``feature_set="event"`` builds the per-object features and
``Batch.type_id`` carries the object types.

Memory is bounded by ``buffer_size`` jets plus one work unit, whatever the data size.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from colliderfm.config import Config
from colliderfm.data.features import (
    FEATURE_SETS,
    build_features,
    feature_kind,
    feature_sets_of,
)
from colliderfm.data.readers.base import READERS, Unit, reader_for
from colliderfm.data.readers.common import sanitize_jets
from colliderfm.data.readers.parquet import EMPTY_KEY
from colliderfm.data.schema import Batch, ConstituentChunk
from colliderfm.errors import DataError
from colliderfm.runtime import rank_world

log = logging.getLogger(__name__)


@dataclass
class Padded:
    """Jets padded to a fixed particle count (NumPy, one row per jet)."""

    vectors: np.ndarray  # [N, P, 4] float32
    charge: np.ndarray  # [N, P] int8
    type_id: np.ndarray  # [N, P] int32
    counts: np.ndarray  # [N] int64, real particles kept (<= P)
    labels: np.ndarray  # [N] int64
    truncated: np.ndarray  # [N] bool, the jet had more than P particles (the softest were cut)

    def __len__(self) -> int:
        return int(self.counts.shape[0])

    def take(self, idx: np.ndarray | slice) -> Padded:
        """Rows at ``idx``.

        Args:
            idx: index array or slice.

        Returns:
            The selected rows.
        """
        return Padded(
            self.vectors[idx],
            self.charge[idx],
            self.type_id[idx],
            self.counts[idx],
            self.labels[idx],
            self.truncated[idx],
        )

    @staticmethod
    def concat(parts: list[Padded]) -> Padded:
        """Concatenate padded blocks.

        Args:
            parts: blocks with equal ``P``.

        Returns:
            One block.
        """
        cat = np.concatenate
        return Padded(
            cat([p.vectors for p in parts]),
            cat([p.charge for p in parts]),
            cat([p.type_id for p in parts]),
            cat([p.counts for p in parts]),
            cat([p.labels for p in parts]),
            cat([p.truncated for p in parts]),
        )


def pad_chunk(chunk: ConstituentChunk, max_particles: int) -> Padded:
    """Pad jagged jets to ``max_particles``, keeping each jet's highest-pT particles (vectorised).

    Args:
        chunk: jets in jagged form.
        max_particles: particle slots per jet.

    Returns:
        Padded arrays; particles sorted by pT (descending) within each jet; ``truncated`` marks
        the jets that had more than ``max_particles`` particles.
    """
    n, p = len(chunk), max_particles
    jet_idx = np.repeat(np.arange(n, dtype=np.int64), chunk.counts)
    with np.errstate(over="ignore"):  # a finite but absurd momentum sorts first as inf
        pt = np.hypot(chunk.px, chunk.py)
    order = np.lexsort((-pt, jet_idx))  # by jet, then pT descending
    pos = np.arange(order.size, dtype=np.int64) - np.repeat(chunk.offsets[:-1], chunk.counts)
    keep = pos < p
    src, row, col = order[keep], jet_idx[order][keep], pos[keep]
    vectors = np.zeros((n, p, 4), dtype=np.float32)
    vectors[row, col, 0] = chunk.px[src]
    vectors[row, col, 1] = chunk.py[src]
    vectors[row, col, 2] = chunk.pz[src]
    vectors[row, col, 3] = chunk.energy[src]
    charge = np.zeros((n, p), dtype=np.int8)
    charge[row, col] = chunk.charge[src]
    pid = np.zeros((n, p), dtype=np.int32)
    pid[row, col] = chunk.type_id[src]
    return Padded(
        vectors,
        charge,
        pid,
        np.minimum(chunk.counts, p),
        chunk.label.astype(np.int64),
        chunk.counts > p,
    )


def to_batch(block: Padded, feature_set: str = "part", trim: bool = True) -> Batch:
    """Turn padded NumPy rows into a model-ready :class:`Batch`.

    Args:
        block: padded jets.
        feature_set: feature set name (see :mod:`colliderfm.data.features`); ``"event"`` builds
            per-object features with ``type_id`` read as the ObjectType (event shards).
        trim: cut the particle axis to the longest jet in the block.

    Returns:
        The batch (features built in torch).
    """
    p = max(int(block.counts.max(initial=1)), 1) if trim else block.vectors.shape[1]
    vectors = torch.from_numpy(np.ascontiguousarray(block.vectors[:, :p]))  # [B, P, 4]
    counts = torch.from_numpy(block.counts)
    mask = torch.arange(p).unsqueeze(0) < counts.unsqueeze(1)  # [B, P]
    charge = torch.from_numpy(block.charge[:, :p].astype(np.float32))  # [B, P]
    type_id = torch.from_numpy(block.type_id[:, :p].astype(np.int64))  # [B, P]
    feats = build_features(feature_set, vectors, mask, charge, type_id)  # [B, P, F]
    labels = torch.from_numpy(block.labels)
    return Batch(
        features=feats,
        mask=mask,
        labels=labels,
        weights=torch.ones(len(block), dtype=torch.float32),
        vectors=vectors,
        charge=charge,
        type_id=type_id,
    )


def units_for(source: str | Path | ConstituentChunk, block: int = 256) -> list[Unit]:
    """Split a data source into independent work units.

    Args:
        source: shard directory / ``.parquet`` (one unit per row group), a foreign file (one
            unit), or an in-memory :class:`ConstituentChunk` (blocks of ``block`` jets).
        block: jets per unit for in-memory sources.

    Returns:
        Work units; each is a callable returning an iterator of chunks.
    """
    if isinstance(source, ConstituentChunk):
        n = len(source)
        starts = range(0, n, block)
        return [(lambda s=s: iter([source.take(np.arange(s, min(s + block, n)))])) for s in starts]
    path = Path(source)
    return reader_for(path).units(path)


def check_feature_set(source: str | Path | ConstituentChunk, feature_set: str) -> None:
    """Refuse event data with jet features and jets with event features (else silent garbage).

    Only canonical sources are checked (shard directories and ``.parquet`` files, whose kind is
    in their metadata); in-memory chunks and foreign files (JetClass, Top Tagging, NanoAOD) pass.

    Args:
        source: a data source of :class:`ConstituentStream`.
        feature_set: the requested feature set.

    Raises:
        DataError: the source's kind does not match the feature set.
    """
    if isinstance(source, ConstituentChunk):
        return
    path = Path(source)
    reader = reader_for(path)
    if not reader.canonical:
        return
    have = reader.kind(path)
    if have != feature_kind(feature_set):
        want = " or ".join(feature_sets_of(have))
        raise DataError(path, f"holds {have}, but data.features is '{feature_set}' (use {want})")


#: batches each loader worker keeps ready when training on CUDA (the DataLoader default is 2)
CUDA_PREFETCH = 4

#: sources already warned about (once per process: validation streams are rebuilt)
_WARNED_PID: set[str] = set()


def warn_unknown_particle_id(source: str | Path | ConstituentChunk, feature_set: str) -> None:
    """Warn when a feature set that uses charge and particle type reads a source without them.

    Top Tagging files (and shards converted from them) have no particle ID: charge and type
    are read as 0, which the ``part`` features encode as "neutral, unknown type" for every
    particle. The model still trains and evaluates, so this is a warning (once per source and
    process) that suggests ``data.features=kinematic``, like the one for a ``.parquet`` file
    without ``part_charge``/``part_pid`` columns.

    Args:
        source: a data source of :class:`ConstituentStream`.
        feature_set: the requested feature set.
    """
    if isinstance(source, ConstituentChunk) or "charge" not in FEATURE_SETS.get(feature_set, ()):
        return
    path = Path(source)
    if str(path) in _WARNED_PID:
        return
    why = reader_for(path).no_particle_id(path)
    if why:
        _WARNED_PID.add(str(path))
        log.warning(
            "%s: no part_charge/part_pid (%s): read as 0 (unknown); use data.features=kinematic",
            path,
            why,
        )


class ConstituentStream(IterableDataset):
    """Iterable dataset of :class:`Batch` objects over one or more jet sources.

    Args:
        sources: paths (shards, ROOT, HDF5) or in-memory chunks.
        batch_size: jets per batch (per rank).
        max_particles: particle slots per jet before trimming.
        shuffle: shuffle unit order (per pass) and jets (through the buffer).
        buffer_size: shuffle-buffer size in jets (bounds memory).
        seed: base seed; pass ``p`` uses ``(seed, p)``.
        infinite: cycle forever (training); otherwise one pass (evaluation).
        feature_set: see :mod:`colliderfm.data.features`.
        trim_padding: trim each batch to its longest jet.
        drop_last: drop a final incomplete batch.
        rank, world_size: DDP position (detected from torch.distributed when None).
        quiet: log the per-pass skip/truncation line at debug level only (streams that are
            rebuilt over and over, like the linear probe's).
    """

    def __init__(
        self,
        sources: list[str | Path | ConstituentChunk] | str | Path | ConstituentChunk,
        batch_size: int,
        max_particles: int = 128,
        shuffle: bool = True,
        buffer_size: int = 20_000,
        seed: int = 0,
        infinite: bool = False,
        feature_set: str = "part",
        trim_padding: bool = True,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        quiet: bool = False,
    ) -> None:
        super().__init__()
        self.quiet = quiet
        if not isinstance(sources, list):
            sources = [sources]
        for src in sources:
            check_feature_set(src, feature_set)
            warn_unknown_particle_id(src, feature_set)
        self.units: list[Unit] = [u for s in sources for u in units_for(s)]
        self.batch_size, self.max_particles = batch_size, max_particles
        self.shuffle, self.buffer_size, self.seed = shuffle, max(buffer_size, batch_size), seed
        self.infinite, self.feature_set, self.trim = infinite, feature_set, trim_padding
        #: what the rows are: ``"events"`` with the event feature set, else ``"jets"``
        self.kind = feature_kind(feature_set)
        self.drop_last = drop_last
        r, w = rank_world()
        self.rank = r if rank is None else rank
        self.world_size = w if world_size is None else world_size
        self.start_pass = 0
        #: jets skipped by the skip policy in the last pass of this process, by reason
        self.skipped: Counter[str] = Counter()
        #: jets cut to ``max_particles`` (highest-pT particles kept) in the last pass
        self.truncated = 0

    def _consumer(self) -> tuple[int, int]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        return self.rank * nw + wid, self.world_size * nw

    def _pass_units(self, pass_idx: int, consumer: int, n_consumers: int) -> list[Unit]:
        order = np.arange(len(self.units))
        if self.shuffle:
            order = np.random.default_rng([self.seed, pass_idx]).permutation(order)
        mine = order[consumer::n_consumers]
        if len(mine) == 0 and len(order) > 0:
            # fewer units than consumers: share units round-robin so nobody starves
            mine = order[consumer % len(order) :: max(len(order), 1)][:1]
        return [self.units[i] for i in mine]

    def _jets(self, units: list[Unit]) -> Iterator[Padded]:
        empty = EMPTY_KEY[self.kind]
        for unit in units:
            for chunk in unit():
                chunk = sanitize_jets(chunk, self.skipped, empty=empty)
                if len(chunk):
                    block = pad_chunk(chunk, self.max_particles)
                    self.truncated += int(np.count_nonzero(block.truncated))
                    yield block

    def _log_pass(self, pass_idx: int) -> None:
        """One log line for a finished pass: jets skipped and jets cut to ``max_particles``.

        Args:
            pass_idx: the pass that ended.
        """
        what = self.kind
        parts = []
        if self.truncated:
            parts.append(
                f"{self.truncated} {what} had more than max_particles={self.max_particles} "
                f"{'objects' if what == 'events' else 'particles'}; kept the highest-pT ones"
            )
        if self.skipped:
            reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items()))
            parts.append(f"skipped {sum(self.skipped.values())} bad {what} ({reasons})")
        if parts:
            # every pass over the same data gives the same counts: info once, then debug
            # (quiet streams, e.g. the linear probe's, rebuilt for every probe: always debug)
            first = pass_idx == self.start_pass and not self.quiet
            level = logging.INFO if first else logging.DEBUG
            log.log(level, "data pass %d: %s", pass_idx, "; ".join(parts))

    def __iter__(self) -> Iterator[Batch]:
        consumer, n_consumers = self._consumer()
        pass_idx = self.start_pass
        while True:
            self.skipped, self.truncated = Counter(), 0
            rng = np.random.default_rng([self.seed, pass_idx, consumer, 1])
            buf: list[Padded] = []
            size = 0
            emitted = False
            for block in self._jets(self._pass_units(pass_idx, consumer, n_consumers)):
                buf.append(block)
                size += len(block)
                if size >= self.buffer_size + self.batch_size:
                    pool = Padded.concat(buf)
                    if self.shuffle:
                        pool = pool.take(rng.permutation(len(pool)))
                    n_out = (len(pool) - self.buffer_size) // self.batch_size * self.batch_size
                    for s in range(0, n_out, self.batch_size):
                        emitted = True
                        yield to_batch(
                            pool.take(slice(s, s + self.batch_size)), self.feature_set, self.trim
                        )
                    buf, size = [pool.take(slice(n_out, None))], len(pool) - n_out
            if buf:
                pool = Padded.concat(buf)
                if self.shuffle:
                    pool = pool.take(rng.permutation(len(pool)))
                for s in range(0, len(pool), self.batch_size):
                    part = pool.take(slice(s, s + self.batch_size))
                    if self.drop_last and len(part) < self.batch_size:
                        break
                    emitted = True
                    yield to_batch(part, self.feature_set, self.trim)
            self._log_pass(pass_idx)
            pass_idx += 1
            if not self.infinite or not emitted:
                return


def count_examples(source: str | Path) -> int | None:
    """Number of jets in a canonical source without reading particles (None when unknown).

    The canonical reader's :meth:`~colliderfm.data.readers.base.Reader.count` for shard
    directories and ``.parquet`` files; None for anything else, since training reads shards
    (:func:`colliderfm.data.readers.dispatch.count_entries` counts foreign files too).

    Args:
        source: shard directory or ``.parquet`` file.

    Returns:
        Jet count or None for foreign formats.
    """
    path = Path(source)
    if path.is_dir() or path.suffix == ".parquet":
        return READERS.get("parquet").count(path)
    return None


def examples_per_pass(source: str | Path) -> int:
    """Number of jets (or events) one training pass over ``source`` reads, for any format.

    Shard directories and ``.parquet`` files: exact, from their metadata
    (:func:`count_examples`). JetClass ROOT and Top Tagging HDF5: the stored entries (exact
    unless the reader skips bad jets; then an upper bound by their number). A format without a
    stored count (NanoAOD, whose event selection runs while reading): one streaming pass with
    bounded memory, exact.

    Args:
        source: training data path.

    Returns:
        The count.
    """
    n = count_examples(source)
    if n is not None:
        return n
    path = Path(source)
    reader = reader_for(path)
    n = reader.count(path)
    if n is None:
        log.info("counting the examples of %s (one streaming pass)", path)
        n = sum(len(c) for c in reader.iter_chunks(path))
    return int(n)


def steps_per_pass(n_jets: int, batch_size: int, world_size: int = 1) -> int:
    """Optimizer steps in one pass over ``n_jets`` with a global batch of ``batch_size*world``.

    Args:
        n_jets: jets per pass.
        batch_size: per-rank batch.
        world_size: number of ranks.

    Returns:
        Steps (at least 1).
    """
    return max(1, math.ceil(n_jets / (batch_size * world_size)))


def evaluation_stream(
    source: str | Path | ConstituentChunk,
    batch_size: int,
    max_particles: int,
    feature_set: str = "part",
    quiet: bool = False,
) -> ConstituentStream:
    """One ordered pass over a source on this process alone (evaluation, probes, validation).

    Unlike training streams it is not shuffled and not split across ranks: every rank that
    evaluates sees the whole source in its stored order.

    Args:
        source: path or in-memory chunk.
        batch_size: jets or events per batch.
        max_particles: constituent slots before trimming.
        feature_set: input features.
        quiet: log skipped/truncated counts at debug level only.

    Returns:
        The stream.
    """
    return ConstituentStream(
        source,
        batch_size=batch_size,
        max_particles=max_particles,
        shuffle=False,
        feature_set=feature_set,
        rank=0,
        world_size=1,
        quiet=quiet,
    )


def training_loader(
    source: str | Path | ConstituentChunk,
    n_jets: int,
    cfg: Config,
    device: torch.device | None = None,
) -> tuple[DataLoader, int]:
    """The endless, shuffled training loader of a run and its steps per epoch.

    Args:
        source: training jets (path or in-memory chunk).
        n_jets: jets in one pass over ``source``.
        cfg: run config (``data`` and ``train`` sections).
        device: the training device. On CUDA the loader pins its batches (so the loop's
            ``non_blocking`` copies overlap compute) and its workers prefetch
            :data:`CUDA_PREFETCH` batches each; elsewhere (or None) it is the plain CPU loader.

    Returns:
        (DataLoader yielding :class:`Batch`, optimizer steps per epoch).
    """
    stream = ConstituentStream(
        source,
        batch_size=cfg.train.batch_size,
        max_particles=cfg.data.max_particles,
        shuffle=True,
        buffer_size=cfg.data.shuffle_buffer,
        seed=cfg.train.seed,
        infinite=True,
        feature_set=cfg.data.features,
        trim_padding=cfg.data.trim_padding,
    )
    workers = cfg.train.workers
    cuda = device is not None and device.type == "cuda"
    extra: dict[str, Any] = {}
    if cuda:
        extra["pin_memory"] = True
        if workers > 0:
            extra["prefetch_factor"] = CUDA_PREFETCH
    loader = DataLoader(
        stream,
        batch_size=None,
        num_workers=workers,
        persistent_workers=workers > 0,
        **extra,
    )
    world = rank_world()[1]
    spe = cfg.train.steps_per_epoch or steps_per_pass(n_jets, cfg.train.batch_size, world)
    return loader, spe
