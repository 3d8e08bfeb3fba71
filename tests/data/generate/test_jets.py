"""The built-in jet generator: selection, format, determinism, truth matching, detector response."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from colliderfm.data.generate import PROCESSES, generate_jets
from colliderfm.data.generate.detector import DetectorResponse
from colliderfm.data.generate.truth import expand_ranges, find_truth, match_jets
from colliderfm.data.readers.parquet import iter_parquet_jets, read_manifest
from colliderfm.data.schema import JETCLASS_CLASSES, ConstituentChunk, jet_scalars_from_particles
from colliderfm.errors import ColliderFMError

N = 10  # jets per process: keeps the whole file well under a minute on 2 cores
PER_SHARD = 10  # -> 2 shards of 10 jets, 5 of each class


def _generate(
    out: Path,
    workers: int,
    processes: tuple[str, ...] = ("top", "qcd"),
    n: int = N,
    per_shard: int = PER_SHARD,
) -> Path:
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    generate_jets(
        list(processes), n, out, seed=7, workers=workers, jets_per_shard=per_shard, progress=False
    )
    return out


@pytest.fixture(scope="module")
def gen1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _generate(tmp_path_factory.mktemp("gen") / "w1", workers=1)


@pytest.fixture(scope="module")
def gen2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _generate(tmp_path_factory.mktemp("gen") / "w2", workers=2)


def _jets(path: Path) -> ConstituentChunk:
    return ConstituentChunk.concat(list(iter_parquet_jets(path)))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_counts_classes_and_source(gen1: Path) -> None:
    m = read_manifest(gen1)
    assert m["kind"] == "jets"
    assert m["classes"] == ["QCD", "Tbqq"]  # JetClass order, not the order asked for
    assert m["n"] == 2 * N and m["counts"] == {"QCD": N, "Tbqq": N}
    assert [s["n"] for s in m["shards"]] == [PER_SHARD, PER_SHARD]
    src = m["source"]
    assert src["processes"] == {"qcd": "QCD", "top": "Tbqq"}
    assert src["sqrt_s_gev"] == 14_000.0 and src["R"] == 0.8 and src["seed"] == 7
    assert src["pt_min_gev"] == 550.0 and src["pt_max_gev"] == 650.0 and src["abs_eta_max"] == 2.0
    assert src["pythia_version"].startswith("8.3")
    assert set(src["detector"]) >= {"track_pt_min", "photon_e_min", "neutral_e_min"}
    assert all(0 < e <= 1 for e in src["selection_efficiency"].values())


def test_every_shard_holds_a_balanced_mix(gen1: Path) -> None:
    for shard in read_manifest(gen1)["shards"]:
        labels = _jets(gen1 / shard["file"]).label
        assert np.bincount(labels, minlength=2).tolist() == [PER_SHARD // 2, PER_SHARD // 2]
        assert not np.all(np.diff(labels) >= 0)  # shuffled, not sorted by class


def test_jets_pass_selection_and_format(gen1: Path) -> None:
    jets = _jets(gen1)
    j = jets.jet
    assert np.all((j["jet_pt"] >= 550) & (j["jet_pt"] <= 650))
    assert np.all(np.abs(j["jet_eta"]) < 2)
    assert np.all((jets.counts >= 1) & (jets.counts <= 200))
    for a in (jets.px, jets.py, jets.pz, jets.energy, *j.values()):
        assert np.all(np.isfinite(a))
    assert jets.px.dtype == np.float32 and jets.charge.dtype == np.int8
    assert jets.type_id.dtype == np.int32
    assert set(np.unique(jets.charge)) <= {-1, 0, 1}
    assert not np.isin(np.abs(jets.type_id), [0, 12, 14, 16]).any()  # known ids, no neutrinos
    assert np.all(jets.energy > 0)
    pt = np.hypot(jets.px, jets.py)
    off = jets.offsets
    for i in range(len(jets)):
        assert np.all(np.diff(pt[off[i] : off[i + 1]]) <= 0)  # pT descending


def test_scalars_are_constituent_sums(gen1: Path) -> None:
    jets = _jets(gen1)
    ref = jet_scalars_from_particles(jets)
    for k, v in ref.items():
        assert np.allclose(jets.jet[k], v, rtol=1e-4, atol=1e-3), k


def test_same_seed_same_bytes_for_any_workers(gen1: Path, gen2: Path) -> None:
    m1, m2 = read_manifest(gen1), read_manifest(gen2)
    # the measured rates differ run to run; everything else, every shard's sha256 included, not
    rates = [m["source"].pop("selected_per_cpu_s") for m in (m1, m2)]
    assert set(rates[0]) == set(rates[1]) == {"qcd", "top"}
    assert m1 == m2
    for s in m1["shards"]:
        assert _sha(gen1 / s["file"]) == _sha(gen2 / s["file"]) == s["sha256"]
    stored = json.loads((gen1 / "manifest.json").read_text())
    assert stored["source"].pop("selected_per_cpu_s") == rates[0] and stored == m1


def test_top_jets_are_heavier_than_qcd(gen1: Path) -> None:
    jets = _jets(gen1)
    m_qcd = np.median(jets.jet["jet_mass"][jets.label == 0])
    m_top = np.median(jets.jet["jet_mass"][jets.label == 1])
    assert m_top > m_qcd
    assert 140 < m_top < 220  # top jets are truth-matched: the mass peaks near 175 GeV


def test_unknown_process_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(ColliderFMError, match="valid processes: qcd, .*top"):
        generate_jets(["top", "ttbar"], 5, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ColliderFMError, match="pt_min < pt_max"):
        generate_jets(["top"], 5, tmp_path / "out", pt_min=700, pt_max=600, progress=False)


def test_process_table() -> None:
    assert set(PROCESSES.values()) == set(JETCLASS_CLASSES)
    assert PROCESSES["top"] == "Tbqq" and PROCESSES["hlnuqq"] == "Hqql"


@pytest.mark.slow
def test_every_process(tmp_path: Path) -> None:
    out = _generate(tmp_path / "all", workers=2, processes=tuple(PROCESSES), n=5, per_shard=1000)
    m = read_manifest(out)
    assert m["classes"] == list(JETCLASS_CLASSES)
    assert m["counts"] == dict.fromkeys(JETCLASS_CLASSES, 5)
    jets = _jets(out)
    assert np.all((jets.jet["jet_pt"] >= 550) & (jets.jet["jet_pt"] <= 650))
    lepton = np.isin(np.abs(jets.type_id), [11, 13])
    has_lepton = np.add.reduceat(lepton, jets.offsets[:-1]) > 0
    for name in ("Hqql", "Tbl"):  # the charged lepton is matched inside the jet
        assert has_lepton[jets.label == JETCLASS_CLASSES.index(name)].all()


# ---- pieces, without Pythia ----


def test_expand_ranges() -> None:
    owner, value = expand_ranges(np.array([3, 7, 0]), np.array([5, 7, 2]))
    assert owner.tolist() == [0, 0, 2, 2] and value.tolist() == [3, 4, 0, 1]


def _toy_record() -> dict[str, np.ndarray]:
    """Two events: a top (with a recoil copy) -> b W, W -> u dbar; then a top with a spread decay.

    Event 0: entries 0..6, event 1: entries 7..13 (daughter indices are global, -1 = none).
    """
    ids = np.array([2212, 6, 6, 5, 24, 2, -1, 2212, 6, 6, 5, 24, 2, -1])
    d1 = np.array([-1, 2, 3, -1, 5, -1, -1, -1, 9, 10, -1, 12, -1, -1])
    d2 = np.array([-1, 2, 4, -1, 6, -1, -1, -1, 9, 11, -1, 13, -1, -1])
    etas = [0, 0.1, 0.1, 0.3, 0, 0.2, -0.2, 0, 0.1, 0.1, 0.9, 0, 0.2, -0.2]
    p4 = np.zeros((len(ids), 4))
    p4[:, 0] = 100 * np.cosh(0)  # px: phi = 0 for everything
    p4[:, 2] = 100 * np.sinh(etas)
    p4[:, 3] = np.linalg.norm(p4[:, :3], axis=1)
    return {"ids": ids, "d1": d1, "d2": d2, "p4": p4, "evt": np.repeat([0, 1], 7)}


def test_truth_matching_on_a_toy_record() -> None:
    r = _toy_record()
    truth = find_truth(r["ids"], r["d1"], r["d2"], r["p4"], r["evt"], (6,))
    assert truth.root_evt.tolist() == [0, 1]
    assert np.bincount(truth.obj_owner).tolist() == [4, 4]  # t, b, u, dbar (W expanded)
    assert truth.n_leptons.tolist() == [0, 0]
    jet_evt, jet_eta, jet_phi = np.array([0, 1, 1]), np.array([0.0, 0.0, 0.5]), np.zeros(3)
    # event 1's b is at eta 0.9: outside a jet at 0 (dR 0.9), inside one at 0.5
    matched = match_jets(truth, jet_evt, jet_eta, jet_phi, 0.8)
    assert matched.tolist() == [True, False, True]
    assert not match_jets(truth, jet_evt, jet_eta, jet_phi, 0.8, n_leptons=1).any()


def test_detector_response() -> None:
    det = DetectorResponse()
    # charged pion, soft photon, hard photon, neutron, forward charged pion (calorimeter)
    pid = np.array([211, 22, 22, 2112, 211])
    charge = np.array([1, 0, 0, 0, 1])
    p4 = np.array(
        [
            [10.0, 0, 0, 10.0],
            [0.5, 0, 0, 0.5],
            [50.0, 0, 0, 50.0],
            [0, 20.0, 0, 20.0],
            [1.0, 0, 20.0, np.hypot(1.0, 20.0)],
        ]
    )
    keep, out = det.apply(p4, pid, charge, np.random.default_rng(0))
    keep2, out2 = det.apply(p4, pid, charge, np.random.default_rng(0))
    assert keep.tolist() == [True, False, True, True, True] == keep2.tolist()
    assert np.array_equal(out, out2)  # seeded
    ratio = out[:, 3] / p4[:, 3]
    assert np.allclose(out, p4 * ratio[:, None])  # direction (and E/|p|) kept
    assert abs(ratio[0] - 1) < 0.1 and not np.allclose(ratio, 1)
