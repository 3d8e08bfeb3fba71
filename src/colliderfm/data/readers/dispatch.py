"""Detect an input's format and stream it as jet chunks, whatever it is."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from colliderfm.data.schema import JetChunk
from colliderfm.errors import DataError

FORMATS = ("parquet", "jetclass", "toptagging", "nanoaod")
ROOT_MAGIC = b"root"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
PARQUET_MAGIC = b"PAR1"


def detect_format(path: str | Path) -> str:
    """Guess the format of an input path from its magic bytes (and ROOT tree names).

    Args:
        path: shard directory, ``.parquet``, ROOT or HDF5 file.

    Returns:
        One of :data:`FORMATS`.
    """
    path = Path(path)
    if path.is_dir():
        return "parquet"
    if not path.exists():
        raise DataError(path, "no such file or directory")
    if path.stat().st_size == 0:
        raise DataError(path, "file is empty")
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if head.startswith(HDF5_MAGIC):
        return "toptagging"
    if head.startswith(ROOT_MAGIC):
        from colliderfm.data.readers.rootfile import tree_names

        names = tree_names(path)
        if "Events" in names:
            return "nanoaod"
        return "jetclass"
    raise DataError(
        path, "unknown file format (expected a shard directory, .parquet, ROOT or HDF5 file)"
    )


def jet_classes(path: str | Path, fmt: str | None = None) -> list[str]:
    """Class names of a jet input (label ``i`` means ``classes[i]``).

    Args:
        path: input path.
        fmt: format, detected when None.

    Returns:
        Class names.
    """
    fmt = fmt or detect_format(path)
    if fmt == "parquet":
        from colliderfm.data.readers.parquet import MANIFEST, read_manifest

        p = Path(path)
        if not p.is_dir() and not (p.parent / MANIFEST).is_file():
            return []  # a lone .parquet file: class names unknown
        return list(read_manifest(p if p.is_dir() else p.parent).get("classes", []))
    if fmt == "jetclass":
        from colliderfm.data.readers.jetclass import CLASSES

        return list(CLASSES)
    if fmt == "toptagging":
        from colliderfm.data.readers.toptagging import CLASSES

        return list(CLASSES)
    if fmt == "nanoaod":
        from colliderfm.data.schema import EVENT_CLASSES

        return list(EVENT_CLASSES)  # events are read unlabelled (-1)
    raise DataError(path, f"format '{fmt}' does not hold jets")


def count_jets(path: str | Path, fmt: str | None = None) -> int | None:
    """Number of jets (rows/entries) in an input, from metadata only (no data is read).

    Args:
        path: shard directory / ``.parquet`` / JetClass ROOT / Top Tagging HDF5.
        fmt: format, detected when None.

    Returns:
        The count before bad jets are skipped, or None when the format does not record it.
    """
    fmt = fmt or detect_format(path)
    if fmt == "parquet":
        from colliderfm.data.readers.parquet import read_manifest

        p = Path(path)
        if p.is_dir():
            return int(read_manifest(p).get("n", 0))
        import pyarrow.parquet as pq

        try:
            return int(pq.ParquetFile(p).metadata.num_rows)
        except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for bad files
            raise DataError(p, f"not a readable Parquet file ({exc})") from exc
    if fmt == "jetclass":
        from colliderfm.data.readers.jetclass import num_jets

        return num_jets(path)
    if fmt == "toptagging":
        from colliderfm.data.readers.toptagging import num_jets as tt_num_jets

        return tt_num_jets(path)
    if fmt == "nanoaod":
        return None  # events are selected while reading: the count is known only afterwards
    raise DataError(path, f"format '{fmt}' does not hold jets")


def iter_jet_chunks(
    path: str | Path,
    fmt: str | None = None,
    chunk_size: int = 8192,
    skipped: Counter[str] | None = None,
) -> Iterator[JetChunk]:
    """Stream any readable jet input as :class:`JetChunk` blocks with bounded memory.

    Event inputs (event shards, NanoAOD with the default selection, unlabelled) come as chunks
    whose particles are the reconstructed objects (``pid`` = ObjectType).

    Args:
        path: shard directory / ``.parquet`` / JetClass ROOT / Top Tagging HDF5.
        fmt: format, detected when None.
        chunk_size: jets per chunk.
        skipped: counter updated with the jets skipped as bad (foreign formats; shards were
            cleaned when written).

    Returns:
        Iterator over chunks (bad jets already skipped per the documented policy).
    """
    fmt = fmt or detect_format(path)
    if fmt == "parquet":
        from colliderfm.data.readers.parquet import iter_parquet_jets

        yield from iter_parquet_jets(path, rows=chunk_size, skipped=skipped)
    elif fmt == "jetclass":
        from colliderfm.data.readers.jetclass import iter_jets

        yield from iter_jets(path, chunk_size=chunk_size, skipped=skipped)
    elif fmt == "toptagging":
        from colliderfm.data.readers.toptagging import iter_jets

        yield from iter_jets(path, chunk_size=chunk_size, skipped=skipped)
    elif fmt == "nanoaod":
        from colliderfm.data.readers.nanoaod import iter_event_chunks

        yield from iter_event_chunks(path, chunk_size=chunk_size, skipped=skipped)
    else:
        raise DataError(path, f"format '{fmt}' does not hold jets")
