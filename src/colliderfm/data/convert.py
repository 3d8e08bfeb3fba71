"""``colliderfm convert``: foreign jet files -> one canonical shard directory, streamed.

Every input goes through its reader chunk by chunk into one :class:`ShardWriter`, so memory is
bounded by ``chunk_size`` whatever the input size, and the output directory appears only when
everything succeeded (on any error nothing is left at ``out``, not even a temporary directory).
Jets skipped as bad (zero particles, NaN/inf) are counted in the manifest under ``skipped``.

Nothing that changes the result passes silently. Shard-directory inputs are verified first (row
counts and every shard's sha256 against the manifest); an input given twice (or a copy of one)
is refused, since its rows would be doubled; a label outside its input's classes is an error.
A lone ``.parquet`` file has no manifest naming its classes: its labels are kept as stored
(class indices), the output lists no class names, and a warning says so (``--unlabel`` drops
them instead); mixing such a labelled file with inputs that name their classes is an error.

CMS NanoAOD files become *event* shards (manifest ``kind: "events"``): objects and selection as
in :mod:`colliderfm.data.readers.nanoaod` (configurable with :class:`NanoAODOptions`); events
failing the selection or holding NaN/inf are counted under ``skipped`` and in the ``cutflow``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from colliderfm.data.readers.base import READERS, Reader, reader_for
from colliderfm.data.readers.nanoaod import NanoAODOptions
from colliderfm.data.readers.parquet import read_manifest
from colliderfm.data.schema import EVENT_CLASSES
from colliderfm.data.shards import ShardWriter, check_distinct
from colliderfm.errors import ColliderFMError, DataError

log = logging.getLogger(__name__)

#: Formats ``convert`` accepts (``parquet`` re-shards/merges canonical data).
CONVERTIBLE: tuple[str, ...] = tuple(READERS.names())


def _check_format(path: Path, fmt: str | None) -> Reader:
    """Detect an input's format and check it against the requested one."""
    if fmt is not None and fmt not in READERS:
        raise ColliderFMError(
            f"unknown format '{fmt}' (expected jetclass, toptagging, nanoaod or parquet)"
        )
    found = reader_for(path)
    if fmt is None or found.name == fmt:
        return found
    # e.g. a ROOT file without an 'Events' tree is detected as jetclass; NanoAOD names the trees
    why = READERS.get(fmt).mismatch(path)
    raise DataError(path, why or f"is a {found.name} input, not {fmt} (drop --format to detect it)")


def convert(
    inputs: list[str | Path],
    fmt: str | None,
    out: str | Path,
    chunk_size: int = 8192,
    jets_per_shard: int = 100_000,
    overwrite: bool = False,
    progress: bool = True,
    nanoaod: NanoAODOptions | None = None,
    label: int = -1,
    unlabel: bool = False,
) -> dict[str, Any]:
    """Convert jet files (JetClass ROOT, Top Tagging HDF5) or CMS NanoAOD into canonical shards.

    Args:
        inputs: input files, all of the same format and class list.
        fmt: ``"jetclass"``, ``"toptagging"``, ``"nanoaod"``, ``"parquet"``, or None to detect
            from the files.
        out: output shard directory (must not exist or be empty unless ``overwrite``).
        chunk_size: jets (NanoAOD: events) read per step (bounds memory).
        jets_per_shard: jets (events) per Parquet shard.
        overwrite: replace an existing output directory.
        progress: show a progress bar (jets/events) on stderr.
        nanoaod: NanoAOD object definitions and selection (b-tag working point, lepton and jet
            cuts, selection); defaults if None.
        label: NanoAOD only: label of every event (``-1`` = unlabelled data; 0/1 for simulated
            ttbar / h2hdm samples).
        unlabel: hide the labels (every label ``-1``), e.g. to build an unlabelled pretraining
            mix; jets get no class list, NanoAOD input is read as ``label=-1``. Without it,
            jet inputs with different class lists are merged
            under the union of their classes (in order of first appearance), labels remapped.

    Returns:
        The manifest of the written directory (``n``, ``counts``, ``skipped``, ``source``, ...).

    Raises:
        ColliderFMError: unsupported format.
        DataError: unreadable input, mixed formats or class lists, no jets left, or an unwritable
            output.
    """
    if not inputs:
        raise ColliderFMError("convert needs at least one input file")
    if chunk_size < 1 or jets_per_shard < 1:
        raise ColliderFMError("chunk_size and jets_per_shard must be >= 1")
    paths = [Path(p) for p in inputs]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(out, "output exists and is not a directory")
    readers = [_check_format(p, fmt) for p in paths]
    if len(set(readers)) > 1:
        mixed = ", ".join(f"{p.name}={r.name}" for p, r in zip(paths, readers, strict=True))
        raise DataError(
            paths[0], f"inputs have different formats ({mixed}); convert one format at a time"
        )
    reader = readers[0]
    check_distinct(paths)  # the same input twice would double its rows
    for p in paths:
        reader.verify(p, force=True)  # shard directories: row counts and sha256 of every shard
    if reader.kind(paths[0]) == "events":
        return _convert_events(
            paths,
            reader,
            out,
            chunk_size,
            jets_per_shard,
            overwrite,
            progress,
            nanoaod,
            -1 if unlabel else label,
            unlabel,
        )
    if (nanoaod is not None and nanoaod != NanoAODOptions()) or label != -1:
        raise ColliderFMError("NanoAOD options and --label apply to --format nanoaod only")
    classes: list[str] = []
    owns: list[list[str]] = []  # per input: its class names (none: a lone .parquet file)
    remaps: list[np.ndarray] = []  # per input: its label index -> output label index
    for p in paths:
        own = reader.classes(p)
        for c in own:
            if c not in classes:
                classes.append(c)
        owns.append(own)
        remaps.append(np.array([classes.index(c) for c in own], np.int64))
    if unlabel:
        classes = []
    sizes = [reader.count(p) for p in paths]
    total = None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)
    source = {
        "converted_from": reader.name,
        "inputs": [
            {
                "path": str(p.resolve()),
                "bytes": p.stat().st_size if p.is_file() else None,
                "jets": s,
            }
            for p, s in zip(paths, sizes, strict=True)
        ],
        "chunk_size": chunk_size,
    }
    if unlabel:
        source["labels"] = "hidden (-1)"
    from tqdm import tqdm

    with (
        ShardWriter(
            out, "jets", classes, source, rows_per_shard=jets_per_shard, overwrite=overwrite
        ) as writer,
        tqdm(total=total, unit="jet", unit_scale=True, desc="convert", disable=not progress) as bar,
    ):
        seen_skipped = 0
        for p, own, remap in zip(paths, owns, remaps, strict=True):
            for chunk in reader.iter_chunks(p, chunk_size=chunk_size, skipped=writer.skipped):
                chunk.label = (
                    np.full_like(chunk.label, -1)
                    if unlabel
                    else _output_labels(p, chunk.label, own, remap, bool(classes))
                )
                writer.write_chunk(chunk)
                n_skipped = sum(writer.skipped.values())
                bar.update(len(chunk) + n_skipped - seen_skipped)  # the total counts bad jets too
                seen_skipped = n_skipped
        if not sum(writer.counts.values()):
            raise DataError(
                paths[0] if len(paths) == 1 else out,
                "no jets to write (every jet was skipped or the input is empty; "
                f"skipped: {dict(writer.skipped) or 'none'})",
            )
        kept = sorted(k for k in writer.counts if k >= 0)
        if not classes and kept:  # lone .parquet inputs: labels kept, their names unknown
            writer.source["labels"] = "kept as stored (no class names: the inputs have no manifest)"
            log.warning(
                "convert: %s: no manifest names the classes, so the labels are kept as stored "
                "(class indices %s) and the output lists no class names; "
                "pass --unlabel to drop them",
                ", ".join(p.name for p in paths),
                ", ".join(map(str, kept)),
            )
    manifest = read_manifest(out)
    if sum(manifest["skipped"].values()):
        log.warning("convert: skipped %s", manifest["skipped"])
    return manifest


def _output_labels(
    path: Path, label: np.ndarray, own: list[str], remap: np.ndarray, named: bool
) -> np.ndarray:
    """One input's labels as output labels: remapped onto the union of the inputs' classes.

    Nothing is dropped quietly: a label outside the input's own classes, or a labelled input
    without class names (a lone ``.parquet`` file) mixed with inputs that name theirs, is an
    error; an input without class names among others like it keeps its labels as stored.

    Args:
        path: the input (for messages).
        label: ``[N]`` labels as read (``-1`` = unlabelled).
        own: the input's class names (empty: unknown).
        remap: ``[len(own)]`` input class index -> output class index.
        named: whether the output has class names (some input named its classes).

    Returns:
        ``[N]`` output labels.

    Raises:
        DataError: labels that cannot be kept as they are meant.
    """
    hint = "pass --unlabel to drop the labels of every input"
    if not own:
        if named and (label >= 0).any():
            raise DataError(
                path,
                "has labels but no manifest naming its classes, unlike the other inputs: "
                f"convert it on its own, or {hint}",
            )
        bad = label < -1
    else:
        bad = (label < -1) | (label >= len(own))
    if bad.any():
        values = ", ".join(map(str, np.unique(label[bad])[:5].tolist()))
        where = f"its {len(own)} classes {own}" if own else "the class indices (>= 0, or -1)"
        raise DataError(
            path, f"{int(bad.sum())} jets have labels outside {where} (e.g. {values}); {hint}"
        )
    if not own:
        return label
    return np.where(label >= 0, remap[np.clip(label, 0, None)], -1)


def _convert_events(
    paths: list[Path],
    reader: Reader,
    out: Path,
    chunk_size: int,
    per_shard: int,
    overwrite: bool,
    progress: bool,
    options: NanoAODOptions | None,
    label: int,
    unlabel: bool = False,
) -> dict[str, Any]:
    """Convert NanoAOD files (or re-shard event shards, labels hidden with ``unlabel``) into one
    event shard directory."""
    if not -1 <= label < len(EVENT_CLASSES):
        raise ColliderFMError(f"--label must be -1 (unlabelled) or a class index 0-1 (got {label})")
    inputs = reader.event_inputs(paths, chunk_size, options, label, unlabel)
    source: dict[str, Any] = {
        "converted_from": reader.name,
        "chunk_size": chunk_size,
        **inputs.source,
    }
    sizes = inputs.sizes
    source["inputs"] = [
        {"path": str(p.resolve()), "bytes": p.stat().st_size if p.is_file() else None, "events": s}
        for p, s in zip(paths, sizes, strict=True)
    ]
    total = None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)
    from tqdm import tqdm

    with (
        ShardWriter(
            out,
            "events",
            inputs.classes or list(EVENT_CLASSES),
            source,
            rows_per_shard=per_shard,
            overwrite=overwrite,
        ) as writer,
        tqdm(
            total=total, unit="event", unit_scale=True, desc="convert", disable=not progress
        ) as bar,
    ):
        for p in paths:
            for table, n_read in inputs.tables(p, writer.skipped):
                if table.num_rows:
                    writer.write(table)
                bar.update(n_read)
        if inputs.finish is not None:
            inputs.finish(writer.source)
        if not sum(writer.counts.values()):
            raise DataError(
                paths[0] if len(paths) == 1 else out,
                "no events to write (every event failed the selection or the input is empty; "
                f"skipped: {dict(writer.skipped) or 'none'})",
            )
    manifest = read_manifest(out)
    if manifest["skipped"].get("non_finite"):
        log.warning("convert: skipped %s", manifest["skipped"])
    return manifest
