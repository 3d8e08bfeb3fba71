"""Check and combine shard directories written by independent jobs (SLURM arrays, HTCondor).

Directories written with ``colliderfm generate ... --num-shards S --shard-index I`` carry
``num_shards``/``shard_index`` in their manifest: merging checks that every index ``0..S-1`` is
present exactly once and that all jobs used the same settings, then writes the shards in index
order (so the merged data equals a single run with ``jets_per_shard = n_total / S``). Other shard
directories with the same classes are concatenated in the order given.

Every input shard's row count and sha256 are checked against its manifest before anything is
written, and inputs that hold the same shards (``merge D D``, or ``D`` and a copy of it) are
refused: their rows would be doubled.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from colliderfm.data.readers.parquet import iter_shard
from colliderfm.data.shards import (
    ShardWriter,
    check_distinct,
    read_manifest,
    shard_paths,
    verify_shards,
)
from colliderfm.errors import DataError

#: manifest ``source`` keys that legitimately differ between the jobs of one data set
_PER_JOB = (
    "shard_index",
    "events_generated",
    "selection_efficiency",
    "cutflow",
    "truth_tag_selection_efficiency",
    "vetoed",
    "selected_per_cpu_s",
)


def _settings(source: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in source.items() if k not in _PER_JOB}


def merge_shards(
    inputs: list[str | Path], out: str | Path, overwrite: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Merge shard directories into one, checking batch-job completeness.

    Args:
        inputs: shard directories (any order).
        out: output directory (appears only when complete).
        overwrite: replace an existing output.
        progress: show a progress bar.

    Returns:
        The merged manifest.
    """
    if not inputs:
        raise DataError(out, "nothing to merge")
    paths = [Path(p) for p in inputs]
    manifests = [read_manifest(p) for p in paths]
    classes = manifests[0].get("classes", [])
    for p, m in zip(paths, manifests, strict=True):
        if m.get("classes", []) != classes:
            raise DataError(p, f"classes {m.get('classes')} differ from {paths[0]}'s {classes}")
    sources = [m.get("source", {}) for m in manifests]
    batch = ["num_shards" in s for s in sources]
    source: dict[str, Any] = {"merged_from": [str(p) for p in paths]}
    origins = {s.get("converted_from") for s in sources}
    if len(origins) == 1 and None not in origins:  # e.g. toptagging: no particle ID, kept known
        source["converted_from"] = origins.pop()
    if any(batch):
        if not all(batch):
            lone = paths[batch.index(False)]
            raise DataError(lone, "was not written with --num-shards/--shard-index")
        total = {s["num_shards"] for s in sources}
        if len(total) != 1:
            raise DataError(out, f"inputs disagree on num_shards: {sorted(total)}")
        n_shards = total.pop()
        for p, s in zip(paths, sources, strict=True):
            if _settings(s) != _settings(sources[0]):
                diff = sorted(
                    k
                    for k in set(s) | set(sources[0])
                    if k not in _PER_JOB and s.get(k) != sources[0].get(k)
                )
                raise DataError(p, f"settings differ from {paths[0]}: {', '.join(diff)}")
        seen = Counter(s["shard_index"] for s in sources)
        missing = [i for i in range(n_shards) if i not in seen]
        dup = sorted(i for i, c in seen.items() if c > 1)
        if missing or dup:
            parts = []
            if missing:
                parts.append(f"missing shards {missing}")
            if dup:
                parts.append(f"duplicated shards {dup}")
            raise DataError(out, f"incomplete set of {n_shards} shards: {'; '.join(parts)}")
        order = sorted(range(len(paths)), key=lambda i: sources[i]["shard_index"])
        paths = [paths[i] for i in order]
        manifests = [manifests[i] for i in order]
        source.update({k: v for k, v in _settings(sources[0]).items() if k != "num_shards"})
        source["events_generated"] = dict(
            sum((Counter(s.get("events_generated", {})) for s in sources), Counter())
        )
        if any("vetoed" in s for s in sources):  # event jobs: vetoed per process, summed
            per_job = [s.get("vetoed", {}) for s in sources]
            keys = sorted({k for v in per_job for k in v})
            source["vetoed"] = {
                k: [sum(int(v.get(k, [0, 0])[i]) for v in per_job) for i in (0, 1)] for k in keys
            }
    check_distinct(paths)  # merge D D (or a copy of D) would double D's rows
    for p in paths:
        verify_shards(p, force=True)  # row counts and sha256 of every input shard
    rows = max(int(m["n"]) for m in manifests) or 1
    from tqdm.auto import tqdm

    with (
        ShardWriter(
            out,
            manifests[0].get("kind", "jets"),
            classes,
            source,
            rows_per_shard=rows,
            overwrite=overwrite,
        ) as writer,
        tqdm(
            total=sum(int(m["n"]) for m in manifests),
            unit="jet",
            desc="merge",
            disable=not progress,
        ) as bar,
    ):
        for p, m in zip(paths, manifests, strict=True):
            for f in shard_paths(p):  # rows copied as stored: exact for jets and events
                for rb in iter_shard(f, rows=8192):  # a corrupt shard is a DataError
                    writer.write(pa.Table.from_batches([rb]))
                    bar.update(rb.num_rows)
            for k, v in (m.get("skipped") or {}).items():
                writer.skipped[k] += int(v)
            writer._close_shard()  # one output shard per input directory
    return read_manifest(out)
