"""inspect: counts, classes, multiplicities and ranges for every jet format; the text report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from colliderfm.data.convert import convert
from colliderfm.data.inspect import format_report, inspect
from colliderfm.errors import DataError


def check_multiplicity(info: dict, counts: np.ndarray) -> None:
    m = info["multiplicity"]
    assert m["min"] == counts.min() and m["max"] == counts.max()
    assert m["mean"] == pytest.approx(counts.mean())
    assert m["median"] == np.median(counts)
    assert sum(b["n"] for b in m["histogram"]) == len(counts)
    assert len(m["histogram"]) <= 10


def test_jetclass_file(jetclass_root) -> None:
    w = jetclass_root(n=80, seed=1, nan_jets=[3], empty_jets=[4])
    info = inspect(w.path)
    kept = w.kept
    assert info["format"] == "jetclass" and info["n_jets"] == 78 and info["n_total"] == 80
    assert info["complete"] and info["skipped"] == {"non_finite": 1, "zero_particles": 1}
    assert sum(info["counts"].values()) == 78
    label_names = {i: c for i, c in enumerate(info["classes"])}
    for k, v in info["counts"].items():
        idx = [i for i, c in label_names.items() if c == k][0]
        assert v == int((kept.label == idx).sum())
    check_multiplicity(info, kept.counts)
    pt = np.hypot(kept.px.astype(np.float64), kept.py.astype(np.float64))
    assert info["particle"]["pt"]["min"] == pytest.approx(pt.min())
    assert info["particle"]["pt"]["max"] == pytest.approx(pt.max())
    assert info["particle"]["pt"]["mean"] == pytest.approx(pt.mean())
    assert info["jet"]["mass"]["max"] == pytest.approx(float(kept.jet["jet_mass"].max()))
    assert -np.pi <= info["particle"]["dphi"]["min"] <= info["particle"]["dphi"]["max"] <= np.pi
    assert set(info["charge"]) <= {"-1", "0", "1"}
    assert sum(info["pid"].values()) == len(kept.px)
    assert info["schema"]["part_px"] and "label_QCD" in info["schema"]
    json.dumps(info)  # serialisable


def test_toptagging_file(toptagging_h5) -> None:
    w = toptagging_h5(n=50, seed=2, slots=40)
    info = inspect(w.path)
    assert info["format"] == "toptagging" and info["n_jets"] == 50
    assert info["counts"] == {
        "QCD": int((w.jets.label == 0).sum()),
        "Tbqq": int((w.jets.label == 1).sum()),
    }
    check_multiplicity(info, w.jets.counts)
    assert info["pid"] == {"0": len(w.jets.px)}
    assert info["schema"]["particle_slots"] == 40


def test_shards_report_manifest(jetclass_root, tmp_path: Path) -> None:
    w = jetclass_root(n=60, seed=3, empty_jets=[1, 2])
    out = tmp_path / "out"
    convert([w.path], "jetclass", out, jets_per_shard=25, progress=False)
    info = inspect(out)
    assert info["format"] == "parquet" and info["n_jets"] == 58 and info["n_total"] == 58
    assert info["manifest"]["skipped"]["zero_particles"] == 2
    assert info["manifest"]["shards"] == 3
    assert info["manifest"]["source"]["converted_from"] == "jetclass"
    assert info["skipped"] == {}
    check_multiplicity(info, w.kept.counts)
    # a single shard file works too
    single = inspect(out / "part-00000.parquet")
    assert single["n_jets"] == 25 and single["classes"] == info["classes"]


def test_max_jets(small_shards) -> None:
    w = small_shards(n=200)
    info = inspect(w.path, max_jets=37)
    assert info["n_jets"] == 37 and not info["complete"] and info["n_total"] == 200
    check_multiplicity(info, w.jets.counts[:37])
    assert inspect(w.path, max_jets=500)["complete"]


def test_format_report(jetclass_root, toptagging_h5, tmp_path: Path) -> None:
    w = jetclass_root(n=40, seed=4, nan_jets=[0])
    text = format_report(inspect(w.path))
    assert text.startswith(f"{w.path}  [jetclass]")
    assert "39 jets of 40 stored; skipped while reading: non_finite: 1" in text
    assert "classes: " in text and "particles/jet: min" in text
    assert text.count("|") >= 3  # histogram rows
    assert "particle pt [GeV]:" in text and "jet mass [GeV]:" in text
    assert "schema: " in text and "part_px: float[]" in text
    assert all(len(line) <= 400 for line in text.splitlines())
    out = tmp_path / "out"
    convert([toptagging_h5(n=10, slots=10).path], None, out, progress=False)
    text = format_report(inspect(out))
    assert "shards: 1 (jets" in text and "source: converted_from=toptagging" in text


def test_errors_name_the_file(tmp_path: Path) -> None:
    p = tmp_path / "x.root"
    p.write_bytes(b"root" + b"\0" * 50)
    with pytest.raises(DataError) as info:
        inspect(p)
    assert str(p) in str(info.value)
    with pytest.raises(DataError, match="no such file"):
        inspect(tmp_path / "missing.h5")
