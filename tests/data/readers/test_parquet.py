"""Canonical shards: round trip through ShardWriter / iter_parquet_jets, and broken directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from colliderfm.data.readers.parquet import (
    MANIFEST,
    ShardWriter,
    iter_parquet_jets,
    read_manifest,
    shard_paths,
)
from colliderfm.data.schema import JetChunk
from colliderfm.errors import DataError

FIELDS = ("counts", "px", "py", "pz", "energy", "charge", "pid", "label")


def assert_same(got: JetChunk, exp: JetChunk) -> None:
    for k in FIELDS:
        np.testing.assert_array_equal(getattr(got, k), getattr(exp, k), err_msg=k)
    for k in exp.jet:
        np.testing.assert_array_equal(got.jet[k], exp.jet[k], err_msg=k)


def test_round_trip(small_shards) -> None:
    w = small_shards(n=250, rows_per_shard=100)
    assert [p.name for p in shard_paths(w.path)] == [f"part-0000{i}.parquet" for i in range(3)]
    chunks = list(iter_parquet_jets(w.path, rows=64))
    assert max(len(c) for c in chunks) <= 64
    assert_same(JetChunk.concat(chunks), w.jets)
    mf = read_manifest(w.path)
    assert mf["n"] == 250 and mf["kind"] == "jets" and mf["classes"] == ["QCD", "Tbqq"]
    assert sum(mf["counts"].values()) == 250


def test_single_shard_file(small_shards) -> None:
    w = small_shards(n=120, rows_per_shard=100)
    got = JetChunk.concat(list(iter_parquet_jets(w.path / "part-00001.parquet")))
    assert_same(got, w.jets.take(np.arange(100, 120)))


def test_writer_is_atomic_on_error(tmp_path: Path, small_shards) -> None:
    jets = small_shards(n=10).jets
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), ShardWriter(out, "jets", ["a"], {}) as w:
        w.write_chunk(jets)
        raise RuntimeError("boom")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["shards"]  # no temp dir left


def test_writer_refuses_non_empty_dir(small_shards) -> None:
    w = small_shards(n=10)
    with pytest.raises(DataError, match="not empty"):
        ShardWriter(w.path, "jets", ["a"], {})


def test_not_a_shard_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no manifest.json"):
        list(iter_parquet_jets(tmp_path))


def test_corrupt_manifest(small_shards) -> None:
    w = small_shards(n=10)
    (w.path / MANIFEST).write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_manifest(w.path)


def test_newer_schema_version(small_shards) -> None:
    w = small_shards(n=10)
    mf = json.loads((w.path / MANIFEST).read_text())
    mf["schema_version"] = 999
    (w.path / MANIFEST).write_text(json.dumps(mf))
    with pytest.raises(DataError, match="schema_version 999"):
        read_manifest(w.path)


def test_missing_shard(small_shards) -> None:
    w = small_shards(n=150, rows_per_shard=100)
    (w.path / "part-00001.parquet").unlink()
    with pytest.raises(DataError, match="part-00001.parquet: shard listed in manifest is missing"):
        list(iter_parquet_jets(w.path))


def test_corrupt_shard(small_shards) -> None:
    w = small_shards(n=50)
    shard = w.path / "part-00000.parquet"
    shard.write_bytes(b"PAR1" + b"\0" * 100)
    with pytest.raises(DataError, match="not a readable Parquet shard") as info:
        list(iter_parquet_jets(w.path))
    assert str(shard) in str(info.value)


def test_missing_column(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "x.parquet"
    pq.write_table(pa.table({"part_px": pa.array([[1.0]]), "label": pa.array([0])}), p)
    with pytest.raises(DataError, match="missing column.*part_py"):
        list(iter_parquet_jets(p))
