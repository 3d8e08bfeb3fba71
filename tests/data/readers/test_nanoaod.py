"""CMS NanoAOD -> event shards: exact kinematics, selection, skip counts, errors."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from colliderfm.data.convert import convert
from colliderfm.data.inspect import inspect
from colliderfm.data.readers.dispatch import detect_format, iter_chunks
from colliderfm.data.readers.nanoaod import NanoAODOptions
from colliderfm.data.readers.parquet import read_manifest
from colliderfm.data.selection import Selection
from colliderfm.errors import DataError

F32 = np.float32
Writer = Callable[..., Path]

#: Passes: 1 electron, 2 b-jets (0.9, 0.5 > 0.2783), 2 light jets; a soft jet and a forward jet
#: are cut, a non-isolated muon is dropped.
GOOD = {
    "jets": [
        (80.5, 0.1, 0.2, 10.0, 0.9),
        (60.25, -1.0, 1.0, 8.0, 0.5),
        (45.0, 0.5, -2.0, 5.0, 0.1),
        (30.0, 2.0, 3.0, 4.0, 0.01),
        (20.0, 0.0, 0.0, 3.0, 0.99),  # pT < 25
        (90.0, 2.7, 0.0, 3.0, 0.99),  # |eta| > 2.5
    ],
    "electrons": [(40.0, 0.3, -1.0, 0.000511, 0.01)],
    "muons": [(35.0, -0.3, 1.5, 0.1057, 0.5)],  # not isolated
    "met": (35.5, 1.25),
}
#: Fails: one b-jet only.
ONE_B = {
    "jets": [(60, 0.1, 0.2, 10, 0.9), (50, -1, 1, 8, 0.1), (40, 0.5, -2, 5, 0.1)],
    "muons": [(30, 0.3, -1, 0.1, 0.01)],
    "met": (35, 1.5),
}
#: Fails: no lepton. Then an event with no objects at all.
NO_LEPTON = {"jets": GOOD["jets"], "met": (10.0, 0.0)}
EMPTY: dict = {}
#: Fails: the jet on top of the muon is removed (overlap removal), leaving one light jet.
OVERLAP = {
    "jets": [
        (80, 0.1, 0.2, 10, 0.9),
        (60, -1, 1, 8, 0.5),
        (45, 0.5, -2, 5, 0.1),
        (40, 1.2, 2.5, 5, 0.1),
    ],
    "muons": [(39, 1.21, 2.52, 0.1, 0.01)],
    "met": (20, 0.0),
}


def _rows(out: Path) -> list[dict]:
    return [
        r for s in read_manifest(out)["shards"] for r in pq.read_table(out / s["file"]).to_pylist()
    ]


def test_round_trip_exact_kinematics_and_selection(tmp_path: Path, nanoaod: Writer) -> None:
    f = nanoaod(tmp_path / "nano.root", [GOOD, ONE_B, NO_LEPTON, EMPTY, OVERLAP, GOOD])
    assert detect_format(f) == "nanoaod"
    m = convert([f], "nanoaod", tmp_path / "out", progress=False)
    assert m["kind"] == "events" and m["classes"] == ["ttbar", "h2hdm"]
    assert m["n"] == 2 and m["counts"] == {"unlabelled": 2}
    assert m["skipped"] == {"failed_selection": 4}
    assert m["source"]["cutflow"] == {
        "read": 6,
        "finite": 6,
        "leptons": 4,
        "bjets": 3,
        "light_jets": 2,
    }
    assert m["source"]["nanoaod"]["btag_wp"] == 0.2783
    row = _rows(tmp_path / "out")[0]
    assert row["label"] == -1
    # pT-ordered: jet 80.5 (b), jet 60.25 (b), jet 45, electron 40, MET 35.5, jet 30
    assert row["obj_type"] == [3, 3, 4, 1, 5, 4]
    assert row["obj_pt"] == [F32(80.5), F32(60.25), 45.0, 40.0, 35.5, 30.0]
    assert row["obj_eta"] == [F32(0.1), -1.0, 0.5, F32(0.3), 0.0, 2.0]
    assert row["obj_phi"] == [F32(0.2), 1.0, -2.0, -1.0, 1.25, 3.0]
    e = [
        math.hypot(F32(pt) * math.cosh(F32(eta)), F32(mass))
        for pt, eta, _, mass, _ in GOOD["jets"][:3]
    ]
    assert row["obj_energy"][:3] == pytest.approx(e, rel=1e-6)
    assert row["obj_energy"][4] == 35.5  # MET: E = pT


def test_options_chunking_and_label(tmp_path: Path, nanoaod: Writer) -> None:
    f = nanoaod(tmp_path / "nano.root", [GOOD, ONE_B, NO_LEPTON, OVERLAP] * 3)
    opt = NanoAODOptions(btag_wp=0.6, selection=Selection(min_bjets=1, max_jets=2))
    m = convert([f], "nanoaod", tmp_path / "a", chunk_size=5, nanoaod=opt, label=1, progress=False)
    # a tight working point and >= 1 b-jet: GOOD, ONE_B and OVERLAP pass, NO_LEPTON fails
    assert m["counts"] == {"h2hdm": 9} and m["skipped"] == {"failed_selection": 3}
    rows = _rows(tmp_path / "a")
    assert all(r["label"] == 1 for r in rows)
    assert all(r["obj_type"].count(3) + r["obj_type"].count(4) == 2 for r in rows)  # max_jets
    # chunking does not change the result
    m1 = convert([f], "nanoaod", tmp_path / "b", chunk_size=1, progress=False)
    m2 = convert([f], "nanoaod", tmp_path / "c", chunk_size=100, progress=False)
    assert _rows(tmp_path / "b") == _rows(tmp_path / "c") and m1["n"] == m2["n"] == 3


def test_missing_isolation_branches_are_optional(tmp_path: Path, nanoaod: Writer) -> None:
    f = nanoaod(
        tmp_path / "nano.root",
        [GOOD],
        drop=("Electron_pfRelIso03_all", "Muon_pfRelIso04_all"),
    )
    rows = (convert([f], None, tmp_path / "out", progress=False), _rows(tmp_path / "out"))[1]
    assert rows[0]["obj_type"].count(2) == 1  # the muon is no longer rejected by isolation


def test_missing_branches_name_file_and_branches(tmp_path: Path, nanoaod: Writer) -> None:
    f = nanoaod(tmp_path / "nano.root", [GOOD], drop=("Jet_btagDeepFlavB", "MET_phi"))
    with pytest.raises(
        DataError,
        match=r"nano\.root: .*missing NanoAOD branch\(es\) "
        r"Jet_btagDeepFlavB, MET_phi",
    ):
        convert([f], "nanoaod", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.tmp-*"))


def test_empty_file_and_no_selected_event(tmp_path: Path, nanoaod: Writer) -> None:
    f = nanoaod(tmp_path / "empty.root", [])
    with pytest.raises(DataError, match="no events to write"):
        convert([f], "nanoaod", tmp_path / "out", progress=False)
    g = nanoaod(tmp_path / "none.root", [ONE_B, EMPTY])
    with pytest.raises(DataError, match="failed_selection"):
        convert([g], "nanoaod", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_non_finite_events_are_skipped(tmp_path: Path, nanoaod: Writer) -> None:
    bad = dict(GOOD, met=(float("nan"), 0.0))
    f = nanoaod(tmp_path / "nano.root", [bad, GOOD])
    m = convert([f], "nanoaod", tmp_path / "out", progress=False)
    assert m["n"] == 1 and m["skipped"] == {"non_finite": 1}


def test_streaming_and_inspect(tmp_path: Path, nanoaod: Writer) -> None:
    f = nanoaod(tmp_path / "nano.root", [GOOD, ONE_B, GOOD])
    chunks = list(iter_chunks(f))
    assert sum(len(c) for c in chunks) == 2 and set(chunks[0].type_id.tolist()) == {1, 3, 4, 5}
    info = inspect(f)
    assert info["format"] == "nanoaod" and info["n_events"] == 2
    assert info["objects"] == {"electron": 2, "muon": 0, "bjet": 4, "jet": 4, "met": 2}
    assert info["object_kinematics"]["bjet"]["pt"]["max"] == pytest.approx(80.5)
    convert([f], None, tmp_path / "out", progress=False)
    info2 = inspect(tmp_path / "out")
    assert info2["manifest"]["kind"] == "events" and info2["objects"] == info["objects"]


def test_cli_errors_are_one_line(tmp_path: Path, nanoaod: Writer) -> None:
    f = nanoaod(tmp_path / "nano.root", [GOOD], drop=("Muon_pt",))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "colliderfm.cli",
            "convert",
            str(f),
            "--format",
            "nanoaod",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"colliderfm: error: {f}: ") and "Muon_pt" in last


def test_pretraining_reads_nanoaod_directly(tmp_path: Path, nanoaod: Writer) -> None:
    """The real-data path: masked object-id pretraining on a NanoAOD file, no conversion."""
    from colliderfm.checkpoints import load_model
    from colliderfm.config import load_config
    from colliderfm.recipes.pretrain import run_pretrain

    rng = np.random.default_rng(0)
    events = []
    for _ in range(48):  # GOOD with jittered kinematics: every event passes the selection
        jets = [(pt * rng.uniform(0.9, 1.1), eta, phi, m, b) for pt, eta, phi, m, b in GOOD["jets"]]
        events.append({**GOOD, "jets": jets, "met": (rng.uniform(20, 80), rng.uniform(-3, 3))})
    f = nanoaod(tmp_path / "nano.root", [*events, ONE_B, NO_LEPTON])
    sets = [
        f"data.train={f}",
        "model.preset=tiny",
        "objective.probe_data=null",
        "train.max_steps=3",
        "train.batch_size=16",
        "train.epochs=1",
    ]
    cfg = load_config("configs/pretrain/masked_id.yaml", sets)
    summary = run_pretrain(cfg, tmp_path / "run", progress=False)
    assert summary["steps"] == 3
    model = load_model(tmp_path / "run")
    assert model.backbone.in_dim == 11  # the event feature set
