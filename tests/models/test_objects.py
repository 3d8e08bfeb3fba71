"""ObjectTransformer: registry and presets, event pair features (MET), symmetries on events."""

from __future__ import annotations

import math

import pytest
import torch
from synth_events import synthetic_events

from colliderfm.data.schema import ObjectType
from colliderfm.models.objects import (
    ObjectTransformer,
    event_pair_features,
    transverse_only,
)
from colliderfm.models.registry import create_model, list_models
from colliderfm.physics import kinematics as K

_SIZES = {"tiny": (20e3, 80e3), "small": (0.15e6, 0.4e6), "base": (1.5e6, 1.9e6)}


def test_registered_with_presets_and_parameter_counts() -> None:
    rows = {(name, preset): n for name, preset, n in list_models()}
    for preset, (lo, hi) in _SIZES.items():
        assert lo <= rows[("objt", preset)] <= hi, (preset, rows[("objt", preset)])
    model = create_model("objt", "tiny")
    assert isinstance(model, ObjectTransformer) and model.in_dim == 11 and model.dim == 32


def test_events_shapes_and_wrong_width() -> None:
    torch.manual_seed(0)
    model = create_model("objt", "tiny").eval()
    b = synthetic_events(5, seed=1)
    tokens = model(b.features, b.mask, b.vectors)
    assert tokens.shape == (5, b.mask.shape[1], 32)
    assert (tokens[~b.mask] == 0).all()
    assert model.embed(b.features, b.mask, b.vectors).shape == (5, 32)
    with pytest.raises(ValueError, match=r"\[B, P, 11\]"):
        model(b.features[..., :7], b.mask, b.vectors)
    with pytest.raises(ValueError, match="vectors"):
        model(b.features, b.mask)
    assert create_model("objt", "tiny", pair_features=False)(b.features, b.mask).shape[-1] == 32


@pytest.mark.parametrize("kw", [{}, {"pooling": "mean"}, {"pair_features": False}, {"pack": False}])
def test_event_permutation_and_padding_invariance(kw: dict) -> None:
    torch.manual_seed(0)
    model = create_model("objt", "tiny", **kw).eval()
    b = synthetic_events(16, seed=2)
    s = synthetic_events(16, seed=2, shuffle=True)  # the same events, objects reordered
    with torch.no_grad():
        ref = model.embed(b.features, b.mask, b.vectors)
        out = model.embed(s.features, s.mask, s.vectors)
        wide = model.embed(
            torch.nn.functional.pad(b.features, (0, 0, 0, 4), value=float("nan")),
            torch.nn.functional.pad(b.mask, (0, 4)),
            torch.nn.functional.pad(b.vectors, (0, 0, 0, 4), value=1e5),
        )
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(wide, ref, atol=1e-5, rtol=1e-5)


def test_pair_features_by_hand_with_met() -> None:
    pt1, eta2, phi2, pt2, m2 = 40.0, 0.7, 1.1, 60.0, 10.0
    e2 = math.sqrt((pt2 * math.cosh(eta2)) ** 2 + m2**2)
    pz1 = 1.0  # (an object with pz = 0 and E = pT exactly would count as transverse-only)
    e1 = math.hypot(pt1, pz1)
    lep = [pt1, 0.0, pz1, e1]  # massless, phi = 0
    jet = [pt2 * math.cos(phi2), pt2 * math.sin(phi2), pt2 * math.sinh(eta2), e2]
    met_pt, met_phi = 50.0, -2.0
    met = [met_pt * math.cos(met_phi), met_pt * math.sin(met_phi), 0.0, met_pt]
    v = torch.tensor([[lep, jet, met, [0.0] * 4]], dtype=torch.float64)
    assert transverse_only(v).tolist() == [[False, False, True, False]]
    u = event_pair_features(v)  # [1, 4, 4, 2]
    y1 = 0.5 * math.log((e1 + pz1) / (e1 - pz1))
    y2 = 0.5 * math.log((e2 + jet[2]) / (e2 - jet[2]))
    assert u[0, 0, 1, 0].item() == pytest.approx(math.log(math.hypot(y2 - y1, phi2)), rel=1e-5)
    m2_lj = m2**2 + 2 * (e1 * e2 - pt1 * jet[0] - pz1 * jet[2])  # m_lep = 0
    assert u[0, 0, 1, 1].item() == pytest.approx(math.log(m2_lj), rel=1e-5)
    # lepton-MET: |delta phi| and the W-like transverse mass
    assert u[0, 0, 2, 0].item() == pytest.approx(math.log(2.0), rel=1e-5)
    mt2 = 2 * pt1 * met_pt * (1 - math.cos(met_phi))
    assert u[0, 0, 2, 1].item() == pytest.approx(math.log(mt2), rel=1e-5)
    torch.testing.assert_close(u[0], u[0].transpose(0, 1))  # symmetric
    assert torch.isfinite(u).all()


def test_pair_features_invariant_under_rotation_and_longitudinal_boost() -> None:
    b = synthetic_events(32, seed=3)
    v = b.vectors.double()
    met = (b.type_id == ObjectType.MET).unsqueeze(-1)
    angle = torch.rand(32, dtype=torch.float64) * 6
    beta = torch.rand(32, dtype=torch.float64) * 1.2 - 0.6
    moved = torch.where(met, K.rotate_z(v, angle), K.boost_z(K.rotate_z(v, angle), beta))
    ref, out = event_pair_features(v), event_pair_features(moved)
    real = b.mask.unsqueeze(2) & b.mask.unsqueeze(1)  # [B, N, N]
    torch.testing.assert_close(out[real], ref[real], atol=1e-4, rtol=1e-4)


def test_bf16_autocast_trains_on_events() -> None:
    torch.manual_seed(0)
    model = create_model("objt", "tiny").train()
    b = synthetic_events(8, seed=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tokens, pooled = model.forward_both(b.features, b.mask, b.vectors)
    (pooled.float().square().sum() + tokens.float().square().sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
