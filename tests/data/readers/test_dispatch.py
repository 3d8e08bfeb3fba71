"""Format detection and the format-agnostic jet stream."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import uproot

from colliderfm.data.readers.dispatch import (
    count_entries,
    data_classes,
    detect_format,
    iter_chunks,
)
from colliderfm.data.schema import JETCLASS_CLASSES, ConstituentChunk
from colliderfm.errors import DataError


def test_detects_every_format(jetclass_root, toptagging_h5, small_shards, tmp_path: Path) -> None:
    shards = small_shards(n=20)
    assert detect_format(shards.path) == "parquet"
    assert detect_format(shards.path / "part-00000.parquet") == "parquet"
    assert detect_format(jetclass_root(n=3).path) == "jetclass"
    assert detect_format(toptagging_h5(n=3, slots=5).path) == "toptagging"
    nano = tmp_path / "nano.root"
    with uproot.recreate(nano) as f:
        f.mktree("Events", {"MET_pt": np.float32})
        f["Events"].extend({"MET_pt": np.ones(2, np.float32)})
    assert detect_format(nano) == "nanoaod"
    # NanoAOD streams as events; this one lacks the object branches, which the error names
    with pytest.raises(DataError, match="missing NanoAOD branch.*Jet_pt"):
        list(iter_chunks(nano))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "no such file"),
        (b"", "file is empty"),
        (b"just some text, not data\n" * 10, "unknown file format"),
    ],
)
def test_detect_errors(tmp_path: Path, content: bytes | None, problem: str) -> None:
    p = tmp_path / "input.dat"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(DataError, match=problem) as info:
        detect_format(p)
    assert str(p) in str(info.value)


def test_classes(jetclass_root, toptagging_h5, small_shards) -> None:
    shards = small_shards(n=10, classes=("QCD", "Wqq", "Zqq"))
    assert data_classes(shards.path) == ["QCD", "Wqq", "Zqq"]
    assert data_classes(shards.path / "part-00000.parquet") == ["QCD", "Wqq", "Zqq"]
    assert data_classes(jetclass_root(n=2).path) == list(JETCLASS_CLASSES)
    assert data_classes(toptagging_h5(n=2, slots=5).path) == ["QCD", "Tbqq"]


def test_lone_parquet_file_has_unknown_classes(small_shards, tmp_path: Path) -> None:
    shards = small_shards(n=10)
    lone = tmp_path / "lone.parquet"
    lone.write_bytes((shards.path / "part-00000.parquet").read_bytes())
    assert data_classes(lone) == []
    assert count_entries(lone) == 10
    assert len(ConstituentChunk.concat(list(iter_chunks(lone)))) == 10


def test_stream_and_count_every_format(jetclass_root, toptagging_h5, small_shards) -> None:
    inputs = [
        (jetclass_root(n=30, empty_jets=[4]), 30),
        (toptagging_h5(n=25, slots=20, nan_jets=[2]), 25),
        (small_shards(n=40), 40),
    ]
    for w, n in inputs:
        skipped: Counter[str] = Counter()
        chunks = list(iter_chunks(w.path, chunk_size=8, skipped=skipped))
        assert all(len(c) <= 8 for c in chunks)
        got = ConstituentChunk.concat(chunks)
        assert len(got) == int(w.good.sum())
        assert sum(skipped.values()) == n - int(w.good.sum())
        np.testing.assert_array_equal(got.px, w.kept.px)
        assert count_entries(w.path) == n
