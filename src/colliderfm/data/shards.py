"""The canonical on-disk format: Parquet shards plus ``manifest.json``, written atomically.

Shards go into a hidden temporary directory next to the target, which is renamed into place only
after the manifest is written: a crash never leaves a directory that looks complete, and on any
error the temporary directory is removed (``OSError`` becomes a one-line
:class:`~colliderfm.errors.DataError`).

Two row layouts share the writer and the manifest: jets (``part_*`` list columns, ``jet_*``
scalars; :func:`chunk_to_table`) and events (``obj_*`` list columns, manifest
``kind: "events"``; :func:`events_table`, :func:`chunk_to_events_table`). Reading them back is
:mod:`colliderfm.data.readers.parquet`; the manifest is read and checked here
(:func:`read_manifest`, :func:`shard_paths`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from colliderfm.data.schema import (
    EVENT_COLUMNS,
    JET_SCALARS,
    MANIFEST,
    ROW_GROUP,
    SCHEMA_VERSION,
    ConstituentChunk,
)
from colliderfm.errors import DataError
from colliderfm.version import __version__

__all__ = [
    "MANIFEST",
    "ShardWriter",
    "read_manifest",
    "shard_paths",
    "chunk_to_events_table",
    "chunk_to_table",
    "events_table",
]


def chunk_to_table(chunk: ConstituentChunk) -> pa.Table:
    """Convert a jet chunk to an Arrow table in the canonical column layout.

    Args:
        chunk: jets to convert.

    Returns:
        Table with list columns ``part_*`` and scalar ``jet_*``, ``label``.
    """
    offsets = pa.array(chunk.offsets.astype(np.int32))

    def lst(a: np.ndarray) -> pa.Array:
        return pa.ListArray.from_arrays(offsets, pa.array(a))

    cols: dict[str, pa.Array] = {
        "part_px": lst(chunk.px.astype(np.float32)),
        "part_py": lst(chunk.py.astype(np.float32)),
        "part_pz": lst(chunk.pz.astype(np.float32)),
        "part_energy": lst(chunk.energy.astype(np.float32)),
        "part_charge": lst(chunk.charge.astype(np.int8)),
        "part_pid": lst(chunk.type_id.astype(np.int32)),
    }
    for k in JET_SCALARS:
        if k in chunk.jet:
            cols[k] = pa.array(chunk.jet[k].astype(np.float32))
    cols["label"] = pa.array(chunk.label.astype(np.int64))
    return pa.table(cols)


def events_table(
    counts: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    energy: np.ndarray,
    obj_type: np.ndarray,
    label: np.ndarray,
) -> pa.Table:
    """Build an Arrow table in the canonical event layout from flat object arrays.

    Args:
        counts: ``[N]`` objects per event.
        pt, eta, phi, energy: ``[sum(counts)]`` object kinematics (GeV, rad); stored as float32.
        obj_type: ``[sum(counts)]`` :class:`~colliderfm.data.schema.ObjectType` values (int8).
        label: ``[N]`` class index (``-1`` = unlabelled).

    Returns:
        Table with list columns ``obj_pt, obj_eta, obj_phi, obj_energy, obj_type`` and ``label``.
    """
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    off = pa.array(offsets)
    values = (pt, eta, phi, energy, obj_type)
    dtypes = (np.float32, np.float32, np.float32, np.float32, np.int8)
    cols: dict[str, pa.Array] = {
        name: pa.ListArray.from_arrays(off, pa.array(np.asarray(v).astype(dt, copy=False)))
        for name, v, dt in zip(EVENT_COLUMNS, values, dtypes, strict=True)
    }
    cols["label"] = pa.array(np.asarray(label, dtype=np.int64))
    return pa.table(cols)


def chunk_to_events_table(chunk: ConstituentChunk) -> pa.Table:
    """Convert a chunk of events (objects as particles, ``type_id`` = ObjectType) back to a table.

    The inverse of :func:`table_to_chunk` for event tables, up to float32 rounding of
    ``pt, eta, phi`` (recomputed from px, py, pz); MET (``pz = 0``) keeps ``eta = 0``.

    Args:
        chunk: events as produced by :func:`~colliderfm.data.schema.objects_to_chunk`.

    Returns:
        Table in the canonical event layout.
    """
    px, py, pz = (a.astype(np.float64) for a in (chunk.px, chunk.py, chunk.pz))
    pt = np.hypot(px, py)
    return events_table(
        chunk.counts,
        pt,
        np.arcsinh(np.divide(pz, pt, out=np.zeros_like(pz), where=pt > 0)),
        np.arctan2(py, px),
        chunk.energy,
        chunk.type_id,
        chunk.label,
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ShardWriter:
    """Write tables into ``part-NNNNN.parquet`` shards and a manifest, atomically.

    Use as a context manager; the output directory appears only when the block exits cleanly.

    Args:
        out: target directory (must not exist, or be empty, unless ``overwrite``).
        kind: ``"jets"`` or ``"events"``.
        classes: class names; label ``i`` means ``classes[i]``.
        source: generator or conversion settings recorded in the manifest.
        rows_per_shard: rows before a new shard is started.
        overwrite: replace an existing directory.
    """

    def __init__(
        self,
        out: str | Path,
        kind: str,
        classes: list[str],
        source: dict[str, Any],
        rows_per_shard: int = 100_000,
        overwrite: bool = False,
    ) -> None:
        self.out = Path(out)
        if self.out.exists() and any(self.out.iterdir()) and not overwrite:
            raise DataError(self.out, "output directory exists and is not empty (use --overwrite)")
        parent = self.out.resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-", dir=parent))
        except OSError as exc:
            raise DataError(parent, f"cannot write output: {exc.strerror or exc}") from exc
        self.kind, self.classes, self.source = kind, list(classes), dict(source)
        self.overwrite = overwrite
        self.rows_per_shard = rows_per_shard
        self.shards: list[dict[str, Any]] = []
        self.counts: Counter[int] = Counter()
        self.skipped: Counter[str] = Counter()
        self._writer: pq.ParquetWriter | None = None
        self._rows_in_shard = 0
        self._path: Path | None = None

    def __enter__(self) -> ShardWriter:
        return self

    def write(self, table: pa.Table) -> None:
        """Append rows, splitting across shards at ``rows_per_shard``.

        Args:
            table: rows in the canonical layout (must contain ``label``).
        """
        start = 0
        while start < table.num_rows:
            if self._writer is None:
                self._open()
            assert self._writer is not None
            take = min(table.num_rows - start, self.rows_per_shard - self._rows_in_shard)
            part = table.slice(start, take)
            try:
                self._writer.write_table(part, row_group_size=ROW_GROUP)
            except OSError as exc:
                raise DataError(self.out, f"cannot write shard: {exc.strerror or exc}") from exc
            labels, n = np.unique(part.column("label").to_numpy(), return_counts=True)
            self.counts.update(dict(zip(labels.tolist(), n.tolist(), strict=True)))
            self._rows_in_shard += take
            start += take
            if self._rows_in_shard >= self.rows_per_shard:
                self._close_shard()

    def write_chunk(self, chunk: ConstituentChunk) -> None:
        """Append a jet chunk (for ``kind="events"``: events read as objects, see
        :func:`chunk_to_events_table`).

        Args:
            chunk: jets (or events) to write.
        """
        if len(chunk):
            self.write(
                chunk_to_events_table(chunk) if self.kind == "events" else chunk_to_table(chunk)
            )

    def _open(self) -> None:
        self._path = self.tmp / f"part-{len(self.shards):05d}.parquet"
        self._rows_in_shard = 0
        self._writer = _LazyWriter(self._path)  # type: ignore[assignment]

    def _close_shard(self) -> None:
        if self._writer is None or self._path is None:
            return
        writer, self._writer = self._writer, None
        try:
            writer.close()
            digest = _sha256(self._path)
        except OSError as exc:
            raise DataError(self.out, f"cannot write shard: {exc.strerror or exc}") from exc
        self.shards.append({"file": self._path.name, "n": self._rows_in_shard, "sha256": digest})

    def _abort(self) -> None:
        """Drop the half-written output: close the open shard (errors ignored), remove tmp."""
        if self._writer is not None:
            with contextlib.suppress(Exception):  # e.g. the disk is still full
                self._writer.close()
            self._writer = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self._abort()
            return
        try:
            self._close_shard()
            self.finish()
        except BaseException:
            self._abort()  # nothing half-written stays next to the target
            raise

    def finish(self) -> None:
        """Write the manifest and move the directory into place."""
        names = self.classes
        counts = {
            (names[k] if 0 <= k < len(names) else ("unlabelled" if k == -1 else str(k))): int(v)
            for k, v in sorted(self.counts.items())
        }
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "kind": self.kind,
            "classes": names,
            "n": int(sum(self.counts.values())),
            "counts": counts,
            "skipped": dict(self.skipped),
            "shards": self.shards,
            "source": self.source,
            "created_by": f"colliderfm {__version__}",
        }
        try:
            with open(self.tmp / MANIFEST, "w") as f:
                json.dump(manifest, f, indent=2)
            if self.out.exists():
                if not self.overwrite and any(self.out.iterdir()):
                    raise DataError(self.out, "output directory appeared while writing")
                shutil.rmtree(self.out)
            os.replace(self.tmp, self.out)
        except OSError as exc:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise DataError(self.out, f"cannot finish output: {exc.strerror or exc}") from exc
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise


class _LazyWriter:
    """A ParquetWriter that takes its schema from the first table written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._w: pq.ParquetWriter | None = None

    def write_table(self, table: pa.Table, row_group_size: int) -> None:
        if self._w is None:
            self._w = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self._w.write_table(table, row_group_size=row_group_size)

    def close(self) -> None:
        if self._w is not None:
            self._w.close()


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read and check a shard directory's manifest.

    Args:
        path: shard directory.

    Returns:
        The manifest dict.
    """
    path = Path(path)
    mf = path / MANIFEST
    if not mf.is_file():
        raise DataError(path, f"not a colliderfm shard directory (no {MANIFEST})")
    try:
        manifest = json.loads(mf.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(mf, f"manifest is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or "shards" not in manifest:
        raise DataError(mf, "manifest has no 'shards' list")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise DataError(
            mf,
            f"schema_version {version!r} is not supported "
            f"(this colliderfm reads <= {SCHEMA_VERSION})",
        )
    shards = manifest["shards"]
    if not isinstance(shards, list):
        raise DataError(mf, "manifest 'shards' is not a list")
    for i, s in enumerate(shards):
        name = s.get("file") if isinstance(s, dict) else None
        if not isinstance(name, str) or not name or Path(name).name != name:
            raise DataError(mf, f"manifest shards entry {i} has no valid 'file' name ({s!r:.60})")
    n = manifest.get("n")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise DataError(mf, f"manifest has no valid row count 'n' ({n!r:.30})")
    for s in shards:
        if not (path / s["file"]).is_file():
            raise DataError(path / s["file"], "shard listed in manifest is missing")
    return manifest


def shard_paths(path: str | Path) -> list[Path]:
    """List the shard files of a directory (via its manifest).

    Args:
        path: shard directory.

    Returns:
        Paths of the shards in manifest order.
    """
    manifest = read_manifest(path)
    return [Path(path) / s["file"] for s in manifest["shards"]]
