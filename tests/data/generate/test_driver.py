"""The generators' shared driver: argument checks, shard/unit planning, running and writing.

A stand-in unit function (no Pythia) makes these tests instant; the real generators' byte-level
determinism is tested in test_jets.py and test_events.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from colliderfm.data.generate.driver import GenerationJob, round_robin
from colliderfm.data.generate.units import Unit
from colliderfm.data.shards import ShardWriter
from colliderfm.errors import ColliderFMError

KEYS = ["a", "b"]


def _job(out: Path | str = "unused", **kw: Any) -> GenerationJob:
    args: dict[str, Any] = {"n": 5, "seed": 3, "workers": 1, "rows_per_shard": 4}
    args.update(kw)
    return GenerationJob("jets", KEYS, ["a", "b", "c"], out=out, progress=False, **args)


def _seeds(seed: int, process: str, shard: int, chunk: int) -> tuple[tuple[int, ...], int]:
    return (seed, shard), 100 * shard + chunk


def _plan(job: GenerationJob, unit_rows: int = 1) -> list[Unit]:
    return job.plan(round_robin(KEYS, job.n), {"a": 0, "b": 1}, unit_rows, _seeds, None)


def _run_unit(
    unit: Unit, progress: Callable[[int], Any] | None = None
) -> tuple[int, pa.Table, tuple[int, int]]:
    """Rows numbered by (shard, chunk) so the shuffle and the order are visible."""
    values = np.arange(unit.n) + 1000 * unit.shard + 10 * unit.chunk + 100 * unit.label
    table = pa.table({"value": values, "label": np.full(unit.n, unit.label)})
    if progress is not None:  # inline: the bar's update; in a pool worker: the shared counter
        progress(unit.n)
    return unit.index, table, (2 * unit.n, unit.n)


def _write_shard(writer: ShardWriter, parts: list[pa.Table], rng: np.random.Generator) -> None:
    table = pa.concat_tables(parts)
    writer.write(table.take(pa.array(rng.permutation(table.num_rows))))


def _generate(job: GenerationJob) -> tuple[dict[str, Any], dict[str, list[int]]]:
    stats = {k: [0, 0] for k in KEYS}
    units = _plan(job, unit_rows=2)
    manifest = job.run(units, ["A", "B"], _run_unit, _write_shard, stats, lambda: {"x": 1})
    return manifest, stats


def test_round_robin_interleaves_the_processes() -> None:
    assert round_robin(["a", "b", "c"], 2).tolist() == ["a", "b", "c", "a", "b", "c"]


def test_units_cover_every_shard_balanced_with_derived_seeds() -> None:
    units = _plan(_job(), unit_rows=1)
    # 10 rows, 4 per shard -> shards of 4, 4, 2 rows, each half a and half b
    assert [(u.shard, u.process, u.chunk) for u in units[:4]] == [
        (0, "a", 0),
        (0, "a", 1),
        (0, "b", 0),
        (0, "b", 1),
    ]
    assert [u.index for u in units] == list(range(10))
    assert [sum(u.n for u in units if u.shard == s) for s in range(3)] == [4, 4, 2]
    assert all(u.pythia_seeds == (3, u.shard) for u in units)
    assert all(u.detector_seed == 100 * u.shard + u.chunk for u in units)
    assert {u.process: u.label for u in units} == {"a": 0, "b": 1}


def test_units_are_cut_at_unit_rows() -> None:
    units = _plan(_job(rows_per_shard=10), unit_rows=2)
    assert [(u.process, u.n) for u in units] == [("a", 2), ("a", 2), ("a", 1)] + [
        ("b", 2),
        ("b", 2),
        ("b", 1),
    ]


def test_batch_mode_derives_rows_per_shard_and_keeps_one_shard() -> None:
    job = _job(num_shards=3, shard_index=2)
    assert job.rows_per_shard == 4 and job.batch_mode  # ceil(5 * 2 / 3)
    units = _plan(job)
    assert [u.index for u in units] == [0, 1] and {u.shard for u in units} == {2}


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"num_shards": 2}, "--num-shards and --shard-index must be given together"),
        ({"num_shards": 2, "shard_index": 2}, "need 0 <= --shard-index < --num-shards"),
        ({"n": 0}, "--n must be >= 1 (got 0)"),
        ({"seed": -1}, "--seed must be >= 0 (got -1)"),
        ({"workers": 0}, "--workers must be >= 1 (got 0)"),
        ({"rows_per_shard": 0}, "--jets-per-shard must be >= 1 (got 0)"),
    ],
)
def test_arguments_are_checked(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ColliderFMError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _job(**kw)


def test_unknown_processes_are_named() -> None:
    with pytest.raises(ColliderFMError, match="unknown process 'z'; valid processes: a, b, c"):
        GenerationJob("jets", ["a", "z"], ["a", "b", "c"], 1, "o", 0, 1, 1)
    with pytest.raises(ColliderFMError, match="no process"):
        GenerationJob("jets", [], ["a"], 1, "o", 0, 1, 1)


def test_an_empty_batch_shard_is_an_error() -> None:
    # 2 rows cut into 4 shards of 1 row: shard 3 holds nothing
    job = _job(n=1, num_shards=4, shard_index=3)
    with pytest.raises(ColliderFMError, match="shard 3 is empty: 1 jets per process fill only 2"):
        _plan(job)


def _digest(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


def test_run_writes_shuffled_shards_in_order_for_any_workers(tmp_path: Path) -> None:
    m1, stats = _generate(_job(tmp_path / "w1"))
    m2, _ = _generate(_job(tmp_path / "w2", workers=2))
    assert _digest(tmp_path / "w1") == _digest(tmp_path / "w2")
    assert m1["n"] == 10 and m1["counts"] == {"A": 5, "B": 5} and m1["source"] == {"x": 1}
    assert [s["n"] for s in m1["shards"]] == [4, 4, 2]
    assert stats == {"a": [10, 5], "b": [10, 5]}  # unit statistics summed per process
    first = pq.read_table(tmp_path / "w1" / "part-00000.parquet")["value"].to_pylist()
    assert sorted(first) == [0, 1, 100, 101] and m2 == {**m1, "created_by": m2["created_by"]}


def test_batch_run_records_its_shard(tmp_path: Path) -> None:
    m, stats = _generate(_job(tmp_path / "b", num_shards=3, shard_index=1))
    assert m["n"] == 4 and len(m["shards"]) == 1
    assert m["source"] == {"x": 1, "num_shards": 3, "shard_index": 1}
    assert stats == {"a": [4, 2], "b": [4, 2]}


def test_an_existing_output_is_kept_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "o"
    _generate(_job(out))
    with pytest.raises(ColliderFMError, match="--overwrite"):
        _generate(_job(out))
    assert _generate(_job(out, overwrite=True))[0]["n"] == 10
