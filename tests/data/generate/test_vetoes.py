"""Early vetoes and the other generation-speed levers: thresholds, dry runs, no lost events."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from colliderfm.data.generate.event_processes import SUBPROCESSES, EventSettings
from colliderfm.data.generate.vetoes import EarlyVeto
from colliderfm.data.selection import Selection


def _need_generator() -> None:
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")


def test_vetoes_follow_the_selection() -> None:
    s = EventSettings()
    ttbar = s.veto("datalike/ttbar")
    assert ttbar is not None and ttbar.min_w_leptons == 1 and not ttbar.early_jets
    wjets, single = s.veto("datalike/wjets"), s.veto("datalike/singletop")
    assert wjets is not None and wjets.min_jets == 4  # the W hides at most its own tau jet
    assert single is not None and single.min_jets == 3  # the top hides up to b + tau jet
    assert wjets.jet_pt_min < s.jet_pt_min and wjets.jet_y_max > s.jet_eta_max
    assert s.veto("datalike/ttV") is None  # H -> tau tau / Z Z leptons: nothing to veto
    # a looser selection loosens the veto; no lepton required: no lepton check
    loose = dataclasses.replace(s, selection=Selection(min_leptons=0, min_bjets=1))
    v = loose.veto("datalike/wjets")
    assert v is not None and v.min_w_leptons == 0 and v.min_jets == 3
    assert loose.veto("datalike/ttbar") is None
    assert dataclasses.replace(s, early_veto=False).veto("datalike/wjets") is None
    assert all(
        s.veto(k) is None or s.veto(k).to_dict()["scale"] == 10.0  # type: ignore[union-attr]
        for k in SUBPROCESSES
    )


def test_veto_checks() -> None:
    assert not EarlyVeto().process_level and not EarlyVeto().early_jets
    assert EarlyVeto(min_w_leptons=1).process_level and EarlyVeto(min_jets=2).early_jets


@pytest.fixture(scope="module")
def wjets_dry() -> object:
    """W+jets (the most vetoed component) in dry run: every event's verdict and outcome."""
    _need_generator()
    from colliderfm.data.generate.pythia_events import EventUnit

    unit = EventUnit("datalike/wjets", EventSettings(), (21, 22), 3, dry_run=True)
    unit.generate(3, -1)
    return unit


def test_dry_run_records_a_verdict_per_event_and_vetoes_nothing(wjets_dry: object) -> None:
    unit = wjets_dry
    assert len(unit.verdicts) == unit.n_events > 0  # type: ignore[attr-defined]
    assert unit.n_vetoed == (0, 0)  # type: ignore[attr-defined]
    verdicts = np.array(unit.verdicts)  # type: ignore[attr-defined]
    assert 0.3 < verdicts[:, 0].mean() < 0.95  # most W+jets events cannot pass
    # the veto is a necessary condition: no selected event would have been vetoed
    assert verdicts[:, 1].sum() >= 3 and not (verdicts[:, 0] & verdicts[:, 1]).any()


def test_vetoing_run_counts_what_it_stopped() -> None:
    _need_generator()
    from colliderfm.data.generate.pythia_events import EventUnit

    unit = EventUnit("datalike/wjets", EventSettings(), (21, 22), 3)
    unit.generate(2, -1)
    proc, early = unit.n_vetoed
    assert proc == 0 and early > 0 and unit.verdicts == []  # W -> l nu is forced
    # the vetoed events are the ones that would have failed: the finished ones pass more often
    assert unit.cutflow[3] / unit.cutflow[0] > 2 * unit.cutflow[3] / (unit.n_events + proc + early)


def test_manifest_records_vetoes_and_rates(tmp_path: Path) -> None:
    _need_generator()
    from colliderfm.data.generate.events import generate_events

    m = generate_events(["datalike"], 3, tmp_path / "ev", seed=2, progress=False)
    src = m["source"]
    assert src["early_veto"]["datalike/ttbar"]["min_w_leptons"] == 1
    assert src["vetoed_columns"] == ["process_level", "early_jets"]
    proc, early = src["vetoed"]["datalike/ttbar"]
    assert proc > 0 and early == 0  # all-hadronic ttbar; ttbar has no early-jet check
    gen = src["cutflow"]["datalike/ttbar"][0]
    eff = src["selection_efficiency"]["datalike/ttbar"]
    assert eff == pytest.approx(3 / (gen + proc), abs=1e-5)
    assert src["selected_per_cpu_s"]["datalike/ttbar"] > 0


def test_every_passing_jet_is_kept() -> None:
    """Same seeds: the one-jet-per-event rule keeps a subset; QCD dijets give more jets."""
    _need_generator()
    from colliderfm.data.generate.pythia_jets import JetSettings, JetUnit

    out = {}
    for per_event in (1, 0):
        unit = JetUnit("qcd", JetSettings(jets_per_event=per_event), (5,), 5)
        out[per_event] = (unit._batch(120, 0), unit.n_selected)
    one, all_ = out[1][0], out[0][0]
    assert out[0][1] == len(all_) > len(one) == out[1][1] > 0
    key = {round(float(x), 3) for x in one.jet["jet_pt"]}
    assert key <= {round(float(x), 3) for x in all_.jet["jet_pt"]}


def test_fast_mode_turns_mpi_off(tmp_path: Path) -> None:
    _need_generator()
    from typer.testing import CliRunner

    from colliderfm.cli import app

    out = tmp_path / "fast"
    args = ["generate", "jets", "--process", "qcd", "--n", "3", "--out", str(out), "--fast"]
    args += ["--jets-per-event", "0"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "per CPU-second" in res.output
    from colliderfm.data.shards import read_manifest

    src = read_manifest(out)["source"]
    assert src["mpi"] is False and src["selected_per_cpu_s"]["qcd"] > 0
    assert src["jets_per_event"] == "all passing"
    assert any("PartonLevel:MPI = off" in line for line in src["pythia_settings"]["qcd"][0])
