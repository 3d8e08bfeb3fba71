from pathlib import Path

import numpy as np
import pytest

from colliderfm.data.generate import generate_jets
from colliderfm.data.merge import merge_shards
from colliderfm.data.readers.parquet import iter_parquet_jets
from colliderfm.data.schema import ConstituentChunk
from colliderfm.errors import ColliderFMError, DataError


def _jets(path: Path) -> ConstituentChunk:
    return ConstituentChunk.concat(list(iter_parquet_jets(path)))


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("batch")
    for i in range(3):
        generate_jets(
            ["top", "qcd"], 3, root / f"job{i}", seed=5, num_shards=3, shard_index=i, progress=False
        )
    generate_jets(["top", "qcd"], 3, root / "single", seed=5, jets_per_shard=2, progress=False)
    return root


def test_batch_jobs_merge_to_the_single_run(jobs: Path, tmp_path: Path) -> None:
    m = merge_shards([jobs / "job2", jobs / "job0", jobs / "job1"], tmp_path / "m", progress=False)
    assert m["n"] == 6 and len(m["shards"]) == 3 and "num_shards" not in m["source"]
    a, b = _jets(tmp_path / "m"), _jets(jobs / "single")
    assert np.array_equal(a.counts, b.counts) and np.array_equal(a.label, b.label)
    assert np.array_equal(a.px, b.px) and np.array_equal(a.type_id, b.type_id)


def test_missing_and_duplicated_shards_are_reported(jobs: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing shards \[1\]"):
        merge_shards([jobs / "job0", jobs / "job2"], tmp_path / "m", progress=False)
    with pytest.raises(DataError, match=r"duplicated shards \[0\]"):
        merge_shards(
            [jobs / "job0", jobs / "job0", jobs / "job1", jobs / "job2"],
            tmp_path / "m",
            progress=False,
        )
    with pytest.raises(DataError, match="not written with --num-shards"):
        merge_shards([jobs / "job0", jobs / "single"], tmp_path / "m", progress=False)
    assert not (tmp_path / "m").exists()


def test_shard_arguments_checked(tmp_path: Path) -> None:
    with pytest.raises(ColliderFMError, match="must be given together"):
        generate_jets(["top"], 2, tmp_path / "x", num_shards=2)
    with pytest.raises(ColliderFMError, match="shard-index"):
        generate_jets(["top"], 2, tmp_path / "x", num_shards=2, shard_index=2)


def test_event_batch_jobs_merge_exactly(tmp_path: Path) -> None:
    """Event shards from batch jobs (per-job cutflows differ) merge with the columns as stored."""
    import pyarrow.parquet as pq
    from synth_events import write_event_shards

    from colliderfm.data.readers.parquet import shard_paths
    from colliderfm.data.shards import ShardWriter

    write_event_shards(tmp_path / "src", n=40, rows_per_shard=20)
    tables = [pq.read_table(f) for f in shard_paths(tmp_path / "src")]
    for i, t in enumerate(tables):
        src = {"generator": "x", "num_shards": 2, "shard_index": i, "cutflow": {"ttbar": [i]}}
        with ShardWriter(tmp_path / f"job{i}", "events", ["ttbar", "h2hdm"], src) as w:
            w.write(t)
    m = merge_shards([tmp_path / "job1", tmp_path / "job0"], tmp_path / "m", progress=False)
    assert m["kind"] == "events" and m["n"] == 40
    merged = [pq.read_table(f) for f in shard_paths(tmp_path / "m")]
    assert [t.to_pydict() for t in merged] == [t.to_pydict() for t in tables]
