"""The input-format registry: one :class:`Reader` object per format, looked up by name or content.

This module is the registry's leaf (like timm's ``_registry.py``): it imports no reader. Each
format module (``parquet``, ``jetclass``, ``toptagging``, ``nanoaod``) defines one
:class:`Reader` subclass and registers an instance with ``@register``; the package's
``__init__`` imports every format module, so whoever imports this module finds them all.
Callers ask :func:`reader_for` and then the reader, never compare format names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from colliderfm.config import path_problem
from colliderfm.data.schema import ConstituentChunk
from colliderfm.errors import DataError
from colliderfm.registry import Registry

#: A work unit of a stream: a callable returning the chunks of one independent piece of input.
Unit = Callable[[], Iterator[ConstituentChunk]]

ROOT_MAGIC = b"root"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
PARQUET_MAGIC = b"PAR1"


def file_head(path: Path, n: int = 8) -> bytes:
    """The first ``n`` bytes of a regular file (``b""`` for directories and missing paths).

    Args:
        path: any path.
        n: bytes to read.

    Returns:
        The bytes read.
    """
    if not path.is_file():
        return b""
    with open(path, "rb") as f:
        return f.read(n)


@dataclass
class EventInputs:
    """What ``convert`` needs from a reader of event inputs, prepared for a list of files.

    Attributes:
        sizes: events stored per input (the progress total), None where unknown.
        source: the format's entries for the manifest ``source``.
        tables: ``tables(path, skipped)`` streams one input as canonical event tables, each
            with the number of stored events it consumed (for the progress bar); rows skipped
            are counted in ``skipped``.
        finish: called with the writer's ``source`` after all inputs were read (adds what was
            learnt while reading, e.g. NanoAOD's cut-flow).
        classes: the class names of the labels the tables carry (None: the event classes,
            ``ttbar`` and ``h2hdm``).
    """

    sizes: list[int | None]
    source: dict[str, Any]
    tables: Callable[[Path, Counter[str]], Iterator[tuple[Any, int]]]
    finish: Callable[[dict[str, Any]], None] | None = None
    classes: list[str] | None = None


class Reader:
    """One input format: recognise a path, count it, name its classes, stream it as chunks.

    Subclasses set :attr:`name` and implement :meth:`detect`, :meth:`classes`, :meth:`count`,
    :meth:`iter_chunks` and :meth:`schema`; the other methods have defaults for foreign jet files.
    """

    #: format name (``--format``, the ``format`` of ``inspect``)
    name: ClassVar[str] = ""
    #: canonical colliderfm data (shards): its kind (jets/events) is in its metadata
    canonical: ClassVar[bool] = False
    #: a line ``inspect`` shows for this format (how it was read), or None
    note: ClassVar[str | None] = None
    #: the format stores labels and a size known before reading (False for NanoAOD: read
    #: unlabelled, with the event selection applied while reading), so it can train a classifier
    labelled: ClassVar[bool] = True
    #: the format records each particle's charge and type (False: Top Tagging, read as 0)
    particle_id: ClassVar[bool] = True

    def detect(self, path: Path) -> bool:
        """Whether ``path`` (an existing, non-empty file or a directory) is in this format.

        Args:
            path: the input.

        Returns:
            True when this reader reads it (magic bytes, ROOT tree names).
        """
        raise NotImplementedError

    def mismatch(self, path: Path) -> str | None:
        """Why ``path`` is not this format, when a more precise reason than its detected format
        exists (e.g. a ROOT file without the expected tree).

        Args:
            path: an input detected as another format.

        Returns:
            The reason, or None to say only which format it is.
        """
        return None

    def kind(self, path: Path) -> str:
        """What the input holds.

        Args:
            path: the input.

        Returns:
            ``"jets"`` or ``"events"``.
        """
        return "jets"

    def classes(self, path: Path) -> list[str]:
        """Class names (label ``i`` means ``classes[i]``; empty when unknown).

        Args:
            path: the input.

        Returns:
            Class names.
        """
        raise NotImplementedError

    def count(self, path: Path) -> int | None:
        """Rows (jets or events) stored, from metadata only (before bad rows are skipped).

        Args:
            path: the input.

        Returns:
            The count, or None when the format does not record it (or selects while reading).
        """
        raise NotImplementedError

    def iter_chunks(
        self, path: Path, chunk_size: int = 8192, skipped: Counter[str] | None = None
    ) -> Iterator[ConstituentChunk]:
        """Stream the input as chunks with bounded memory, bad rows skipped and counted.

        Args:
            path: the input.
            chunk_size: rows read per step.
            skipped: counter updated in place with the skipped rows, by reason.

        Returns:
            Iterator over chunks (events: the objects are the particles, ``type_id`` = ObjectType).
        """
        raise NotImplementedError

    def units(self, path: Path) -> list[Unit]:
        """Independent work units of a stream over the input (default: the whole file).

        Args:
            path: the input.

        Returns:
            Callables returning chunk iterators.
        """
        return [lambda: self.iter_chunks(path)]

    def labels(self, path: Path) -> np.ndarray:
        """All labels, in the order :meth:`iter_chunks` yields the rows (bad rows skipped).

        Args:
            path: the input.

        Returns:
            ``[N]`` int64 labels.
        """
        return np.concatenate([c.label for c in self.iter_chunks(path)]).astype(np.int64)

    def schema(self, path: Path) -> dict[str, Any]:
        """What ``inspect`` shows as the input's schema (columns, branches and their types).

        Args:
            path: the input.

        Returns:
            JSON-serialisable description.
        """
        raise NotImplementedError

    def no_particle_id(self, path: Path) -> str | None:
        """Why the input's particles have no charge and type (all read as 0, unknown), if so.

        Args:
            path: the input.

        Returns:
            The reason (for a warning), or None when charge and type are recorded.
        """
        return None if self.particle_id else f"{self.name} files have no particle ID"

    def verify(self, path: Path, force: bool = False) -> dict[str, Any] | None:
        """Check the input against the checksums it records (formats that keep them).

        Args:
            path: the input.
            force: check even what was verified before (see
                :func:`~colliderfm.data.shards.verify_shards`).

        Returns:
            What was checked, or None for formats without checksums (foreign files).
        """
        return None

    def manifest(self, path: Path) -> dict[str, Any] | None:
        """The input's manifest, for formats that keep one (shard directories).

        Args:
            path: the input.

        Returns:
            The manifest dict, or None.
        """
        return None

    def event_inputs(
        self, paths: list[Path], chunk_size: int, options: Any, label: int, unlabel: bool
    ) -> EventInputs:
        """Prepare event inputs of this format for ``convert`` (event formats only).

        Args:
            paths: the inputs (all of this format and kind ``"events"``).
            chunk_size: rows read per step.
            options: format options (NanoAOD: :class:`~colliderfm.data.readers.nanoaod.
                NanoAODOptions`, None for the defaults).
            label: label of every event (formats without labels of their own).
            unlabel: hide the stored labels (every label ``-1``).

        Returns:
            Sizes, manifest entries and the table stream.
        """
        raise DataError(paths[0], f"format '{self.name}' does not hold events")


READERS: Registry[Reader] = Registry("data format")


def register(cls: type[Reader]) -> type[Reader]:
    """Class decorator: register one instance of a :class:`Reader` subclass under its name.

    Args:
        cls: the reader class.

    Returns:
        ``cls`` unchanged.
    """
    READERS.register(cls.name)(cls())
    return cls


def reader_for(path: str | Path, fmt: str | None = None) -> Reader:
    """The reader of an input: the one named ``fmt``, or the one that recognises the file.

    Args:
        path: shard directory, ``.parquet``, ROOT or HDF5 file.
        fmt: format name; detected from the magic bytes (and ROOT tree names) when None.

    Returns:
        The reader.

    Raises:
        DataError: an unknown ``fmt``; a path that cannot be read, saying why (missing, a broken
            symbolic link or a link loop, a FIFO, socket or device, not readable, a directory
            that cannot be listed); an empty file; or an unrecognised format.
    """
    path = Path(path)
    if fmt is not None and fmt not in READERS:
        raise DataError(path, f"format '{fmt}' does not hold jets")
    problem = path_problem(path, directory_ok=True)
    if problem is not None:
        raise DataError(path, problem)
    if fmt is not None:
        return READERS.get(fmt)
    if not path.is_dir() and path.stat().st_size == 0:
        raise DataError(path, "file is empty")
    for _, reader in READERS.items():
        if reader.detect(path):
            return reader
    raise DataError(
        path, "unknown file format (expected a shard directory, .parquet, ROOT or HDF5 file)"
    )
