"""JetClass ROOT reader: exact read-back, chunking, label/pid mapping, and bad input."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from colliderfm.data.readers import jetclass, rootfile
from colliderfm.data.schema import JETCLASS_CLASSES, ConstituentChunk
from colliderfm.errors import DataError

FIELDS = ("counts", "px", "py", "pz", "energy", "charge", "type_id", "label")


def assert_same(got: ConstituentChunk, exp: ConstituentChunk, jet: bool = True) -> None:
    for k in FIELDS:
        a, b = getattr(got, k), getattr(exp, k)
        assert a.shape == b.shape, k
        np.testing.assert_array_equal(a, b, err_msg=k)
    assert got.px.dtype == np.float32 and got.charge.dtype == np.int8
    assert got.type_id.dtype == np.int32 and got.label.dtype == np.int64
    if jet:
        assert set(got.jet) == set(exp.jet)
        for k in exp.jet:
            np.testing.assert_array_equal(got.jet[k], exp.jet[k], err_msg=k)


def read_all(path: Path, **kw: object) -> ConstituentChunk:
    return ConstituentChunk.concat(list(jetclass.iter_jets(path, **kw)))


def test_reads_back_exactly(jetclass_root) -> None:
    w = jetclass_root(n=60, seed=1)
    assert_same(read_all(w.path), w.jets)
    assert jetclass.num_jets(w.path) == 60
    assert rootfile.tree_names(w.path) == ["tree"]


def test_pid_and_charge_mapping_by_hand(jetclass_root) -> None:
    got = read_all(jetclass_root(n=30, seed=2).path)
    pid = set(np.unique(got.type_id).tolist())
    assert pid <= {211, -211, 130, 22, 11, -11, 13, -13}
    # sign convention: pi+ is +211 with charge +1; e- (charge -1) is +11; mu+ is -13
    assert np.all(got.charge[got.type_id == 211] == 1) and np.all(
        got.charge[got.type_id == -211] == -1
    )
    assert np.all(got.charge[got.type_id == 11] == -1) and np.all(
        got.charge[got.type_id == -13] == 1
    )
    assert np.all(got.charge[np.isin(got.type_id, [22, 130])] == 0)


def test_chunk_boundaries(jetclass_root) -> None:
    w = jetclass_root(n=50, seed=3, basket=16)
    chunks = list(jetclass.iter_jets(w.path, chunk_size=7))
    assert [len(c) for c in chunks] == [7] * 7 + [1]
    assert_same(ConstituentChunk.concat(chunks), w.jets)


def test_jet_mass_is_softdrop_mass(jetclass_root) -> None:
    w = jetclass_root(n=10)
    got = read_all(w.path)
    with uproot.open(w.path) as f:
        sdmass = f["tree"]["jet_sdmass"].array(library="np")
    np.testing.assert_array_equal(got.jet["jet_mass"], sdmass)


def test_missing_labels_mean_unlabelled(jetclass_root) -> None:
    got = read_all(jetclass_root(n=12, labels=False).path)
    assert np.all(got.label == -1)


def test_subset_of_label_branches_keeps_jetclass_indices(jetclass_root) -> None:
    keep = {"label_QCD", "label_Tbqq"}
    drop = [f"label_{c}" for c in JETCLASS_CLASSES if f"label_{c}" not in keep]
    w = jetclass_root(n=80, seed=4, drop=drop)
    got = read_all(w.path)
    exp = np.where(np.isin(w.jets.label, [0, 8]), w.jets.label, -1)
    np.testing.assert_array_equal(got.label, exp)


def test_optional_branches_default(jetclass_root) -> None:
    drop = ["part_charge", *jetclass.FLAGS, "jet_pt", "jet_sdmass"]
    w = jetclass_root(n=20, seed=5, drop=drop)
    got = read_all(w.path)
    assert np.all(got.charge == 0) and np.all(got.type_id == 0)
    # missing jet scalars come from the constituents; the present ones are kept as stored
    pt = np.hypot(
        np.add.reduceat(w.jets.px.astype(np.float64), w.jets.offsets[:-1]),
        np.add.reduceat(w.jets.py.astype(np.float64), w.jets.offsets[:-1]),
    )
    np.testing.assert_allclose(got.jet["jet_pt"], pt, rtol=1e-5)
    np.testing.assert_array_equal(got.jet["jet_eta"], w.jets.jet["jet_eta"])
    assert np.all(got.jet["jet_mass"] >= 0)


def test_bad_jets_are_skipped_and_counted(jetclass_root, caplog) -> None:
    w = jetclass_root(n=40, nan_jets=[1, 2], inf_jets=[30], empty_jets=[5, 39])
    skipped: Counter[str] = Counter()
    with caplog.at_level(logging.WARNING):
        got = read_all(w.path, chunk_size=8, skipped=skipped)
    assert skipped == {"non_finite": 3, "zero_particles": 2}
    assert_same(got, w.kept)
    assert "skipped" in caplog.text and "jets.root" in caplog.text


def test_rntuple_is_read_too(tmp_path: Path) -> None:
    path = tmp_path / "rn.root"
    with uproot.recreate(path) as f:  # uproot's default for dicts is an RNTuple
        f["tree"] = {
            "part_px": ak.Array([[1.0, 2.0], [3.0]]),
            "part_py": ak.Array([[0.5, 0.0], [1.0]]),
            "part_pz": ak.Array([[0.0, 1.0], [2.0]]),
            "part_energy": ak.Array([[2.0, 3.0], [4.0]]),
            "label_Hbb": np.array([True, False]),
            "label_QCD": np.array([False, True]),
        }
    got = read_all(path)
    np.testing.assert_array_equal(got.counts, [2, 1])
    np.testing.assert_array_equal(got.energy, np.float32([2, 3, 4]))
    np.testing.assert_array_equal(got.label, [1, 0])


# ---------------------------------------------------------------- bad input: one-line DataError


def error_of(path: Path, **kw: object) -> str:
    with pytest.raises(DataError) as info:
        read_all(path, **kw)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg
    return msg


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.root").write_bytes(b"")
    assert "empty" in error_of(tmp_path / "e.root")


def test_missing_file(tmp_path: Path) -> None:
    assert "no such file" in error_of(tmp_path / "nope.root")


def test_random_bytes(tmp_path: Path) -> None:
    p = tmp_path / "r.root"
    p.write_bytes(np.random.default_rng(0).bytes(4000))
    assert "not a ROOT file" in error_of(p)


def test_root_magic_then_garbage(tmp_path: Path) -> None:
    p = tmp_path / "g.root"
    p.write_bytes(b"root" + np.random.default_rng(0).bytes(4000))
    assert "corrupt ROOT file" in error_of(p)


def test_truncated_file(jetclass_root) -> None:
    w = jetclass_root(n=200, basket=50)
    data = w.path.read_bytes()
    w.path.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt ROOT file" in error_of(w.path)


@pytest.mark.parametrize("frac", [0.02, 0.3, 0.7, 0.95])
def test_truncated_anywhere(jetclass_root, frac: float) -> None:
    w = jetclass_root(n=120, basket=30)
    data = w.path.read_bytes()
    w.path.write_bytes(data[: int(len(data) * frac)])
    assert "ROOT file" in error_of(w.path)


def test_wrong_tree_name_lists_trees(jetclass_root) -> None:
    w = jetclass_root(n=5, tree="jets")
    msg = error_of(w.path)
    assert "no tree 'tree'" in msg and "trees present: jets" in msg
    assert len(read_all(w.path, tree="jets")) == 5


def test_missing_branches_are_named(jetclass_root) -> None:
    w = jetclass_root(n=5, drop=["part_px", "part_energy"])
    msg = error_of(w.path)
    assert "missing branch(es) part_px, part_energy" in msg and "tree 'tree'" in msg


def test_non_numeric_branch(tmp_path: Path) -> None:
    p = tmp_path / "s.root"
    with uproot.recreate(p) as f:
        f.mktree(
            "tree",
            {
                "part_px": "var * float32",
                "part_py": "var * float32",
                "part_pz": "var * float32",
                "part_energy": "string",
            },
        )
        x = ak.Array([[1.0], [2.0]])
        f["tree"].extend(
            {"part_px": x, "part_py": x, "part_pz": x, "part_energy": np.array(["a", "b"])}
        )
    msg = error_of(p)
    assert "part_energy" in msg and "not numeric" in msg


def test_scalar_where_list_expected(tmp_path: Path) -> None:
    p = tmp_path / "s.root"
    with uproot.recreate(p) as f:
        f["tree"] = {
            k: np.ones(3, np.float32) for k in ("part_px", "part_py", "part_pz", "part_energy")
        }
    assert "not a per-particle list" in error_of(p)


def test_inconsistent_counts(tmp_path: Path) -> None:
    p = tmp_path / "c.root"
    a, b = ak.Array([[1.0, 2.0], [3.0]]), ak.Array([[1.0], [3.0]])
    with uproot.recreate(p) as f:
        f["tree"] = {"part_px": a, "part_py": a, "part_pz": a, "part_energy": b}
    msg = error_of(p)
    assert "different particle counts" in msg and "part_energy" in msg


def test_not_a_tree(tmp_path: Path) -> None:
    p = tmp_path / "h.root"
    with uproot.recreate(p) as f:
        f["tree"] = np.histogram(np.arange(5.0))
    assert "is a TH1D, not a TTree" in error_of(p)


def test_tree_names_errors(tmp_path: Path) -> None:
    p = tmp_path / "x.root"
    p.write_bytes(b"hello world, this is not ROOT")
    with pytest.raises(DataError, match="not a ROOT file"):
        rootfile.tree_names(p)


def test_chunk_size_must_be_positive(jetclass_root) -> None:
    with pytest.raises(ValueError):
        read_all(jetclass_root(n=2).path, chunk_size=0)


def test_memory_is_bounded_by_chunk_size(jetclass_root) -> None:
    """Peak traced memory with small chunks is far below reading the file in one go."""
    import tracemalloc

    w = jetclass_root(n=2000, seed=6, basket=200, max_particles=40)

    def peak(chunk_size: int) -> int:
        tracemalloc.start()
        n = sum(len(c) for c in jetclass.iter_jets(w.path, chunk_size=chunk_size))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert n == 2000
        return top

    small, whole = peak(200), peak(2000)
    assert small < whole / 3, (small, whole)
