"""convert: foreign files -> canonical shards, equal on read-back; atomic on every error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from colliderfm.data import convert as convert_mod
from colliderfm.data.convert import convert
from colliderfm.data.readers.parquet import iter_parquet_jets, shard_paths
from colliderfm.data.schema import JETCLASS_CLASSES, ConstituentChunk
from colliderfm.data.shards import ShardWriter
from colliderfm.errors import ColliderFMError, DataError

FIELDS = ("counts", "px", "py", "pz", "energy", "charge", "type_id", "label")


def read_shards(path: Path) -> ConstituentChunk:
    return ConstituentChunk.concat(list(iter_parquet_jets(path)))


def assert_same(got: ConstituentChunk, exp: ConstituentChunk, jet: bool = True) -> None:
    for k in FIELDS:
        np.testing.assert_array_equal(getattr(got, k), getattr(exp, k), err_msg=k)
    if jet:
        for k in exp.jet:
            np.testing.assert_array_equal(got.jet[k], exp.jet[k], err_msg=k)


def no_leftovers(parent: Path, allowed: set[str]) -> None:
    names = {p.name for p in parent.iterdir()}
    assert names <= allowed, names - allowed  # no output and no hidden temp directory


def test_jetclass_to_shards(jetclass_root, tmp_path: Path) -> None:
    w = jetclass_root(n=120, seed=1, nan_jets=[7], empty_jets=[8, 9])
    out = tmp_path / "out"
    mf = convert([w.path], "jetclass", out, chunk_size=32, jets_per_shard=50, progress=False)
    assert_same(read_shards(out), w.kept)
    assert mf["n"] == 117 and len(mf["shards"]) == 3 and len(shard_paths(out)) == 3
    assert mf["classes"] == list(JETCLASS_CLASSES)
    assert mf["skipped"] == {"non_finite": 1, "zero_particles": 2}
    exp_counts = np.bincount(w.kept.label, minlength=10)
    assert mf["counts"] == {JETCLASS_CLASSES[i]: int(c) for i, c in enumerate(exp_counts) if c}
    src = mf["source"]
    assert src["converted_from"] == "jetclass"
    assert src["inputs"][0]["path"] == str(w.path.resolve())
    assert src["inputs"][0]["bytes"] == w.path.stat().st_size and src["inputs"][0]["jets"] == 120


def test_toptagging_to_shards_detected(toptagging_h5, tmp_path: Path) -> None:
    w = toptagging_h5(n=90, seed=2, slots=60, empty_jets=[0])
    out = tmp_path / "out"
    mf = convert([w.path], None, out, chunk_size=16, progress=False)
    assert_same(read_shards(out), w.kept, jet=False)
    assert mf["classes"] == ["QCD", "Tbqq"] and mf["source"]["converted_from"] == "toptagging"
    assert mf["skipped"] == {"zero_particles": 1}


def test_multiple_files_in_order(jetclass_root, tmp_path: Path) -> None:
    a = jetclass_root("a.root", n=30, seed=3)
    b = jetclass_root("b.root", n=45, seed=4, empty_jets=[0])
    out = tmp_path / "out"
    mf = convert([a.path, b.path], "jetclass", out, chunk_size=10, progress=False)
    assert_same(read_shards(out), ConstituentChunk.concat([a.kept, b.kept]))
    assert mf["n"] == 74 and [i["jets"] for i in mf["source"]["inputs"]] == [30, 45]


def test_chunked_streaming_is_bounded(jetclass_root, tmp_path: Path, monkeypatch) -> None:
    """Every write is at most chunk_size jets, and a file bigger than a chunk needs many."""
    w = jetclass_root(n=500, seed=5, basket=50)
    sizes: list[int] = []
    original = ShardWriter.write_chunk

    def spy(self: ShardWriter, chunk: ConstituentChunk) -> None:
        sizes.append(len(chunk))
        original(self, chunk)

    monkeypatch.setattr(ShardWriter, "write_chunk", spy)
    convert([w.path], "jetclass", tmp_path / "out", chunk_size=64, progress=False)
    assert max(sizes) <= 64 and len(sizes) == 8 and sum(sizes) == 500


def test_parquet_inputs_are_merged(small_shards, tmp_path: Path) -> None:
    a, b = small_shards("a", n=30, seed=1), small_shards("b", n=20, seed=2)
    mf = convert([a.path, b.path], None, tmp_path / "out", progress=False)
    assert mf["n"] == 50 and mf["classes"] == ["QCD", "Tbqq"]
    assert_same(read_shards(tmp_path / "out"), ConstituentChunk.concat([a.jets, b.jets]))


def test_progress_bar_runs(toptagging_h5, tmp_path: Path, capsys) -> None:
    w = toptagging_h5(n=20, slots=10)
    convert([w.path], "toptagging", tmp_path / "out", progress=True)
    assert "convert" in capsys.readouterr().err


def test_overwrite(jetclass_root, tmp_path: Path) -> None:
    w = jetclass_root(n=20)
    out = tmp_path / "out"
    convert([w.path], "jetclass", out, progress=False)
    with pytest.raises(DataError, match="not empty"):
        convert([w.path], "jetclass", out, progress=False)
    mf = convert([w.path], "jetclass", out, overwrite=True, progress=False)
    assert mf["n"] == 20


# ---------------------------------------------------------------- errors leave nothing behind


def test_truncated_second_input_leaves_nothing(jetclass_root, tmp_path: Path) -> None:
    a = jetclass_root("a.root", n=100, seed=1)
    b = jetclass_root("b.root", n=300, seed=2, basket=30)
    data = b.path.read_bytes()
    b.path.write_bytes(data[: int(len(data) * 0.6)])
    out = tmp_path / "out"
    with pytest.raises(DataError, match="b.root: truncated or corrupt ROOT file"):
        convert([a.path, b.path], "jetclass", out, chunk_size=20, jets_per_shard=30, progress=False)
    assert not out.exists()
    no_leftovers(tmp_path, {"a.root", "b.root"})


def test_existing_output_kept_on_error(jetclass_root, tmp_path: Path) -> None:
    good = jetclass_root("good.root", n=10)
    bad = jetclass_root("bad.root", n=200, basket=20)
    bad.path.write_bytes(bad.path.read_bytes()[:-3000])
    out = tmp_path / "out"
    convert([good.path], None, out, progress=False)
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(DataError):
        convert([bad.path], None, out, overwrite=True, progress=False)
    assert sorted(p.name for p in out.iterdir()) == before
    no_leftovers(tmp_path, {"good.root", "bad.root", "out"})


def test_mixed_formats(jetclass_root, toptagging_h5, tmp_path: Path) -> None:
    a, b = jetclass_root(n=5), toptagging_h5(n=5, slots=5)
    with pytest.raises(DataError, match="different formats"):
        convert([a.path, b.path], None, tmp_path / "out", progress=False)
    with pytest.raises(DataError, match="is a toptagging input, not jetclass"):
        convert([a.path, b.path], "jetclass", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_different_class_lists_merge_under_the_union(small_shards, tmp_path: Path) -> None:
    a = small_shards("a", n=10)
    b = small_shards("b", n=10, classes=("QCD", "Wqq"))
    mf = convert([a.path, b.path], None, tmp_path / "out", progress=False)
    assert mf["classes"] == ["QCD", "Tbqq", "Wqq"]
    got = read_shards(tmp_path / "out").label
    np.testing.assert_array_equal(got[:10], a.jets.label)  # QCD 0, Tbqq 1 as before
    np.testing.assert_array_equal(got[10:], np.where(b.jets.label == 1, 2, 0))  # Wqq -> 2


def test_unlabel_hides_every_label(small_shards, tmp_path: Path) -> None:
    a = small_shards("a", n=10)
    b = small_shards("b", n=10, classes=("QCD", "Wqq"))
    mf = convert([a.path, b.path], None, tmp_path / "out", progress=False, unlabel=True)
    assert mf["classes"] == [] and mf["counts"] == {"unlabelled": 20}
    assert (read_shards(tmp_path / "out").label == -1).all()


def test_nanoaod_format_on_a_jetclass_file(jetclass_root, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no tree 'Events', not a NanoAOD file"):
        convert([jetclass_root(n=2).path], "nanoaod", tmp_path / "out", progress=False)
    with pytest.raises(ColliderFMError, match="unknown format"):
        convert([jetclass_root(n=2).path], "csv", tmp_path / "out", progress=False)


def test_every_jet_bad_is_an_error(toptagging_h5, tmp_path: Path) -> None:
    w = toptagging_h5(n=3, slots=5, nan_jets=[0, 1], empty_jets=[2])
    with pytest.raises(DataError, match="no jets to write"):
        convert([w.path], None, tmp_path / "out", progress=False)
    no_leftovers(tmp_path, {"jets.h5"})


@pytest.mark.parametrize("content", [b"", b"\x89HDF\r\n\x1a\n" + b"\1" * 500, b"junk" * 100])
def test_bad_files(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "in.h5"
    p.write_bytes(content)
    with pytest.raises(DataError) as info:
        convert([p], None, tmp_path / "out", progress=False)
    assert str(p) in str(info.value) and "\n" not in str(info.value)
    no_leftovers(tmp_path, {"in.h5"})


def test_no_inputs(tmp_path: Path) -> None:
    with pytest.raises(ColliderFMError, match="at least one input"):
        convert([], None, tmp_path / "out")


def test_module_exports() -> None:
    assert "jetclass" in convert_mod.CONVERTIBLE
