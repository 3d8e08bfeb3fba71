"""``colliderfm convert``: foreign jet files -> one canonical shard directory, streamed.

Every input goes through its reader chunk by chunk into one :class:`ShardWriter`, so memory is
bounded by ``chunk_size`` whatever the input size, and the output directory appears only when
everything succeeded (on any error nothing is left at ``out``, not even a temporary directory).
Jets skipped as bad (zero particles, NaN/inf) are counted in the manifest under ``skipped``.

CMS NanoAOD files become *event* shards (manifest ``kind: "events"``): objects and selection as
in :mod:`colliderfm.data.readers.nanoaod` (configurable with :class:`NanoAODOptions`); events
failing the selection or holding NaN/inf are counted under ``skipped`` and in the ``cutflow``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from colliderfm.data.readers.common import good_jets
from colliderfm.data.readers.dispatch import count_jets, detect_format, iter_jet_chunks, jet_classes
from colliderfm.data.readers.nanoaod import CUTFLOW, NanoAODOptions
from colliderfm.data.readers.parquet import (
    EMPTY_KEY,
    ShardWriter,
    check_schema,
    is_event_table,
    iter_parquet_jets,
    iter_shard,
    read_manifest,
    read_schema,
    table_to_chunk,
)
from colliderfm.data.schema import EVENT_CLASSES, JetChunk
from colliderfm.errors import ColliderFMError, DataError

log = logging.getLogger(__name__)

#: Formats ``convert`` accepts (``parquet`` re-shards/merges canonical data).
CONVERTIBLE = ("jetclass", "toptagging", "nanoaod", "parquet")


def _check_format(path: Path, fmt: str | None) -> str:
    """Detect an input's format and check it against the requested one."""
    if fmt is not None and fmt not in CONVERTIBLE:
        raise ColliderFMError(
            f"unknown format '{fmt}' (expected jetclass, toptagging, nanoaod or parquet)"
        )
    found = detect_format(path)
    if fmt is None:
        return found
    # a ROOT file without an 'Events' tree is detected as jetclass; the reader names the tree
    if fmt == "nanoaod" and found == "jetclass":
        from colliderfm.data.readers.rootfile import tree_names

        trees = ", ".join(tree_names(path)) or "none"
        raise DataError(path, f"no tree 'Events', not a NanoAOD file (trees present: {trees})")
    if found != fmt:
        raise DataError(path, f"is a {found} input, not {fmt} (drop --format to detect it)")
    return fmt


def _is_event_shards(path: Path) -> bool:
    """Whether a canonical input holds events (``obj_*`` columns) rather than jets."""
    if path.is_dir():
        return read_manifest(path).get("kind") == "events"
    return is_event_table(read_schema(path).names)


def _event_tables(
    path: Path, fmt: str, chunk_size: int, writer: ShardWriter, **kw: Any
) -> Iterator[pa.Table]:
    """Stream an event input (NanoAOD or event shards) as canonical event tables."""
    if fmt == "nanoaod":
        from colliderfm.data.readers.nanoaod import iter_events

        yield from iter_events(path, chunk_size=chunk_size, skipped=writer.skipped, **kw)
        return
    from colliderfm.data.readers.parquet import shard_paths

    for f in shard_paths(path) if path.is_dir() else [path]:
        check_schema(read_schema(f), f)
        for rb in iter_shard(f, rows=chunk_size):
            # the skip policy, row for row: the stored values are copied, not recomputed
            keep = good_jets(table_to_chunk(rb, f), writer.skipped, empty=EMPTY_KEY["events"])
            table = pa.Table.from_batches([rb])
            if not keep.all():
                table = table.filter(pa.array(keep))
            if kw.get("unlabel"):
                col = table.schema.get_field_index("label")
                kind = table.schema.field(col).type
                hidden = pa.array(np.full(table.num_rows, -1, np.int64), kind)
                table = table.set_column(col, "label", hidden)
            yield table


def _jet_chunks(path: Path, fmt: str, chunk_size: int, skipped: Counter[str]) -> Iterator[JetChunk]:
    """Stream a jet input, bad jets skipped and counted in ``skipped`` (Parquet input too)."""
    if fmt == "parquet":
        return iter_parquet_jets(path, rows=chunk_size, skipped=skipped)
    return iter_jet_chunks(path, fmt, chunk_size=chunk_size, skipped=skipped)


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
    formats = [_check_format(p, fmt) for p in paths]
    if len(set(formats)) > 1:
        mixed = ", ".join(f"{p.name}={f}" for p, f in zip(paths, formats, strict=True))
        raise DataError(
            paths[0], f"inputs have different formats ({mixed}); convert one format at a time"
        )
    fmt = formats[0]
    if fmt == "nanoaod" or (fmt == "parquet" and _is_event_shards(paths[0])):
        return _convert_events(
            paths,
            fmt,
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
    remaps: list[np.ndarray] = []  # per input: its label index -> output label index
    for p in paths:
        own = jet_classes(p, fmt)
        for c in own:
            if c not in classes:
                classes.append(c)
        remaps.append(np.array([-1 if unlabel else classes.index(c) for c in own], np.int64))
    if unlabel:
        classes = []
    sizes = [count_jets(p, fmt) for p in paths]
    total = None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)
    source = {
        "converted_from": fmt,
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
        for p, remap in zip(paths, remaps, strict=True):
            for chunk in _jet_chunks(p, fmt, chunk_size, writer.skipped):
                lab = chunk.label
                if len(remap) == 0:  # an unlabelled input
                    chunk.label = np.full_like(lab, -1)
                else:
                    ok = (lab >= 0) & (lab < len(remap))
                    chunk.label = np.where(ok, remap[np.clip(lab, 0, len(remap) - 1)], -1)
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
    manifest = read_manifest(out)
    if sum(manifest["skipped"].values()):
        log.warning("convert: skipped %s", manifest["skipped"])
    return manifest


def _convert_events(
    paths: list[Path],
    fmt: str,
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
    kw: dict[str, Any] = {}
    source: dict[str, Any] = {"converted_from": fmt, "chunk_size": chunk_size}
    if fmt == "nanoaod":
        options = options or NanoAODOptions()
        from colliderfm.data.readers.nanoaod import num_events

        sizes: list[int | None] = [num_events(p) for p in paths]
        source["nanoaod"] = options.to_dict()
        source["label"] = label
    else:
        if not all(_is_event_shards(p) for p in paths):
            raise DataError(paths[0], "inputs mix event and jet shards; convert one kind at a time")
        sizes = [None] * len(paths)
        kw = {"unlabel": unlabel}
        source["labels"] = "hidden (-1)" if unlabel else "kept"
    cutflow = np.zeros(len(CUTFLOW), dtype=np.int64)
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
            list(EVENT_CLASSES),
            source,
            rows_per_shard=per_shard,
            overwrite=overwrite,
        ) as writer,
        tqdm(
            total=total, unit="event", unit_scale=True, desc="convert", disable=not progress
        ) as bar,
    ):
        for p in paths:
            if fmt == "nanoaod":
                kw = {"options": options, "label": label, "cutflow": cutflow}
            before = int(cutflow[0])
            for table in _event_tables(p, fmt, chunk_size, writer, **kw):
                if table.num_rows:
                    writer.write(table)
                bar.update(int(cutflow[0]) - before if fmt == "nanoaod" else table.num_rows)
                before = int(cutflow[0])
        if fmt == "nanoaod":
            writer.source["cutflow"] = dict(zip(CUTFLOW, cutflow.tolist(), strict=True))
            writer.source["selection_efficiency"] = round(
                float(cutflow[-1]) / max(int(cutflow[0]), 1), 6
            )
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
