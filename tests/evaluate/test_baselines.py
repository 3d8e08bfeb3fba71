"""One-variable baselines: the variables by hand, metrics on shards, limits and refusals."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from synth import write_synthetic_shards
from synth_events import write_event_shards

from colliderfm.data.schema import Batch, ObjectType
from colliderfm.evaluate.baselines import BASELINES, baseline_scores, simple_baselines
from colliderfm.evaluate.metrics import auc


def _batch(vectors: list[list[list[float]]], types: list[list[int]] | None = None) -> Batch:
    v = torch.tensor(vectors, dtype=torch.float32)  # [B, P, 4]
    mask = v[..., 3] > 0
    return Batch(
        features=torch.zeros(*v.shape[:2], 1),
        mask=mask,
        labels=torch.zeros(v.shape[0], dtype=torch.long),
        weights=torch.ones(v.shape[0]),
        vectors=v,
        type_id=None if types is None else torch.tensor(types),
    )


def test_jet_mass_and_multiplicity_by_hand() -> None:
    # two massless 50 GeV particles back to back in x: m = 100; padding (E = 0) carries garbage
    b = _batch(
        [
            [[50, 0, 0, 50], [-50, 0, 0, 50], [0, 0, 0, 0]],
            [[3, 4, 0, 5], [0, 0, 0, 0], [9, 9, 9, 0]],
        ]
    )
    s = baseline_scores(b, "jets")
    assert list(s) == list(BASELINES["jets"])
    torch.testing.assert_close(s["m_jet"], torch.tensor([100.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(s["n_particles"], torch.tensor([2.0, 1.0], dtype=torch.float64))


def test_event_ht_counts_jets_only_and_m_all_sums_everything() -> None:
    jet, bjet, mu, met = (
        int(t) for t in (ObjectType.JET, ObjectType.BJET, ObjectType.MUON, ObjectType.MET)
    )
    vec = [[[30, 40, 0, 50], [0, 60, 80, 100], [10, 0, 0, 10], [-40, -100, 0, 107.7033]]]
    b = _batch(vec, [[jet, bjet, mu, met]])
    s = baseline_scores(b, "events")
    assert list(s) == list(BASELINES["events"])
    assert s["HT"].item() == pytest.approx(50.0 + 60.0)  # pT of the two jets; not the muon or MET
    e, px, py, pz = 50 + 100 + 10 + 107.7033, 0.0, 0.0, 80.0
    assert s["m_all"].item() == pytest.approx(
        math.sqrt(e * e - px * px - py * py - pz * pz), rel=1e-5
    )
    with pytest.raises(ValueError, match="types"):
        baseline_scores(_batch(vec), "events")
    with pytest.raises(ValueError, match="kind"):
        baseline_scores(b, "photons")


def test_simple_baselines_on_jet_and_event_shards(tmp_path: Path) -> None:
    write_synthetic_shards(tmp_path / "jets", n=300, seed=1)
    jets = simple_baselines(tmp_path / "jets", "jets", max_particles=64, feature_set="part")
    assert list(jets) == ["m_jet", "n_particles"]
    for m in jets.values():
        assert 0.0 <= m["auc"] <= 1.0 and m["n"] == 300
        assert set(m["rejection"]) == {"0.3", "0.5"} and set(m["sic"]) == {"0.3", "0.5"}
        assert "accuracy" not in m and m["description"]
    # class-1 synthetic jets are wider: the summed mass must separate them
    assert jets["m_jet"]["auc"] > 0.6
    limited = simple_baselines(
        tmp_path / "jets", "jets", 64, "part", max_examples=120, batch_size=50
    )
    assert all(m["n"] == 120 for m in limited.values())
    write_event_shards(tmp_path / "events", n=200, seed=2)
    events = simple_baselines(tmp_path / "events", "events", max_particles=16, feature_set="event")
    assert list(events) == ["HT", "m_all"] and all(m["n"] == 200 for m in events.values())


def test_non_binary_sources_have_no_baselines(tmp_path: Path) -> None:
    write_synthetic_shards(tmp_path / "three", n=90, seed=3, n_classes=3)
    assert simple_baselines(tmp_path / "three", "jets", 64, "part") == {}


def test_the_direction_is_fixed_not_fitted(tmp_path: Path) -> None:
    """The score is the variable itself: its AUC is the plain AUC of the variable."""
    write_synthetic_shards(tmp_path / "jets", n=200, seed=4)
    from colliderfm.data.stream import evaluation_stream

    labels, masses = [], []
    for b in evaluation_stream(tmp_path / "jets", 64, 64, "part"):
        labels.append(b.labels)
        masses.append(baseline_scores(b, "jets")["m_jet"])
    expected = auc(torch.cat(labels).numpy(), torch.cat(masses).numpy())
    got = simple_baselines(tmp_path / "jets", "jets", 64, "part")["m_jet"]["auc"]
    assert got == pytest.approx(expected)
