"""Canonical shards: round trip through ShardWriter / iter_parquet_jets, and broken directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from colliderfm.data.readers.parquet import (
    MANIFEST,
    iter_parquet_jets,
    read_manifest,
    shard_paths,
)
from colliderfm.data.schema import ConstituentChunk
from colliderfm.data.shards import ShardWriter
from colliderfm.errors import DataError

FIELDS = ("counts", "px", "py", "pz", "energy", "charge", "type_id", "label")


def assert_same(got: ConstituentChunk, exp: ConstituentChunk) -> None:
    for k in FIELDS:
        np.testing.assert_array_equal(getattr(got, k), getattr(exp, k), err_msg=k)
    for k in exp.jet:
        np.testing.assert_array_equal(got.jet[k], exp.jet[k], err_msg=k)


def test_round_trip(small_shards) -> None:
    w = small_shards(n=250, rows_per_shard=100)
    assert [p.name for p in shard_paths(w.path)] == [f"part-0000{i}.parquet" for i in range(3)]
    chunks = list(iter_parquet_jets(w.path, rows=64))
    assert max(len(c) for c in chunks) <= 64
    assert_same(ConstituentChunk.concat(chunks), w.jets)
    mf = read_manifest(w.path)
    assert mf["n"] == 250 and mf["kind"] == "jets" and mf["classes"] == ["QCD", "Tbqq"]
    assert sum(mf["counts"].values()) == 250


def test_single_shard_file(small_shards) -> None:
    w = small_shards(n=120, rows_per_shard=100)
    got = ConstituentChunk.concat(list(iter_parquet_jets(w.path / "part-00001.parquet")))
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


# ---- foreign / broken .parquet files: one DataError naming the file, the skip policy ----


def _write(path: Path, cols: dict) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(cols), path)
    return path


def test_open_parquet_errors_name_the_file(small_shards, tmp_path: Path) -> None:
    from colliderfm.data.readers.parquet import open_parquet, read_schema

    (tmp_path / "e.parquet").write_bytes(b"")
    with pytest.raises(DataError, match=r"e\.parquet: file is empty"):
        open_parquet(tmp_path / "e.parquet")
    with pytest.raises(DataError, match=r"nope\.parquet: no such file"):
        read_schema(tmp_path / "nope.parquet")
    shard = small_shards(n=50, rows_per_shard=50).path / "part-00000.parquet"
    shard.write_bytes(shard.read_bytes()[:300])
    with pytest.raises(DataError, match=r"part-00000\.parquet: not a readable Parquet file") as e:
        read_schema(shard)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("cols", "problem"),
    [
        (
            {"part_px": [1.0], "part_py": [1.0], "part_pz": [1.0], "part_energy": [1.0]},
            "not a list",
        ),
        (
            {k: [["a"]] for k in ("part_px", "part_py", "part_pz", "part_energy")},
            "column part_px is not numeric",
        ),
        (
            {
                "part_px": [[1.0, 2.0]],
                "part_py": [[1.0]],
                "part_pz": [[1.0]],
                "part_energy": [[1.0]],
            },
            "part_py has other lengths",
        ),
        ({"obj_pt": [[1.0]], "obj_eta": [[0.0]]}, "missing column(s) obj_phi"),
    ],
)
def test_bad_columns_are_one_line_errors(tmp_path: Path, cols: dict, problem: str) -> None:
    src = _write(tmp_path / "bad.parquet", {**cols, "label": [0] * len(next(iter(cols.values())))})
    with pytest.raises(DataError) as e:
        list(iter_parquet_jets(src))
    assert str(e.value).startswith(str(src)) and problem in str(e.value)


def test_missing_charge_and_pid_are_unknown(tmp_path: Path, caplog) -> None:
    cols = {k: [[1.0, 2.0], [3.0]] for k in ("part_px", "part_py", "part_pz", "part_energy")}
    src = _write(
        tmp_path / "fourvec.parquet", {**cols, "part_pid": [[22, 211], [130]]} | {"label": [0, 1]}
    )
    with caplog.at_level("WARNING", logger="colliderfm"):
        (chunk,) = list(iter_parquet_jets(src))
    assert chunk.charge.tolist() == [0, 0, 0] and chunk.charge.dtype == np.int8
    assert chunk.type_id.tolist() == [22, 211, 130]
    assert "no part_charge column(s): read as 0 (unknown)" in caplog.text


def test_foreign_parquet_bad_jets_are_skipped_and_counted(tmp_path: Path) -> None:
    from collections import Counter

    nan, inf = float("nan"), float("inf")
    cols = {
        "part_px": [[1.0, nan], [2.0], [], [3.0]],
        "part_py": [[1.0, 1.0], [2.0], [], [inf]],
        "part_pz": [[1.0, 1.0], [2.0], [], [3.0]],
        "part_energy": [[3.0, 3.0], [4.0], [], [5.0]],
        "part_charge": [[0, 0], [1], [], [0]],
        "part_pid": [[22, 22], [211], [], [22]],
        "jet_pt": [1.0, 2.0, 3.0, 4.0],
        "label": [0, 1, 0, 1],
    }
    src = _write(tmp_path / "dirty.parquet", cols)
    skipped: Counter[str] = Counter()
    chunks = list(iter_parquet_jets(src, skipped=skipped))
    assert skipped == {"non_finite": 2, "zero_particles": 1}
    assert [len(c) for c in chunks] == [1] and chunks[0].px.tolist() == [2.0]
    cols["jet_pt"] = [1.0, nan, 3.0, 4.0]  # a NaN jet scalar counts too
    skipped.clear()
    list(iter_parquet_jets(_write(tmp_path / "dirty2.parquet", cols), skipped=skipped))
    assert skipped == {"non_finite": 3, "zero_particles": 1}


def test_event_parquet_bad_events_are_skipped_on_convert(tmp_path: Path) -> None:
    """Event rows: NaN/inf object kinematics or no objects -> skipped and counted; the kept rows
    are copied exactly (not recomputed from four-vectors)."""
    from colliderfm.data.convert import convert
    from colliderfm.data.readers.parquet import iter_shard

    nan = float("nan")
    cols = {
        "obj_pt": [[50.0, 30.0], [40.0, nan], [], [60.0, 20.0]],
        "obj_eta": [[0.1234567, 0.0], [1.0, 0.0], [], [-0.5, 0.0]],
        "obj_phi": [[0.5, -1.0], [0.2, 0.1], [], [3.0, 1.5]],
        "obj_energy": [[51.0, 30.0], [60.0, 10.0], [], [70.0, 20.0]],
        "obj_type": [[1, 5], [2, 5], [], [3, 5]],
        "label": [0, 1, 0, 1],
    }
    src = _write(tmp_path / "events.parquet", cols)
    mf = convert([src], None, tmp_path / "out", progress=False)
    assert mf["kind"] == "events" and mf["n"] == 2
    assert mf["skipped"] == {"non_finite": 1, "zero_objects": 1}
    (rb,) = list(iter_shard(tmp_path / "out" / "part-00000.parquet"))
    assert rb.column("obj_eta").to_pylist()[0][0] == np.float32(0.1234567)
    assert rb.column("label").to_pylist() == [0, 1]


def test_manifest_entries_are_checked(small_shards) -> None:
    w = small_shards(n=20, rows_per_shard=20)
    mf_path = w.path / MANIFEST
    good = json.loads(mf_path.read_text())
    for change, problem in (
        ({"shards": [{"n": 20}]}, "shards entry 0 has no valid 'file'"),
        ({"shards": [{"file": "../x.parquet"}]}, "shards entry 0 has no valid 'file'"),
        ({"shards": "part-00000.parquet"}, "'shards' is not a list"),
        ({"n": "20"}, "no valid row count 'n'"),
    ):
        mf_path.write_text(json.dumps({**good, **change}))
        with pytest.raises(DataError, match=problem) as e:
            read_manifest(w.path)
        assert str(mf_path) in str(e.value)


def test_shard_writer_cleans_up_when_closing_fails(tmp_path: Path, monkeypatch) -> None:
    import errno

    from synth import synthetic_jets

    import colliderfm.data.shards as parquet

    real = parquet._LazyWriter.close

    def close(self) -> None:
        real(self)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(parquet._LazyWriter, "close", close)
    out = tmp_path / "out"
    with (
        pytest.raises(DataError, match="out: cannot write shard: No space left"),
        ShardWriter(out, "jets", ["QCD", "Tbqq"], {}) as w,
    ):
        w.write_chunk(synthetic_jets(10, seed=0))
    assert sorted(p.name for p in tmp_path.iterdir()) == []
