"""Reading the canonical on-disk format: a directory of Parquet shards plus ``manifest.json``.

Two row layouts: jets (``part_*`` list columns, ``jet_*`` scalars) and events (``obj_*`` list
columns, manifest ``kind: "events"``). Both are read into
:class:`~colliderfm.data.schema.ConstituentChunk` (events via
:func:`~colliderfm.data.schema.objects_to_chunk`), so one loader serves both.
:class:`ParquetReader` is the format's entry in the reader registry. Writing shards is
:mod:`colliderfm.data.shards`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from colliderfm.config import path_problem
from colliderfm.data.readers.base import (
    PARQUET_MAGIC,
    READERS,
    EventInputs,
    Reader,
    Unit,
    file_head,
    register,
)
from colliderfm.data.readers.common import good_jets, sanitize_jets
from colliderfm.data.schema import (
    EVENT_CLASSES,
    EVENT_COLUMNS,
    JET_SCALARS,
    MANIFEST,
    ROW_GROUP,
    ConstituentChunk,
    objects_to_chunk,
)
from colliderfm.data.shards import read_manifest, shard_paths, verify_shards
from colliderfm.errors import DataError

log = logging.getLogger(__name__)

__all__ = [
    "MANIFEST",
    "ROW_GROUP",
    "ParquetReader",
    "iter_parquet_jets",
    "read_manifest",
    "shard_paths",
]

#: List columns a jet table must have; ``part_charge``/``part_pid`` are optional (0 = unknown).
JET_REQUIRED: tuple[str, ...] = ("part_px", "part_py", "part_pz", "part_energy")
#: Optional per-particle list columns, filled with 0 (unknown) when absent.
JET_OPTIONAL: tuple[str, ...] = ("part_charge", "part_pid")
#: ``skipped`` key of rows without particles (jets) or objects (events).
EMPTY_KEY = {"jets": "zero_particles", "events": "zero_objects"}


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (pyarrow's can span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def open_parquet(path: str | Path, what: str = "file") -> pq.ParquetFile:
    """Open a Parquet file (reads its footer), or fail with one line naming the file.

    Every direct use of :class:`pyarrow.parquet.ParquetFile` goes through here, so a missing,
    empty, truncated or foreign file is a :class:`~colliderfm.errors.DataError`, not a pyarrow
    traceback.

    Args:
        path: ``.parquet`` file.
        what: how the message calls it (``"file"``, ``"shard"``).

    Returns:
        The opened file (``.schema_arrow``, ``.metadata``, ``.num_row_groups``, ...).

    Raises:
        DataError: the file is missing, empty or not a readable Parquet file.
    """
    path = Path(path)
    problem = path_problem(path)  # a link loop, a FIFO, a directory ... say so
    if problem is not None:
        raise DataError(path, problem)
    if path.stat().st_size == 0:
        raise DataError(path, "file is empty")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(path, f"not a readable Parquet {what} ({_one_line(exc)})") from exc


def read_schema(path: str | Path, what: str = "file") -> pa.Schema:
    """The Arrow schema of a Parquet file, or one-line :class:`DataError` naming the file.

    Args:
        path: ``.parquet`` file.
        what: how an error message calls it (``"file"``, ``"shard"``).

    Returns:
        Its Arrow schema.
    """
    return open_parquet(path, what).schema_arrow


def check_schema(schema: pa.Schema, path: str | Path, warn: bool = True) -> str:
    """Check that a Parquet schema is a canonical jet or event table (one line on failure).

    Jets need the list columns :data:`JET_REQUIRED` and ``label``; ``part_charge`` and
    ``part_pid`` may be missing (a foreign file with four-vectors only): they are then read as 0,
    which the features treat as unknown charge/type (a warning suggests
    ``data.features=kinematic``). Events need :data:`~colliderfm.data.schema.EVENT_COLUMNS` and
    ``label``. Every ``part_*``/``obj_*`` column must be a list of numbers, ``label`` a number.

    Args:
        schema: the file's Arrow schema.
        path: the file (for messages).
        warn: log the warning about missing ``part_charge``/``part_pid`` (once per file).

    Returns:
        ``"jets"`` or ``"events"``.

    Raises:
        DataError: a missing column, or a column of the wrong type.
    """
    names = schema.names
    kind = "events" if is_event_table(names) else "jets"
    need = (*EVENT_COLUMNS, "label") if kind == "events" else (*JET_REQUIRED, "label")
    missing = [c for c in need if c not in names]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)}")
    for name in names:
        typ = schema.field(name).type
        if name.startswith("part_" if kind == "jets" else "obj_"):
            if not (pa.types.is_list(typ) or pa.types.is_large_list(typ)):
                raise DataError(path, f"column {name} is not a list column (type {typ})")
            typ = typ.value_type
        elif name != "label" and not (kind == "jets" and name in JET_SCALARS):
            continue
        if not (pa.types.is_integer(typ) or pa.types.is_floating(typ)):
            raise DataError(path, f"column {name} is not numeric (type {typ})")
    absent = [c for c in JET_OPTIONAL if c not in names]
    if kind == "jets" and absent and warn:
        log.warning(
            "%s: no %s column(s): read as 0 (unknown); use data.features=kinematic",
            path,
            "/".join(absent),
        )
    return kind


def _no_nulls(col: pa.Array | pa.ChunkedArray, name: str, where: str | Path) -> None:
    """Refuse null values in a column (Arrow would fail on them with a traceback, or NumPy
    would read them as arbitrary numbers)."""
    if col.null_count:
        fix = "use -1 for unlabelled rows" if name == "label" else "fill or drop those rows"
        raise DataError(where, f"column '{name}' has {col.null_count} null value(s); {fix}")


def _flat_list(
    table: pa.Table | pa.RecordBatch, name: str, where: str | Path = "<table>"
) -> tuple[np.ndarray, np.ndarray]:
    """A list column as (flat values, counts), zero-copy where possible; nulls are an error."""
    col = table.column(name)
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    _no_nulls(arr, name, where)
    _no_nulls(arr.values, name, where)
    offs = arr.offsets.to_numpy()
    values = arr.values.to_numpy(zero_copy_only=False)
    return values[offs[0] : offs[-1]], np.diff(offs)


def is_event_table(names: list[str]) -> bool:
    """Whether column names are the canonical event layout (``obj_*``) rather than jets.

    Args:
        names: column names of a table or schema.

    Returns:
        True for event rows.
    """
    return "obj_pt" in names and "part_px" not in names


def table_to_chunk(
    table: pa.Table | pa.RecordBatch, path: str | Path | None = None
) -> ConstituentChunk:
    """Convert a canonical Arrow table (or record batch) to a chunk, without Python loops.

    Event tables (``obj_*`` columns) become chunks whose particles are the objects (see
    :func:`~colliderfm.data.schema.objects_to_chunk`). A jet table without ``part_charge`` /
    ``part_pid`` gets zeros (unknown) for them. Columns are checked with :func:`check_schema`.

    Args:
        table: table with the canonical jet or event columns.
        path: the file the table comes from (for error messages).

    Returns:
        The jets (or events) as a :class:`ConstituentChunk`.

    Raises:
        DataError: a missing or mistyped column, or list columns of unequal lengths in a row.
    """
    where = "<table>" if path is None else path
    kind = check_schema(table.schema, where, warn=False)
    flat = partial(_flat_list, table, where=where)
    cols = EVENT_COLUMNS if kind == "events" else (*JET_REQUIRED, *JET_OPTIONAL)
    lists: dict[str, np.ndarray] = {}
    counts: np.ndarray | None = None
    for name in cols:
        if name not in table.column_names:
            continue
        values, n = flat(name)
        if counts is None:
            counts = n
        elif not np.array_equal(n, counts):
            raise DataError(where, f"list column {name} has other lengths than {cols[0]}")
        lists[name] = values
    assert counts is not None  # checked by check_schema
    for name in ("label", *(k for k in JET_SCALARS if k in table.column_names)):
        _no_nulls(table.column(name), name, where)
    label = np.asarray(table.column("label").to_numpy(), dtype=np.int64)
    if kind == "events":
        pt, eta, phi, energy, obj_type = (lists[c] for c in EVENT_COLUMNS)
        return objects_to_chunk(counts, pt, eta, phi, energy, obj_type, label)
    n_part = int(counts.sum())
    jet = {
        k: np.asarray(table.column(k).to_numpy(), dtype=np.float32)
        for k in JET_SCALARS
        if k in table.column_names
    }
    return ConstituentChunk(
        counts=counts.astype(np.int64),
        px=lists["part_px"],
        py=lists["part_py"],
        pz=lists["part_pz"],
        energy=lists["part_energy"],
        charge=lists.get("part_charge", np.zeros(n_part, dtype=np.int8)),
        type_id=lists.get("part_pid", np.zeros(n_part, dtype=np.int32)),
        label=label,
        jet=jet,
    )


def iter_shard(
    path: str | Path, rows: int = ROW_GROUP, row_groups: Iterable[int] | None = None
) -> Iterator[pa.RecordBatch]:
    """Stream record batches from one Parquet shard with bounded memory.

    Args:
        path: shard file.
        rows: rows per record batch.
        row_groups: subset of row groups to read (all by default).

    Returns:
        Iterator over record batches.

    Raises:
        DataError: the file is missing, empty, truncated or not Parquet.
    """
    pf = open_parquet(path, "shard")
    groups = list(range(pf.num_row_groups)) if row_groups is None else list(row_groups)
    try:
        yield from pf.iter_batches(batch_size=rows, row_groups=groups)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(path, f"not a readable Parquet shard ({_one_line(exc)})") from exc


def iter_parquet_jets(
    path: str | Path, rows: int = 8192, skipped: Counter[str] | None = None
) -> Iterator[ConstituentChunk]:
    """Stream a shard directory (or a single shard file) as jet chunks (events: objects).

    Bad rows follow the skip policy of every reader
    (:func:`~colliderfm.data.readers.common.sanitize_jets`): jets (events) with a NaN/inf value
    or without particles (objects) are dropped and counted (``non_finite``, ``zero_particles``;
    events: ``zero_objects``); a warning per file gives the counts. Shards written by colliderfm
    are clean already; a foreign ``.parquet`` file may not be.

    Args:
        path: shard directory or ``.parquet`` file.
        rows: jets per chunk (before skipping).
        skipped: counter updated in place with the skipped rows.

    Returns:
        Iterator over non-empty :class:`ConstituentChunk` blocks.

    Raises:
        DataError: unreadable file, missing or mistyped columns (see :func:`check_schema`).
    """
    path = Path(path)
    files, what = (shard_paths(path), "shard") if path.is_dir() else ([path], "file")
    for f in files:
        kind = check_schema(read_schema(f, what), f)
        total: Counter[str] = Counter()
        try:
            for rb in iter_shard(f, rows=rows):
                chunk = sanitize_jets(table_to_chunk(rb, f), total, skipped, empty=EMPTY_KEY[kind])
                if len(chunk):
                    yield chunk
        finally:
            if sum(total.values()):
                log.warning(
                    "%s: skipped %s",
                    f,
                    ", ".join(f"{v} {kind} ({k})" for k, v in sorted(total.items())),
                )


def _event_rows(
    path: Path,
    chunk_size: int,
    skipped: Counter[str],
    unlabel: bool,
    classes: tuple[str, ...] = EVENT_CLASSES,
) -> Iterator[tuple[pa.Table, int]]:
    """Event shards (or an event ``.parquet``) as tables of their good rows, copied as stored
    (labels checked against ``classes``, the inputs' class names)."""
    for f in shard_paths(path) if path.is_dir() else [path]:
        check_schema(read_schema(f), f)
        for rb in iter_shard(f, rows=chunk_size):
            # the skip policy, row for row: the stored values are copied, not recomputed
            keep = good_jets(table_to_chunk(rb, f), skipped, empty=EMPTY_KEY["events"])
            table = pa.Table.from_batches([rb])
            if not keep.all():
                table = table.filter(pa.array(keep))
            label = table.column("label").to_numpy()
            bad = (label < -1) | (label >= len(classes))
            if not unlabel and bad.any():
                values = ", ".join(map(str, np.unique(label[bad])[:5].tolist()))
                raise DataError(
                    f,
                    f"{int(bad.sum())} events have labels outside the classes "
                    f"{list(classes)} (e.g. {values}); pass --unlabel to drop the labels",
                )
            if unlabel:
                col = table.schema.get_field_index("label")
                kind = table.schema.field(col).type
                hidden = pa.array(np.full(table.num_rows, -1, np.int64), kind)
                table = table.set_column(col, "label", hidden)
            yield table, table.num_rows


@register
class ParquetReader(Reader):
    """Canonical data: a shard directory (with its manifest) or a lone ``.parquet`` file."""

    name = "parquet"
    canonical = True

    def detect(self, path: Path) -> bool:
        """A directory, or a file starting with the Parquet magic bytes (see
        :meth:`Reader.detect`)."""
        return path.is_dir() or file_head(path).startswith(PARQUET_MAGIC)

    def kind(self, path: Path) -> str:
        """``"events"`` for event shards (manifest ``kind``, or ``obj_*`` columns), else jets.

        Args:
            path: shard directory or ``.parquet`` file.

        Returns:
            ``"jets"`` or ``"events"``.
        """
        if path.is_dir():
            events = read_manifest(path).get("kind") == "events"
        else:
            events = is_event_table(read_schema(path).names)
        return "events" if events else "jets"

    def classes(self, path: Path) -> list[str]:
        """The manifest's classes (a lone ``.parquet`` without a manifest beside it: none).

        Args:
            path: shard directory or ``.parquet`` file.

        Returns:
            Class names.
        """
        if not path.is_dir() and not (path.parent / MANIFEST).is_file():
            return []  # a lone .parquet file: class names unknown
        return list(read_manifest(path if path.is_dir() else path.parent).get("classes", []))

    def count(self, path: Path) -> int | None:
        """Rows from the manifest (directories) or the Parquet footer (files).

        Args:
            path: shard directory or ``.parquet`` file.

        Returns:
            The row count.
        """
        if path.is_dir():
            return int(read_manifest(path)["n"])
        return int(open_parquet(path).metadata.num_rows)

    def iter_chunks(
        self, path: Path, chunk_size: int = 8192, skipped: Counter[str] | None = None
    ) -> Iterator[ConstituentChunk]:
        """:func:`iter_parquet_jets` (see :meth:`Reader.iter_chunks`)."""
        return iter_parquet_jets(path, rows=chunk_size, skipped=skipped)

    def units(self, path: Path) -> list[Unit]:
        """One unit per row group; every file's columns are checked up front.

        A shard directory is verified first (row counts, and sha256 on the first read of the
        unchanged directory, see :meth:`verify`): streams are built before training starts, so
        the training loop itself never hashes.

        Args:
            path: shard directory or ``.parquet`` file.

        Returns:
            Work units.
        """
        if path.is_dir():
            self.verify(path)
        files, what = (shard_paths(path), "shard") if path.is_dir() else ([path], "file")
        units: list[Unit] = []
        for f in files:
            pf = open_parquet(f, what)
            check_schema(pf.schema_arrow, f)  # one line naming a missing/mistyped column
            for rg in range(pf.num_row_groups):

                def unit(f: Path = f, rg: int = rg) -> Iterator[ConstituentChunk]:
                    for rb in iter_shard(f, rows=1 << 20, row_groups=[rg]):
                        yield table_to_chunk(rb, f)

                units.append(unit)
        return units

    def labels(self, path: Path) -> np.ndarray:
        """Labels; shard directories (cleaned when written) read only their label column.

        Args:
            path: shard directory or ``.parquet`` file.

        Returns:
            ``[N]`` int64 labels.
        """
        if not path.is_dir():  # read as cleaned chunks, so labels line up with the rows read
            return super().labels(path)
        self.verify(path)
        parts = []
        for f in shard_paths(path):
            col = open_parquet(f, "shard").read(columns=["label"]).column("label")
            _no_nulls(col, "label", f)
            parts.append(col.to_numpy())
        return np.concatenate(parts).astype(np.int64)

    def schema(self, path: Path) -> dict[str, Any]:
        """Column names and Arrow types of the (first) file.

        Args:
            path: shard directory or ``.parquet`` file.

        Returns:
            ``{column: type}``.
        """
        files = shard_paths(path) if path.is_dir() else [path]
        if not files:
            return {}
        return {f.name: str(f.type) for f in read_schema(files[0])}

    def no_particle_id(self, path: Path) -> str | None:
        """Shards converted from a format without particle ID (Top Tagging) store charge and
        type as 0; a lone file without the columns is warned about by :func:`check_schema`.

        Args:
            path: shard directory or ``.parquet`` file.

        Returns:
            The reason, or None.
        """
        if not path.is_dir():
            return None
        origin = read_manifest(path).get("source", {}).get("converted_from")
        if isinstance(origin, str) and origin in READERS and not READERS.get(origin).particle_id:
            return f"converted from {origin}, which has no particle ID"
        return None

    def verify(self, path: Path, force: bool = False) -> dict[str, Any] | None:
        """:func:`~colliderfm.data.shards.verify_shards` for a shard directory, None for a lone
        file (see :meth:`Reader.verify`)."""
        return verify_shards(path, force=force) if path.is_dir() else None

    def manifest(self, path: Path) -> dict[str, Any] | None:
        """The manifest of a shard directory, None for a lone file (:meth:`Reader.manifest`)."""
        return read_manifest(path) if path.is_dir() else None

    def event_inputs(
        self, paths: list[Path], chunk_size: int, options: Any, label: int, unlabel: bool
    ) -> EventInputs:
        """Re-shard event shards, rows copied as stored (labels hidden with ``unlabel``).

        Args:
            paths: event shard directories or ``.parquet`` files.
            chunk_size: rows read per step.
            options: unused (NanoAOD options).
            label: unused (the stored labels are kept or hidden).
            unlabel: hide the labels.

        Returns:
            The inputs' description for ``convert``.
        """
        if not all(self.kind(p) == "events" for p in paths):
            raise DataError(paths[0], "inputs mix event and jet shards; convert one kind at a time")
        classes = tuple(EVENT_CLASSES)
        if not unlabel:  # the labels are kept: every input must name the same classes
            named = {
                p: tuple((self.manifest(p) or {}).get("classes") or EVENT_CLASSES) for p in paths
            }
            classes = named[paths[0]]
            for p, c in named.items():
                if c != classes:
                    raise DataError(
                        p,
                        f"its classes {list(c)} differ from {list(classes)} of {paths[0]}; "
                        "convert inputs with the same classes, or pass --unlabel",
                    )
        return EventInputs(
            sizes=[None] * len(paths),
            source={"labels": "hidden (-1)" if unlabel else "kept"},
            tables=lambda p, skipped: _event_rows(p, chunk_size, skipped, unlabel, classes),
            classes=list(classes),
        )
