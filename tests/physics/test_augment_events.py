"""Event augmentations: symmetries keep what they should, MET handling, padding, config."""

from __future__ import annotations

import pytest
import torch
from synth_events import synthetic_events

from colliderfm.data.features import event_features
from colliderfm.data.schema import ObjectType
from colliderfm.errors import ConfigError
from colliderfm.physics import kinematics as K
from colliderfm.physics.augment_events import (
    EVENT_DEFAULT,
    EventAugmenter,
    Objects,
    boost_transverse,
    boost_z,
    from_batch,
    reflect_eta,
    rotate_phi,
    smear,
)


def _events(n: int = 64, seed: int = 0) -> Objects:
    b = synthetic_events(n, seed=seed, shuffle=True)  # real objects scattered among padding
    ev = from_batch(b)
    return ev._replace(vectors=ev.vectors.double())


def _gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _total_pt(ev: Objects) -> torch.Tensor:
    """``[B]`` magnitude of the summed transverse momentum of all objects (MET included)."""
    return K.pt(K.masked_sum(ev.vectors, ev.mask))


def _pair_m2(ev: Objects) -> torch.Tensor:
    """``[B, N, N]`` invariant mass^2 of every pair of objects."""
    s = ev.vectors.unsqueeze(2) + ev.vectors.unsqueeze(1)  # [B, N, N, 4]
    return s[..., 3] ** 2 - (s[..., :3] ** 2).sum(-1)


def _assert_padding_untouched(out: Objects, ev: Objects) -> None:
    assert torch.equal(out.mask, ev.mask) and torch.equal(out.obj_type, ev.obj_type)
    assert (out.vectors[~ev.mask] == 0).all()


def test_rotate_phi_keeps_every_pt_and_total_pt() -> None:
    ev = _events()
    out = rotate_phi(ev, p=1.0, generator=_gen())
    m = ev.mask
    torch.testing.assert_close(K.pt(out.vectors)[m], K.pt(ev.vectors)[m])
    torch.testing.assert_close(_total_pt(out), _total_pt(ev))
    torch.testing.assert_close(K.eta(out.vectors)[m], K.eta(ev.vectors)[m])
    assert not torch.allclose(K.phi(out.vectors)[m], K.phi(ev.vectors)[m])
    met = out.is_met
    assert (out.vectors[met][:, 2] == 0).all()  # MET stays transverse
    _assert_padding_untouched(out, ev)


def test_boost_z_keeps_pair_masses_and_pt_and_met() -> None:
    ev = _events()
    out = boost_z(ev, p=1.0, max_rapidity=1.0, generator=_gen())
    m = ev.mask
    vis = m & ~ev.is_met
    pair = vis.unsqueeze(2) & vis.unsqueeze(1)  # [B, N, N] visible pairs
    torch.testing.assert_close(_pair_m2(out)[pair], _pair_m2(ev)[pair], rtol=1e-9, atol=1e-6)
    torch.testing.assert_close(K.pt(out.vectors)[m], K.pt(ev.vectors)[m])
    torch.testing.assert_close(out.vectors[ev.is_met], ev.vectors[ev.is_met])  # MET unchanged
    d_eta = K.rapidity(out.vectors)[vis] - K.rapidity(ev.vectors)[vis]
    assert d_eta.abs().max() > 0.01  # it did boost
    _assert_padding_untouched(out, ev)


def test_reflect_eta_keeps_pt_and_flips_eta() -> None:
    ev = _events()
    out = reflect_eta(ev, p=1.0, generator=_gen())
    m = ev.mask
    torch.testing.assert_close(K.pt(out.vectors)[m], K.pt(ev.vectors)[m])
    torch.testing.assert_close(K.eta(out.vectors)[m], -K.eta(ev.vectors)[m])
    torch.testing.assert_close(out.vectors[ev.is_met], ev.vectors[ev.is_met])
    _assert_padding_untouched(out, ev)


def test_smear_with_zero_width_is_identity() -> None:
    ev = _events()
    assert torch.equal(smear(ev, strength=0.0, generator=_gen()).vectors, ev.vectors)
    zero = smear(ev, lepton=0.0, jet_stochastic=0.0, jet_constant=0.0, met=0.0, generator=_gen())
    assert torch.equal(zero.vectors, ev.vectors)


def test_smear_widths_by_type_and_met_stays_transverse() -> None:
    ev = _events(400)
    out = smear(ev, p=1.0, generator=_gen())
    ratio = K.pt(out.vectors) / K.pt(ev.vectors).clamp_min(1e-9)  # [B, N]
    t = ev.obj_type
    lep = (t == ObjectType.ELECTRON) | (t == ObjectType.MUON)
    jets = (t == ObjectType.JET) | (t == ObjectType.BJET)
    s_lep, s_jet, s_met = (ratio[x].std().item() for x in (lep, jets, ev.is_met))
    assert s_lep < 0.02 and 0.05 < s_jet < 0.3 and 0.07 < s_met < 0.13
    met = out.vectors[ev.is_met]
    assert (met[:, 2] == 0).all()
    torch.testing.assert_close(met[:, 3], K.pt(met), rtol=1e-6, atol=1e-6)  # float32 inputs
    # direction kept: eta and phi unchanged
    m = ev.mask & ~ev.is_met
    torch.testing.assert_close(K.eta(out.vectors)[m], K.eta(ev.vectors)[m])
    _assert_padding_untouched(out, ev)


@pytest.mark.parametrize("met", ["recoil", "boost"])
def test_boost_transverse_keeps_masses_and_treats_met(met: str) -> None:
    ev = _events()
    out = boost_transverse(ev, p=1.0, max_beta=0.1, met=met, generator=_gen())
    vis = ev.mask & ~ev.is_met
    torch.testing.assert_close(
        K.mass2(out.vectors)[vis], K.mass2(ev.vectors)[vis], atol=1e-6, rtol=1e-9
    )
    pair = vis.unsqueeze(2) & vis.unsqueeze(1)
    torch.testing.assert_close(_pair_m2(out)[pair], _pair_m2(ev)[pair], rtol=1e-9, atol=1e-6)
    new_met = out.vectors[ev.is_met]
    assert (new_met[:, 2] == 0).all()
    torch.testing.assert_close(new_met[:, 3], K.pt(new_met))
    if met == "recoil":  # visible + MET transverse momentum is unchanged
        tot_in = K.masked_sum(ev.vectors, ev.mask)[:, :2]
        tot_out = K.masked_sum(out.vectors, ev.mask)[:, :2]
        torch.testing.assert_close(tot_out, tot_in, atol=1e-9, rtol=1e-9)
    assert not torch.allclose(out.vectors[vis], ev.vectors[vis])
    _assert_padding_untouched(out, ev)


def test_probability_zero_changes_nothing_and_seeds_repeat() -> None:
    ev = _events()
    for fn in (rotate_phi, boost_z, reflect_eta, boost_transverse, smear):
        assert torch.equal(fn(ev, p=0.0, generator=_gen()).vectors, ev.vectors), fn.__name__
        a, b = fn(ev, p=0.5, generator=_gen(3)), fn(ev, p=0.5, generator=_gen(3))
        assert torch.equal(a.vectors, b.vectors), fn.__name__


def test_augmenter_rebuilds_features_and_keeps_padding() -> None:
    batch = synthetic_events(32, seed=4, shuffle=True)
    aug = EventAugmenter(EVENT_DEFAULT)
    out = aug(batch, generator=_gen())
    assert out.features.shape == batch.features.shape
    assert torch.equal(out.mask, batch.mask) and torch.equal(out.type_id, batch.type_id)
    torch.testing.assert_close(out.features, event_features(out.vectors, out.mask, out.type_id))
    assert (out.features[~batch.mask] == 0).all() and (out.vectors[~batch.mask] == 0).all()
    assert torch.equal(out.labels, batch.labels)
    assert EventAugmenter({})(batch) is batch


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"rotate": {}}, "unknown event augmentation 'rotate'"),
        ({"smear": {"sigma": 1.0}}, "unknown parameter 'sigma'"),
        ({"boost_z": {"p": 2.0}}, r"augment.boost_z.p: 2.0 is outside"),
        ({"boost_transverse": {"met": "drop"}}, "not one of"),
        ({"smear": {"strength": "big"}}, "expected a number"),
    ],
)
def test_bad_config_is_config_error(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EventAugmenter(config)
