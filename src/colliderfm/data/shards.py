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
import json
import logging
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
from colliderfm.fileio import sha256_file, write_json
from colliderfm.version import __version__

log = logging.getLogger(__name__)

__all__ = [
    "MANIFEST",
    "ShardWriter",
    "read_manifest",
    "shard_paths",
    "check_distinct",
    "verify_shards",
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
            digest = sha256_file(self._path)
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
    rows = [s.get("n") for s in shards]
    if all(isinstance(r, int) and not isinstance(r, bool) for r in rows) and sum(rows) != n:
        raise DataError(mf, f"row count n={n} is not the sum of its shards' rows ({sum(rows)})")
    return manifest


def shard_paths(path: str | Path) -> list[Path]:
    """List the shard files of a directory (via its manifest), their row counts checked.

    Every shard's Parquet footer row count must equal its manifest entry's ``n``: a shard cut
    short or replaced is an error naming it. The footers are read once per process per file
    (cached on the file's identity, see :func:`_identity`), so this costs a ``stat`` per shard.

    Args:
        path: shard directory.

    Returns:
        Paths of the shards in manifest order.

    Raises:
        DataError: a missing or unreadable shard, or a row count that differs from the manifest.
    """
    manifest = read_manifest(path)
    files = [Path(path) / s["file"] for s in manifest["shards"]]
    for s, f in zip(manifest["shards"], files, strict=True):
        want = s.get("n")
        if not isinstance(want, int) or isinstance(want, bool):
            continue  # a foreign manifest without per-shard counts: nothing to compare
        have = _footer_rows(f)
        if have != want:
            raise DataError(
                f,
                f"holds {have} rows but the manifest says {want} (the shard was cut short or "
                "replaced; regenerate or re-copy the directory)",
            )
    return files


def check_distinct(paths: list[Path]) -> None:
    """Refuse inputs that hold the same data twice (``merge D D``, a copy of a directory, a
    file given twice): combining them would silently double those rows.

    Inputs are the same when they are the same file or directory (also through a symlink or
    hard link), when two shard directories with the same classes list a shard with the same
    sha256, or when two files of equal size have the same sha256. Missing inputs are left to
    the readers' own errors.

    Args:
        paths: the inputs of ``convert`` or ``merge``.

    Raises:
        DataError: an input repeats another, naming both.
    """
    seen: dict[tuple[int, int], Path] = {}
    sized: dict[int, list[Path]] = {}
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            raise DataError(p, f"is given twice (also as {seen[key]}): its rows would be doubled")
        seen[key] = p
        if p.is_file():
            sized.setdefault(st.st_size, []).append(p)
    digests: dict[tuple[Any, ...], Path] = {}
    for p in paths:
        if not (p.is_dir() and (p / MANIFEST).is_file()):
            continue
        manifest = read_manifest(p)
        meaning = (manifest.get("kind"), *manifest.get("classes", []))  # what a label means
        for s in manifest["shards"]:
            f = p / s["file"]
            if not isinstance(s.get("sha256"), str) or not s.get("n"):
                continue
            d = (*meaning, s["sha256"])
            if d in digests:
                raise DataError(
                    f, f"holds the same rows as {digests[d]} (same sha256): they would be doubled"
                )
            digests[d] = f
    for group in (g for g in sized.values() if len(g) > 1):
        by_digest: dict[str, Path] = {}
        for f in group:
            try:
                d = sha256_file(f)
            except OSError:
                continue
            if d in by_digest:
                raise DataError(
                    f, f"has the same contents as {by_digest[d]}: its rows would be doubled"
                )
            by_digest[d] = f


#: hidden file in a shard directory: the shards whose sha256 was verified, with their identity
VERIFIED = ".colliderfm-verified.json"
#: per-process caches keyed on a file's identity: footer row counts, verified sha256 digests
_ROWS: dict[tuple[Any, ...], int] = {}
_HASHED: dict[tuple[Any, ...], str] = {}


def _identity(path: Path) -> tuple[Any, ...]:
    """What identifies a file's contents without reading it: path, device, inode, size, mtime
    and ctime (in ns). A rewrite changes mtime and ctime (ctime cannot be set back), a copy
    changes the inode: either makes the file new to the caches."""
    st = path.stat()
    return (str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _footer_rows(path: Path) -> int:
    """Rows recorded in a Parquet file's footer (cached per process on its identity)."""
    try:
        key = _identity(path)
    except OSError as exc:
        raise DataError(path, f"cannot read shard ({exc.strerror or exc})") from exc
    if key not in _ROWS:
        try:
            _ROWS[key] = int(pq.read_metadata(path).num_rows)
        except (pa.ArrowException, OSError) as exc:
            why = " ".join(str(exc).split()) or type(exc).__name__
            raise DataError(path, f"not a readable Parquet shard ({why})") from exc
    return _ROWS[key]


def _marker_key(key: tuple[Any, ...]) -> list[Any]:
    return list(key[1:])  # the marker lives beside the shards: the path is implied


def verify_shards(path: str | Path, force: bool = False) -> dict[str, Any]:
    """Check a shard directory's row counts and every shard's sha256 against its manifest.

    Hashing reads every byte, so results are remembered: per process (``_HASHED``) and across
    processes in the hidden file :data:`VERIFIED` inside the directory, both keyed on each
    shard's identity (inode, size, mtime, ctime). A shard that was rewritten or copied is
    hashed again; an unchanged one is not. ``force`` ignores both (``inspect --verify``,
    ``convert``, ``merge``). The marker is written atomically and only where the directory is
    writable (a read-only directory is re-hashed by every new process).

    Args:
        path: shard directory.
        force: hash every shard even when it was verified before.

    Returns:
        ``{"shards": S, "hashed": H, "cached": C, "unchecked": U}``: shards in the manifest,
        hashed now, known good from a cache, and listed without a ``sha256`` (not checked).

    Raises:
        DataError: a shard whose row count or checksum differs from the manifest, one line
            ``<shard>: checksum mismatch ...``.
    """
    path = Path(path)
    manifest = read_manifest(path)
    files = shard_paths(path)  # row counts first: cheap, and a clearer message when cut short
    marker = {} if force else _read_marker(path)
    report = {"shards": len(files), "hashed": 0, "cached": 0, "unchecked": 0}
    seen: dict[str, list[Any]] = {}
    for s, f in zip(manifest["shards"], files, strict=True):
        want = s.get("sha256")
        if not isinstance(want, str):
            report["unchecked"] += 1
            continue
        key = _identity(f)
        entry = [want, *_marker_key(key)]
        if not force and (_HASHED.get(key) == want or marker.get(f.name) == entry):
            report["cached"] += 1
        else:
            try:
                got = sha256_file(f)
            except OSError as exc:
                raise DataError(f, f"cannot read shard ({exc.strerror or exc})") from exc
            if got != want:
                raise DataError(
                    f,
                    f"checksum mismatch (sha256 {got[:16]}..., the manifest says "
                    f"{want[:16]}...): the shard changed or was damaged after it was written; "
                    "regenerate or re-copy it",
                )
            report["hashed"] += 1
        _HASHED[key] = want
        seen[f.name] = entry
    if report["unchecked"]:
        log.warning(
            "%s: %d of %d shards have no sha256 in the manifest: not verified",
            path,
            report["unchecked"],
            len(files),
        )
    if report["hashed"] and seen != marker:
        _write_marker(path, seen)
    return report


def _read_marker(path: Path) -> dict[str, list[Any]]:
    """The verified shards recorded in :data:`VERIFIED` (empty when absent or unreadable)."""
    try:
        data = json.loads((path / VERIFIED).read_text())
    except (OSError, ValueError):
        return {}
    shards = data.get("shards") if isinstance(data, dict) else None
    return shards if isinstance(shards, dict) else {}


def _write_marker(path: Path, shards: dict[str, list[Any]]) -> None:
    """Record verified shards in :data:`VERIFIED`, atomically; best effort (read-only data)."""
    with contextlib.suppress(DataError, OSError):
        write_json({"version": 1, "shards": shards}, path / VERIFIED, indent=None)
