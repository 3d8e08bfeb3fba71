"""``colliderfm convert``: foreign jet files -> one canonical shard directory, streamed.

Every input goes through its reader chunk by chunk into one :class:`ShardWriter`, so memory is
bounded by ``chunk_size`` whatever the input size, and the output directory appears only when
everything succeeded (on any error nothing is left at ``out``, not even a temporary directory).
Jets skipped as bad (zero particles, NaN/inf) are counted in the manifest under ``skipped``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from colliderfm.data.readers.dispatch import count_jets, detect_format, iter_jet_chunks, jet_classes
from colliderfm.data.readers.parquet import ShardWriter, read_manifest
from colliderfm.errors import ColliderFMError, DataError

log = logging.getLogger(__name__)

#: Formats ``convert`` accepts (``parquet`` re-shards/merges canonical data).
CONVERTIBLE = ("jetclass", "toptagging", "parquet")


def _check_format(path: Path, fmt: str | None) -> str:
    """Detect an input's format and check it against the requested one."""
    if fmt == "nanoaod":
        raise ColliderFMError("nanoaod conversion is not supported yet")
    if fmt is not None and fmt not in CONVERTIBLE:
        raise ColliderFMError(f"unknown format '{fmt}' (expected jetclass, toptagging or parquet)")
    found = detect_format(path)
    if found == "nanoaod":
        raise ColliderFMError(f"{path}: nanoaod conversion is not supported yet")
    if fmt is None:
        return found
    # a ROOT file without an 'Events' tree is detected as jetclass; the reader names the tree
    if found != fmt:
        raise DataError(path, f"is a {found} input, not {fmt} (drop --format to detect it)")
    return fmt


def convert(
    inputs: list[str | Path],
    fmt: str | None,
    out: str | Path,
    chunk_size: int = 8192,
    jets_per_shard: int = 100_000,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Convert jet files (JetClass ROOT, Top Tagging HDF5) into one canonical shard directory.

    Args:
        inputs: input files, all of the same format and class list.
        fmt: ``"jetclass"``, ``"toptagging"``, or None to detect from the files
            (``"nanoaod"`` is not supported yet).
        out: output shard directory (must not exist or be empty unless ``overwrite``).
        chunk_size: jets read per step (bounds memory).
        jets_per_shard: jets per Parquet shard.
        overwrite: replace an existing output directory.
        progress: show a progress bar (jets) on stderr.

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
    classes = jet_classes(paths[0], fmt)
    for p in paths[1:]:
        other = jet_classes(p, fmt)
        if other != classes:
            raise DataError(p, f"classes {other} differ from {classes} of {paths[0]}")
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
    from tqdm import tqdm

    with (
        ShardWriter(
            out, "jets", classes, source, rows_per_shard=jets_per_shard, overwrite=overwrite
        ) as writer,
        tqdm(total=total, unit="jet", unit_scale=True, desc="convert", disable=not progress) as bar,
    ):
        seen_skipped = 0
        for p in paths:
            for chunk in iter_jet_chunks(p, fmt, chunk_size=chunk_size, skipped=writer.skipped):
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
