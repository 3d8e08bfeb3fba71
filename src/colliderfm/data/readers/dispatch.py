"""Format-agnostic entry points: detect an input's format and stream it as jet chunks.

The compatibility surface over the reader registry: each function looks the reader up with
:func:`~colliderfm.data.readers.base.reader_for` and asks it. New code can take the reader
object itself (``reader_for(path).count(path)``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from colliderfm.data.readers.base import (
    HDF5_MAGIC,
    PARQUET_MAGIC,
    READERS,
    ROOT_MAGIC,
    reader_for,
)
from colliderfm.data.schema import ConstituentChunk

__all__ = [
    "FORMATS",
    "HDF5_MAGIC",
    "PARQUET_MAGIC",
    "ROOT_MAGIC",
    "count_entries",
    "detect_format",
    "iter_chunks",
    "data_classes",
]

#: Registered format names.
FORMATS: tuple[str, ...] = tuple(READERS.names())


def detect_format(path: str | Path) -> str:
    """Guess the format of an input path from its magic bytes (and ROOT tree names).

    Args:
        path: shard directory, ``.parquet``, ROOT or HDF5 file.

    Returns:
        One of :data:`FORMATS`.
    """
    return reader_for(path).name


def data_classes(path: str | Path, fmt: str | None = None) -> list[str]:
    """Class names of a jet input (label ``i`` means ``classes[i]``).

    Args:
        path: input path.
        fmt: format, detected when None.

    Returns:
        Class names.
    """
    return reader_for(path, fmt).classes(Path(path))


def count_entries(path: str | Path, fmt: str | None = None) -> int | None:
    """Number of jets (rows/entries) in an input, from metadata only (no data is read).

    Args:
        path: shard directory / ``.parquet`` / JetClass ROOT / Top Tagging HDF5.
        fmt: format, detected when None.

    Returns:
        The count before bad jets are skipped, or None when the format does not record it.
    """
    return reader_for(path, fmt).count(Path(path))


def iter_chunks(
    path: str | Path,
    fmt: str | None = None,
    chunk_size: int = 8192,
    skipped: Counter[str] | None = None,
) -> Iterator[ConstituentChunk]:
    """Stream any readable jet input as :class:`ConstituentChunk` blocks with bounded memory.

    Event inputs (event shards, NanoAOD with the default selection, unlabelled) come as chunks
    whose particles are the reconstructed objects (``type_id`` = ObjectType).

    Args:
        path: shard directory / ``.parquet`` / JetClass ROOT / Top Tagging HDF5.
        fmt: format, detected when None.
        chunk_size: jets per chunk.
        skipped: counter updated with the jets skipped as bad (foreign formats; shards were
            cleaned when written).

    Returns:
        Iterator over chunks (bad jets already skipped per the documented policy).
    """
    yield from reader_for(path, fmt).iter_chunks(Path(path), chunk_size=chunk_size, skipped=skipped)
