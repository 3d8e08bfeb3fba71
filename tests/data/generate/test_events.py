"""The built-in event generator: format, selection, determinism; object assembly without Pythia."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from colliderfm.data.generate.event_processes import SUBPROCESSES, EventSettings
from colliderfm.data.generate.events import datalike_counts, generate_events
from colliderfm.data.generate.pythia_events import _flavour_hadrons
from colliderfm.data.readers.parquet import iter_parquet_jets, read_manifest
from colliderfm.data.schema import EVENT_COLUMNS, ConstituentChunk, ObjectType
from colliderfm.data.selection import Selection, assemble_events, cone_pairs
from colliderfm.errors import ColliderFMError

N = 3  # selected events per process, one shard: the module's generation takes ~20 s


def _need_generator() -> None:
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")


@pytest.fixture(scope="module")
def gen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _need_generator()
    out = tmp_path_factory.mktemp("events") / "all"
    generate_events(
        ["datalike", "h2hdm", "ttbar"], N, out, seed=5, events_per_shard=10, progress=False
    )
    return out


def _events(path: Path) -> ConstituentChunk:
    return ConstituentChunk.concat(list(iter_parquet_jets(path)))


def test_manifest(gen: Path) -> None:
    m = read_manifest(gen)
    assert m["kind"] == "events" and m["classes"] == ["ttbar", "h2hdm"]
    assert m["n"] == 3 * N and m["counts"] == {"unlabelled": N, "ttbar": N, "h2hdm": N}
    assert [s["n"] for s in m["shards"]] == [3 * N]
    src = m["source"]
    assert src["sqrt_s_gev"] == 13_000.0 and src["settings"]["mass"] == 550.0
    assert src["selection"] == {
        "min_leptons": 1,
        "min_bjets": 2,
        "min_light_jets": 2,
        "max_leptons": 2,
        "max_jets": 10,
    }
    for k, eff in src["selection_efficiency"].items():
        assert 0 < eff < 1, k
        flow = src["cutflow"][k]
        assert flow[0] >= flow[1] >= flow[2] >= flow[3] > 0
    assert sum(src["datalike_counts"].values()) == N
    assert any("Tune:pp = 18" in line for line in src["pythia_settings"]["datalike/ttbar"][0])
    assert "35:m0 = 550.0" in src["pythia_settings"]["h2hdm"][0]


def test_objects_pass_cuts_and_selection(gen: Path) -> None:
    f = gen / read_manifest(gen)["shards"][0]["file"]
    assert pq.read_schema(f).names == [*EVENT_COLUMNS, "label"]
    ev = _events(gen)
    t = ev.type_id
    assert set(np.unique(t)) <= {1, 2, 3, 4, 5}
    evt = np.repeat(np.arange(len(ev)), ev.counts)
    count = {k: np.bincount(evt[t == k], minlength=len(ev)) for k in range(1, 6)}
    assert np.all(count[5] == 1)  # exactly one MET
    assert np.all(count[1] + count[2] >= 1) and np.all(count[1] + count[2] <= 2)
    assert np.all(count[3] + count[4] >= 4) and np.all(count[3] + count[4] <= 10)
    pt = np.hypot(ev.px, ev.py)
    obj = t != 5
    assert np.all(pt[obj] > 25 - 1e-3)
    eta = np.arcsinh(ev.pz / np.maximum(pt, 1e-9))
    assert np.all(np.abs(eta[obj]) < 2.5)
    assert np.all(ev.pz[t == 5] == 0) and np.allclose(ev.energy[t == 5], pt[t == 5], rtol=1e-5)
    for i in range(len(ev)):  # pT-ordered within each event
        seg = pt[ev.offsets[i] : ev.offsets[i + 1]]
        assert np.all(np.diff(seg) <= 1e-3)
    assert set(ev.label.tolist()) == {-1, 0, 1}


@pytest.mark.slow
def test_same_seed_same_bytes_for_any_workers(tmp_path: Path) -> None:
    _need_generator()
    kw = {"seed": 2, "events_per_shard": 1, "progress": False}
    m1 = generate_events(["h2hdm", "datalike"], 2, tmp_path / "w1", workers=1, **kw)
    m2 = generate_events(["h2hdm", "datalike"], 2, tmp_path / "w2", workers=2, **kw)
    assert [s["sha256"] for s in m1["shards"]] == [s["sha256"] for s in m2["shards"]]
    for m in (m1, m2):  # measured rates differ run to run
        assert m["source"].pop("selected_per_cpu_s").keys() == {"h2hdm", "datalike/ttbar"}
    assert m1["source"] == m2["source"]  # vetoed counts included


def test_bad_arguments_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(ColliderFMError, match="valid processes: ttbar, h2hdm, datalike"):
        generate_events(["ttbar", "qcd"], 2, tmp_path / "o", progress=False)
    with pytest.raises(ColliderFMError, match="--mass"):
        generate_events(["h2hdm"], 2, tmp_path / "o", mass=200.0, progress=False)
    with pytest.raises(ColliderFMError, match="together"):
        generate_events(["ttbar"], 2, tmp_path / "o", num_shards=2, progress=False)
    assert not (tmp_path / "o").exists()


def test_datalike_mix() -> None:
    assert sum(p.fraction for p in SUBPROCESSES.values()) == pytest.approx(1.0)
    c = datalike_counts(1000)
    assert c == {
        "datalike/ttbar": 860,
        "datalike/singletop": 60,
        "datalike/wjets": 50,
        "datalike/ttV": 30,
    }
    assert sum(datalike_counts(7).values()) == 7
    s = EventSettings()
    det, const, stoch = s.response("datalike/ttbar")
    assert det.neutral_res_stoch == pytest.approx(1.1 * s.detector.neutral_res_stoch)
    assert (const, stoch) == (pytest.approx(5.5), pytest.approx(0.55))
    assert s.response("ttbar")[0] == s.detector


# ---- pieces, without Pythia ----


def test_flavour_hadrons() -> None:
    ids = np.array([511, -521, 5122, 553, 421, 4122, 211, 5, 21, 5101, 10511, 2212])
    assert _flavour_hadrons(ids, 5).tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    assert _flavour_hadrons(ids, 4).tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0]


def test_cone_pairs() -> None:
    ia, ib = cone_pairs(
        np.array([0, 1]),
        np.array([0.0, 1.0]),
        np.array([3.1, 0.0]),
        np.array([0, 0, 1]),
        np.array([0.1, 0.0, 1.0]),
        np.array([-3.1, 1.0, 0.5]),
        2,
        0.4,
    )
    assert ia.tolist() == [0] and ib.tolist() == [0]  # across the phi wrap; other event ignored


def _lep(evt: list[int], pt: list[float]) -> dict[str, np.ndarray]:
    n = len(evt)
    return {
        "evt": np.array(evt, dtype=np.int64),
        "pt": np.array(pt, dtype=np.float64),
        "eta": np.zeros(n),
        "phi": np.zeros(n),
        "energy": np.array(pt, dtype=np.float64),
        "type": np.full(n, int(ObjectType.MUON)),
    }


def test_assemble_selects_caps_and_orders() -> None:
    jets = _lep([0] * 12 + [1] * 3, list(range(100, 88, -1)) + [50, 40, 30])
    jets["btag"] = np.array([1, 1] + [0] * 10 + [1, 1, 0], dtype=bool)
    del jets["type"]
    leptons = _lep([0, 0, 0, 1], [30, 95, 60, 40])
    table, sel, flow = assemble_events(
        2, leptons, jets, np.array([20.0, 70.0]), np.zeros(2), Selection(), label=1
    )
    assert sel.tolist() == [True, False]  # event 1 has one light jet only
    assert flow.tolist() == [[True, True], [True, True], [True, False]]
    row = table.to_pylist()[0]
    assert row["label"] == 1
    assert len(row["obj_pt"]) == 2 + 10 + 1  # 2 of 3 leptons, 10 of 12 jets, MET
    assert row["obj_pt"] == sorted(row["obj_pt"], reverse=True)
    assert 30.0 not in row["obj_pt"] and 95.0 in row["obj_pt"]  # softest lepton dropped
    assert row["obj_type"].count(int(ObjectType.MET)) == 1
    assert row["obj_type"].count(int(ObjectType.BJET)) == 2


def test_cli_help_and_user_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    from typer.testing import CliRunner

    from colliderfm.cli import app

    res = CliRunner().invoke(app, ["generate", "events", "--help"])
    assert res.exit_code == 0 and "colliderfm generate events --process ttbar,h2hdm" in res.output
    assert "--mass" in res.output
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "colliderfm.cli",
            "generate",
            "events",
            "--process",
            "qcd",
            "--n",
            "2",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1
    assert lines[0].startswith("colliderfm: error: unknown process 'qcd'")


def test_truth_tagging_draws_passing_tags() -> None:
    from colliderfm.data.generate.pythia_events import EventUnit

    unit = object.__new__(EventUnit)  # no Pythia: only the tagging state
    unit.settings, unit.rng, unit.truth_tag_weight = EventSettings(), np.random.default_rng(0), 0.0
    j_evt = np.repeat(np.arange(3), 4)
    rate = np.array([0.01, 0.1, 0.01, 0.01] * 3)
    btag = np.zeros(12, dtype=bool)
    unit._truth_tag(btag, rate, j_evt, 3, np.array([True, False, True]))
    for e in (0, 2):
        assert btag[j_evt == e].sum() == 2  # >= 2 b-tags and >= 2 untagged among 4 jets
        assert btag[(j_evt == e) & (rate == 0.1)].all()  # the c-jet is by far the likeliest
    assert not btag[j_evt == 1].any()  # no lepton: untouched
    # P(pass) = P(>= 2 of 4 tagged) ~ 3 * 0.1 * 0.01 per event
    assert 0.002 < unit.truth_tag_weight / 2 < 0.006


@pytest.mark.slow
@pytest.mark.parametrize("process", ["datalike/wjets", "datalike/ttV", "datalike/singletop"])
def test_rare_datalike_components(process: str) -> None:
    _need_generator()
    from colliderfm.data.generate.pythia_events import EventUnit
    from colliderfm.data.readers.parquet import table_to_chunk

    unit = EventUnit(process, EventSettings(), (3, 4), 5)
    chunk = table_to_chunk(unit.generate(2, -1))
    assert len(chunk) == 2 and np.all(chunk.label == -1)
    assert 0 < unit.cutflow[3] <= unit.cutflow[0]
    assert (unit.truth_tag_weight > 0) == (process == "datalike/wjets")
