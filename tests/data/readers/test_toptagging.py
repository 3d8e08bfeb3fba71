"""Top Tagging HDF5 reader: exact read-back, chunking, table/fixed storage, and bad input."""

from __future__ import annotations

import logging
import tracemalloc
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from colliderfm.data.readers import toptagging
from colliderfm.data.schema import ConstituentChunk
from colliderfm.errors import DataError

FIELDS = ("counts", "px", "py", "pz", "energy", "charge", "type_id", "label")


def assert_same(got: ConstituentChunk, exp: ConstituentChunk) -> None:
    for k in FIELDS:
        np.testing.assert_array_equal(getattr(got, k), getattr(exp, k), err_msg=k)
    assert got.px.dtype == np.float32 and got.label.dtype == np.int64


def read_all(path: Path, **kw: object) -> ConstituentChunk:
    return ConstituentChunk.concat(list(toptagging.iter_jets(path, **kw)))


def test_reads_back_exactly(toptagging_h5) -> None:
    w = toptagging_h5(n=60, seed=1)
    got = read_all(w.path)
    assert_same(got, w.jets)
    assert np.all(got.charge == 0) and np.all(got.type_id == 0)
    assert set(np.unique(got.label).tolist()) == {0, 1}
    assert toptagging.num_jets(w.path) == 60


def test_jet_scalars_from_constituents(toptagging_h5) -> None:
    w = toptagging_h5(n=20, seed=2, slots=40)
    got = read_all(w.path)
    seg = w.jets.offsets[:-1]
    px, py, pz, e = (
        np.add.reduceat(a.astype(np.float64), seg)
        for a in (w.jets.px, w.jets.py, w.jets.pz, w.jets.energy)
    )
    np.testing.assert_allclose(got.jet["jet_pt"], np.hypot(px, py), rtol=1e-5)
    np.testing.assert_allclose(got.jet["jet_energy"], e, rtol=1e-5)
    mass = np.sqrt(np.clip(e**2 - px**2 - py**2 - pz**2, 0, None))
    np.testing.assert_allclose(got.jet["jet_mass"], mass, rtol=1e-3, atol=1e-2)


def test_chunk_boundaries(toptagging_h5) -> None:
    w = toptagging_h5(n=50, seed=3, slots=30)
    chunks = list(toptagging.iter_jets(w.path, chunk_size=7))
    assert [len(c) for c in chunks] == [7] * 7 + [1]
    assert_same(ConstituentChunk.concat(chunks), w.jets)
    # chunk size dividing the row count exactly
    assert [len(c) for c in toptagging.iter_jets(w.path, chunk_size=25)] == [25, 25]


def test_fixed_format(toptagging_h5) -> None:
    w = toptagging_h5(n=30, seed=4, slots=50, fmt="fixed")
    assert_same(read_all(w.path, chunk_size=8), w.jets)
    assert toptagging.num_jets(w.path) == 30
    assert toptagging.schema(w.path)["storage"] == "fixed"


def test_other_key(toptagging_h5) -> None:
    w = toptagging_h5(n=10, slots=20, key="jets")
    assert_same(read_all(w.path, key="jets"), w.jets)


def test_no_label_column_means_unlabelled(toptagging_h5) -> None:
    got = read_all(toptagging_h5(n=10, slots=20, labels=False).path)
    assert np.all(got.label == -1)


def test_bad_jets_are_skipped_and_counted(toptagging_h5, caplog) -> None:
    w = toptagging_h5(n=40, slots=30, nan_jets=[0, 9], inf_jets=[17], empty_jets=[3])
    skipped: Counter[str] = Counter()
    with caplog.at_level(logging.WARNING):
        got = read_all(w.path, chunk_size=16, skipped=skipped)
    assert skipped == {"non_finite": 3, "zero_particles": 1}
    assert_same(got, w.kept)
    assert "skipped" in caplog.text


def test_schema_summary(toptagging_h5) -> None:
    s = toptagging.schema(toptagging_h5(n=5, slots=200).path)
    assert s["particle_slots"] == 200 and s["storage"] == "table"
    assert set(s["columns"]) == {"truthE", "ttv", "is_signal_new"}


def test_memory_is_bounded_by_chunk_size(toptagging_h5) -> None:
    w = toptagging_h5(n=1500, seed=5, slots=60)

    def peak(chunk_size: int) -> int:
        tracemalloc.start()
        n = sum(len(c) for c in toptagging.iter_jets(w.path, chunk_size=chunk_size))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert n == 1500
        return top

    small, whole = peak(100), peak(1500)
    assert small < whole / 4, (small, whole)


# ---------------------------------------------------------------- bad input: one-line DataError


def error_of(path: Path, **kw: object) -> str:
    with pytest.raises(DataError) as info:
        read_all(path, **kw)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg
    return msg


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.h5").write_bytes(b"")
    assert "empty" in error_of(tmp_path / "e.h5")


def test_random_bytes(tmp_path: Path) -> None:
    p = tmp_path / "r.h5"
    p.write_bytes(np.random.default_rng(0).bytes(4000))
    assert "not an HDF5 file" in error_of(p)


def test_hdf5_magic_then_garbage(tmp_path: Path) -> None:
    p = tmp_path / "g.h5"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + np.random.default_rng(0).bytes(4000))
    assert "corrupt or unreadable HDF5 file" in error_of(p)


def test_truncated_file(toptagging_h5) -> None:
    w = toptagging_h5(n=100, slots=50)
    data = w.path.read_bytes()
    w.path.write_bytes(data[: len(data) // 2])
    assert "truncated HDF5 file" in error_of(w.path)


def test_missing_key_lists_keys(toptagging_h5) -> None:
    w = toptagging_h5(n=5, slots=10, key="jets")
    msg = error_of(w.path)
    assert "no key 'table'" in msg and "keys present: jets" in msg


def test_plain_hdf5_without_pandas_objects(tmp_path: Path) -> None:
    p = tmp_path / "plain.h5"
    with h5py.File(p, "w") as f:
        f["particles"] = np.zeros((3, 4))
    msg = error_of(p)
    assert "no key 'table'" in msg and "particles" in msg


def test_missing_columns_are_named(toptagging_h5) -> None:
    w = toptagging_h5(n=5, slots=10, drop=["PX_3", "PZ_7"])
    msg = error_of(w.path)
    assert "missing column(s) PX_3, PZ_7" in msg and "key 'table'" in msg


def test_no_particle_columns(tmp_path: Path) -> None:
    p = tmp_path / "x.h5"
    pd.DataFrame({"a": [1.0], "b": [2.0]}).to_hdf(p, key="table", format="table")
    assert "missing columns E_0, PX_0" in error_of(p)


def test_series_instead_of_frame(tmp_path: Path) -> None:
    p = tmp_path / "s.h5"
    pd.Series([1.0, 2.0]).to_hdf(p, key="table", format="table")
    assert "not a DataFrame" in error_of(p)


def test_non_numeric_column(tmp_path: Path) -> None:
    p = tmp_path / "n.h5"
    pd.DataFrame(
        {"E_0": ["a", "b"], "PX_0": [1.0, 1.0], "PY_0": [0.0, 0.0], "PZ_0": [0.0, 0.0]}
    ).to_hdf(p, key="table", format="table")
    assert "'E_0'" in (msg := error_of(p)) and "not numeric" in msg


def test_bad_labels(tmp_path: Path) -> None:
    p = tmp_path / "l.h5"
    pd.DataFrame(
        {
            "E_0": [1.0, 2.0],
            "PX_0": [0.5, 0.5],
            "PY_0": [0.0, 0.0],
            "PZ_0": [0.0, 0.0],
            "is_signal_new": [0, 7],
        }
    ).to_hdf(p, key="table")
    assert "is_signal_new" in (msg := error_of(p)) and "7" in msg
