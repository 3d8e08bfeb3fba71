"""Physics augmentations: what each must preserve, padding, determinism, config validation."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from colliderfm.data.features import particle_features
from colliderfm.data.schema import Batch
from colliderfm.errors import ConfigError
from colliderfm.physics import augment as A
from colliderfm.physics import kinematics as K


def make_parts(
    jets: list[list[tuple[float, float, float, float]]],
    slots: int | None = None,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> A.Particles:
    """Particles from per-jet lists of (pT, eta, phi, mass); charged pions and photons."""
    p = slots or max(1, max(len(j) for j in jets))
    v = torch.zeros(len(jets), p, 4, dtype=torch.float64)
    mask = torch.zeros(len(jets), p, dtype=torch.bool)
    rng = np.random.default_rng(seed)
    charge = torch.zeros(len(jets), p, dtype=dtype)
    pid = torch.zeros(len(jets), p, dtype=torch.long)
    for b, jet in enumerate(jets):
        for i, (p_t, eta, phi, m) in enumerate(jet):
            e = math.sqrt((p_t * math.cosh(eta)) ** 2 + m * m)
            v[b, i] = torch.tensor(
                [p_t * math.cos(phi), p_t * math.sin(phi), p_t * math.sinh(eta), e]
            )
            mask[b, i] = True
            q = int(rng.integers(-1, 2))
            charge[b, i], pid[b, i] = q, 211 * q if q else 22
    return A.Particles(v.to(dtype), mask, charge, pid)


def random_jets(
    n: int, seed: int = 0, lo: int = 1, hi: int = 40, width: float = 0.15, mass: float = 0.14
) -> list[list[tuple[float, float, float, float]]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(lo, hi + 1))
        eta0, phi0 = rng.uniform(-2, 2), rng.uniform(-math.pi, math.pi)
        out.append(
            [
                (
                    float(rng.exponential(20.0) + 0.5),
                    float(eta0 + rng.normal(0, width)),
                    float(phi0 + rng.normal(0, width)),
                    mass,
                )
                for _ in range(k)
            ]
        )
    return out


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def jet_p4(parts: A.Particles) -> torch.Tensor:
    return K.masked_sum(parts.vectors.double(), parts.mask)  # [B, 4]


def assert_padding_clean(parts: A.Particles) -> None:
    pad = ~parts.mask
    assert (parts.vectors[pad] == 0).all()
    assert (parts.charge[pad] == 0).all()
    assert (parts.type_id[pad] == 0).all()
    assert torch.isfinite(parts.vectors).all()


ALL: dict[str, Callable[..., A.Particles]] = {
    "rotate": A.rotate,
    "translate": partial(A.translate, sigma=0.5),
    "translate_uniform": partial(A.translate, sigma=0.5, distribution="uniform"),
    "boost_z": A.boost_z,
    "smear": A.smear,
    "collinear_split": partial(A.collinear_split, fraction=0.5),
    "collinear_split_dup": partial(A.collinear_split, fraction=0.5, mode="duplicate"),
    "add_soft": A.add_soft,
    "dropout": partial(A.dropout, rate=0.5),
}


# ---- common contract ----


@pytest.mark.parametrize("name", list(ALL))
def test_padding_stays_padding_and_counts_make_sense(name: str) -> None:
    parts = make_parts(random_jets(6, lo=1, hi=20) + [[]], slots=24)  # last row: all padding
    out = ALL[name](parts, generator=gen())
    assert_padding_clean(out)
    n_in, n_out = parts.counts, out.counts
    assert n_out[-1] == 0  # an empty jet stays empty
    assert (n_out[:-1] >= 1).all()
    if name.startswith(("collinear", "add_soft")):
        assert (n_out >= n_in).all() and out.mask.shape[1] <= 128
    elif name == "dropout":
        assert (n_out <= n_in).all()
    else:
        assert torch.equal(out.mask, parts.mask)


@pytest.mark.parametrize("name", list(ALL))
def test_same_seed_same_result(name: str) -> None:
    parts = make_parts(random_jets(5))
    a, b = ALL[name](parts, generator=gen(3)), ALL[name](parts, generator=gen(3))
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    c = ALL[name](parts, generator=gen(4))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("name", list(ALL))
def test_single_particle_jets_and_empty_rows_give_no_nan(name: str) -> None:
    parts = make_parts([[(50.0, 0.3, -3.1, 0.0)], [], [(1e-3, 4.0, 3.1, 0.5)], []], slots=3)
    out = ALL[name](parts, generator=gen())
    assert_padding_clean(out)
    assert out.counts[0] >= 1 and out.counts[2] >= 1
    assert out.counts[1] == 0 and out.counts[3] == 0


@pytest.mark.parametrize("name", list(ALL))
def test_probability_zero_is_identity(name: str) -> None:
    parts = make_parts(random_jets(4), slots=45)
    out = ALL[name](parts, p=0.0, generator=gen())
    for x, y in zip(parts, out, strict=True):
        assert torch.equal(x, y)


# ---- collinear splitting ----


def test_collinear_split_keeps_jet_four_momentum_and_adds_particles() -> None:
    parts = make_parts(random_jets(16, hi=60, mass=0.5))
    out = A.collinear_split(parts, fraction=0.3, generator=gen())
    assert (out.counts >= parts.counts).all() and out.counts.sum() > parts.counts.sum()
    before, after = jet_p4(parts), jet_p4(out)
    tol = 2e-6 * before[:, 3:].abs()  # float32 precision relative to the jet energy
    assert ((after - before).abs() <= tol + 1e-5).all()


def test_collinear_split_pairs_are_collinear_and_sum_to_original() -> None:
    parts = make_parts(
        [[(100.0, 0.5, 1.0, 2.0), (30.0, 0.6, 1.1, 0.0)]], slots=2, dtype=torch.float64
    )
    out = A.collinear_split(parts, fraction=1.0, zmin=0.2, generator=gen())
    assert out.counts.tolist() == [4] and out.mask.shape[1] == 4
    v = out.vectors[0]  # [4, 4]: originals in slots 0, 1; their soft parts in 2, 3
    torch.testing.assert_close(v[0] + v[2], parts.vectors[0, 0])
    torch.testing.assert_close(v[1] + v[3], parts.vectors[0, 1])
    for hard, soft in ((v[0], v[2]), (v[1], v[3])):
        z = soft[3] / (hard[3] + soft[3])
        assert 0.2 <= z <= 0.5
        torch.testing.assert_close(soft, z / (1 - z) * hard)  # same direction and velocity


def test_collinear_split_charge_modes() -> None:
    parts = make_parts([[(100.0, 0.0, 0.0, 0.14), (20.0, 0.1, 0.1, 0.0)]], slots=2)
    parts = parts._replace(charge=torch.tensor([[1.0, 0.0]]), type_id=torch.tensor([[211, 130]]))
    cons = A.collinear_split(parts, fraction=1.0, generator=gen())
    assert cons.charge[0].tolist() == [1.0, 0.0, 0.0, 0.0]  # total charge conserved
    assert cons.type_id[0].tolist() == [211, 130, 22, 130]  # charged -> photon emission
    dup = A.collinear_split(parts, fraction=1.0, mode="duplicate", generator=gen())
    assert dup.charge[0].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert dup.type_id[0].tolist() == [211, 130, 211, 130]


def test_collinear_split_respects_max_particles() -> None:
    parts = make_parts([[(10.0, 0.0, 0.0, 0.0)] * 5, [(10.0, 0.0, 0.0, 0.0)] * 2], slots=5)
    full = A.collinear_split(parts, fraction=1.0, max_particles=5, generator=gen())
    assert full.mask.shape[1] == 5 and full.counts.tolist() == [5, 4]  # no room in jet 0
    some = A.collinear_split(parts, fraction=1.0, max_particles=7, generator=gen())
    assert some.mask.shape[1] == 7 and some.counts.tolist() == [7, 4]
    torch.testing.assert_close(jet_p4(some), jet_p4(parts))


# ---- soft emissions ----


def test_vanishing_soft_emissions_keep_the_jet() -> None:
    parts = make_parts(random_jets(8))
    out = A.add_soft(parts, n=7, pt_scale=1e-6, generator=gen())
    assert (out.counts == parts.counts + 7).all()
    torch.testing.assert_close(jet_p4(out), jet_p4(parts), rtol=1e-6, atol=1e-4)


def test_soft_particles_are_neutral_and_inside_the_cone() -> None:
    parts = make_parts(random_jets(8, hi=10), slots=10)
    out = A.add_soft(parts, n=5, pt_scale=2.0, radius=0.4, generator=gen())
    new = out.mask.clone()
    new[:, :10] &= ~parts.mask
    assert (new.sum(1) == 5).all()
    assert (out.charge[new] == 0).all()
    assert set(out.type_id[new].tolist()) <= {22, 130}
    eta_j, phi_j = A._axis(parts.vectors, parts.mask)
    dr = K.delta_r(K.eta(out.vectors), K.phi(out.vectors), eta_j, phi_j)
    assert (dr[new] <= 0.4 + 1e-4).all()
    e = out.vectors[..., 3][new]
    assert (K.mass2(out.vectors)[new].abs() <= 1e-5 * e * e).all()  # massless in float32


def test_add_soft_respects_max_particles() -> None:
    parts = make_parts([[(10.0, 0.0, 0.0, 0.0)] * 4, [(10.0, 0.0, 0.0, 0.0)]], slots=4)
    out = A.add_soft(parts, n=3, max_particles=5, generator=gen())
    assert out.mask.shape[1] == 5 and out.counts.tolist() == [5, 4]


# ---- symmetry transformations ----


def test_boost_keeps_masses_and_pt_and_shifts_rapidity_uniformly() -> None:
    parts = make_parts(random_jets(10, mass=1.5), dtype=torch.float64)
    out = A.boost_z(parts, max_rapidity=2.0, generator=gen())
    m = parts.mask
    torch.testing.assert_close(K.pt(out.vectors)[m], K.pt(parts.vectors)[m])
    torch.testing.assert_close(
        K.mass(out.vectors)[m], K.mass(parts.vectors)[m], rtol=1e-9, atol=1e-9
    )
    torch.testing.assert_close(K.mass(jet_p4(out)), K.mass(jet_p4(parts)), rtol=1e-9, atol=1e-9)
    dy = torch.where(m, K.rapidity(out.vectors) - K.rapidity(parts.vectors), 0.0)  # [B, P]
    first = dy[:, :1]
    assert ((dy - first).abs()[m] < 1e-9).all() and first.abs().max() > 0.1
    assert first.abs().max() <= 2.0


def test_boost_float32_keeps_jet_mass() -> None:
    parts = make_parts(random_jets(10, mass=1.5))
    out = A.boost_z(parts, max_rapidity=1.0, generator=gen())
    torch.testing.assert_close(K.mass(jet_p4(out)), K.mass(jet_p4(parts)), rtol=1e-3, atol=1e-2)


def test_rotate_keeps_pt_and_mass_and_roughly_the_axis() -> None:
    parts = make_parts(random_jets(12, width=0.1, mass=0.5), dtype=torch.float64)
    out = A.rotate(parts, generator=gen())
    m = parts.mask
    torch.testing.assert_close(K.pt(out.vectors)[m], K.pt(parts.vectors)[m])
    torch.testing.assert_close(
        K.mass(out.vectors)[m], K.mass(parts.vectors)[m], rtol=1e-6, atol=1e-6
    )
    eta0, phi0 = A._axis(parts.vectors, m)
    eta1, phi1 = A._axis(out.vectors, m)
    assert (eta1 - eta0).abs().max() < 0.05 and K.delta_phi(phi1, phi0).abs().max() < 0.05
    d0 = K.delta_r(K.eta(parts.vectors), K.phi(parts.vectors), eta0, phi0)[m]
    d1 = K.delta_r(K.eta(out.vectors), K.phi(out.vectors), eta0, phi0)[m]
    torch.testing.assert_close(d0, d1)  # distance to the original axis is kept
    assert not torch.allclose(out.vectors, parts.vectors)


def test_rotate_turns_every_particle_by_the_same_angle_about_the_axis() -> None:
    # point-symmetric pairs about (eta, phi) = (0, 0): the axis stays exactly there
    jet = [
        (50.0, 0.1, 0.2, 0.0),
        (50.0, -0.1, -0.2, 0.0),
        (20.0, 0.3, -0.1, 0.0),
        (20.0, -0.3, 0.1, 0.0),
    ]
    parts = make_parts([jet] * 6, dtype=torch.float64)
    out = A.rotate(parts, max_angle=1.0, generator=gen())
    before = torch.atan2(K.phi(parts.vectors), K.eta(parts.vectors))  # [B, P] polar angle
    after = torch.atan2(K.phi(out.vectors), K.eta(out.vectors))
    turn = K.wrap_phi(after - before)  # [B, P]
    torch.testing.assert_close(turn, turn[:, :1].expand_as(turn))
    assert (turn.abs() <= 1.0 + 1e-9).all() and turn.abs().max() > 0.05
    r0 = torch.hypot(K.eta(parts.vectors), K.phi(parts.vectors))
    torch.testing.assert_close(torch.hypot(K.eta(out.vectors), K.phi(out.vectors)), r0)
    same = A.rotate(parts, max_angle=0.0, generator=gen())
    torch.testing.assert_close(same.vectors, parts.vectors)  # angle 0: identity


def test_translate_keeps_pt_and_mass_and_shifts_eta_uniformly() -> None:
    parts = make_parts(random_jets(10, mass=0.5), dtype=torch.float64)
    out = A.translate(parts, sigma=1.0, generator=gen())
    m = parts.mask
    torch.testing.assert_close(K.pt(out.vectors)[m], K.pt(parts.vectors)[m])
    torch.testing.assert_close(
        K.mass(out.vectors)[m], K.mass(parts.vectors)[m], rtol=1e-6, atol=1e-6
    )
    deta = torch.where(m, K.eta(out.vectors) - K.eta(parts.vectors), 0.0)
    dphi = torch.where(m, K.delta_phi(K.phi(out.vectors), K.phi(parts.vectors)), 0.0)
    assert ((deta - deta[:, :1]).abs()[m] < 1e-9).all()
    assert ((dphi - dphi[:, :1]).abs()[m] < 1e-9).all()
    assert deta[:, 0].abs().max() > 0.1


# ---- detector-like ----


def test_smear_with_zero_strength_is_identity() -> None:
    parts = make_parts(random_jets(6) + [[]])
    out = A.smear(parts, strength=0.0, generator=gen())
    for x, y in zip(parts, out, strict=True):
        assert torch.equal(x, y)


def test_smear_keeps_direction_and_positive_energy() -> None:
    parts = make_parts(random_jets(6), dtype=torch.float64)
    out = A.smear(parts, strength=3.0, generator=gen())
    m = parts.mask
    ratio = out.vectors[m] / parts.vectors[m]  # [N, 4]: one scale per particle
    torch.testing.assert_close(ratio, ratio[:, 3:].expand(-1, 4))
    assert (ratio[:, 3] > 0).all() and (ratio[:, 3] - 1).abs().max() > 0.01
    torch.testing.assert_close(K.eta(out.vectors)[m], K.eta(parts.vectors)[m])


def test_smear_resolution_improves_with_pt() -> None:
    soft = make_parts([[(1.0, 0.0, 0.0, 0.0)] * 400])
    hard = make_parts([[(400.0, 0.0, 0.0, 0.0)] * 400])
    s = A.smear(soft, generator=gen()).vectors[0, :, 3] / soft.vectors[0, :, 3]
    h = A.smear(hard, generator=gen()).vectors[0, :, 3] / hard.vectors[0, :, 3]
    assert s.std() > 5 * h.std()
    assert h.std().item() == pytest.approx(math.sqrt(0.5**2 / 400 + 0.02**2), rel=0.2)


def test_dropout_never_empties_a_jet_and_keeps_the_leader() -> None:
    parts = make_parts(random_jets(10) + [[]])
    out = A.dropout(parts, rate=1.0, generator=gen())
    assert out.counts.tolist() == [1] * 10 + [0]
    lead = torch.where(parts.mask, K.pt(parts.vectors), -1.0).argmax(1)
    assert out.mask[torch.arange(10), lead[:10]].all()
    none = A.dropout(parts, rate=0.0, generator=gen())
    assert torch.equal(none.mask, parts.mask)


# ---- batches and the composer ----


def batch_of(parts: A.Particles, feature_set: str = "part") -> Batch:
    feats = particle_features(parts.vectors, parts.mask, parts.charge, parts.type_id, feature_set)
    b = parts.mask.shape[0]
    return Batch(
        feats,
        parts.mask,
        torch.arange(b),
        torch.rand(b),
        parts.vectors,
        parts.charge,
        parts.type_id,
    )


def test_compact_packs_and_trims() -> None:
    parts = make_parts([[(5.0, 0, 0, 0)] * 3, [(5.0, 0, 0, 0)]], slots=6)
    parts = parts._replace(mask=torch.tensor([[0, 1, 0, 1, 0, 1], [0, 0, 0, 0, 1, 0]]).bool())
    packed = A.compact(A._clean(*parts))
    assert packed.mask.tolist() == [[True, True, True], [True, False, False]]
    assert A.compact(parts, size=5).mask.shape[1] == 5


def test_augmenter_returns_a_fresh_consistent_batch() -> None:
    parts = make_parts(random_jets(8, hi=30), slots=32)
    batch = batch_of(parts)
    aug = A.Augmenter({name: None for name in A.ORDER}, max_particles=40)
    out = aug(batch, gen())
    assert out is not batch and out.features.shape[0] == 8
    assert 32 <= out.mask.shape[1] <= 40
    assert torch.equal(out.labels, batch.labels) and torch.equal(out.weights, batch.weights)
    want = particle_features(out.vectors, out.mask, out.charge, out.type_id, "part")
    assert torch.equal(out.features, want)
    assert (out.mask.sum(1) >= 1).all()
    again = aug(batch, gen())
    assert torch.equal(out.features, again.features)
    assert len(aug.views(batch, 2, gen())) == 2


def test_augmenter_keeps_the_feature_set_and_defaults_to_jetclr() -> None:
    batch = batch_of(make_parts(random_jets(4)), "kinematic")
    out = A.Augmenter()(batch, gen())
    assert out.features.shape[-1] == 7
    assert [n for n, _ in A.Augmenter().steps] == [n for n in A.ORDER if n in A.JETCLR_DEFAULT]


def test_augmenter_order_is_fixed() -> None:
    a = A.Augmenter({"rotate": {}, "dropout": {"rate": 0.2}, "collinear_split": {}})
    b = A.Augmenter({"collinear_split": {}, "rotate": {}, "dropout": {"rate": 0.2}})
    assert [n for n, _ in a.steps] == ["collinear_split", "dropout", "rotate"]
    batch = batch_of(make_parts(random_jets(4)))
    assert torch.equal(a(batch, gen()).vectors, b(batch, gen()).vectors)


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"spin": {}}, "'spin'"),
        ({"rotate": {"angle": 1.0}}, "'angle'"),
        ({"dropout": {"p": 1.5}}, "augment.dropout.p"),
        ({"add_soft": {"n": 2.5}}, "augment.add_soft.n"),
        ({"smear": {"strength": "high"}}, "augment.smear.strength"),
        ({"translate": {"distribution": "cauchy"}}, "'cauchy'"),
        ({"collinear_split": {"zmin": 0.7}}, "augment.collinear_split.zmin"),
    ],
)
def test_augmenter_rejects_bad_configs(config: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        A.Augmenter(config)
    assert needle in str(err.value)


def test_config_error_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="rotate.*boost_z"):
        A.Augmenter({"spin": {}})
    with pytest.raises(ConfigError, match="max_angle"):
        A.Augmenter({"rotate": {"angle": 1.0}})


# ---- property-based ----


@st.composite
def jagged(draw: st.DrawFn) -> A.Particles:
    b = draw(st.integers(1, 5))
    counts = draw(st.lists(st.integers(0, 12), min_size=b, max_size=b))
    slots = max(1, max(counts)) + draw(st.integers(0, 3))
    kin = st.tuples(
        st.floats(1e-3, 2000.0),
        st.floats(-4.0, 4.0),
        st.floats(-math.pi, math.pi),
        st.floats(0.0, 5.0),
    )
    jets = [draw(st.lists(kin, min_size=c, max_size=c)) for c in counts]
    return make_parts(jets, slots=slots, seed=draw(st.integers(0, 100)))


@settings(max_examples=30, deadline=None)
@given(parts=jagged(), seed=st.integers(0, 2**31 - 1))
def test_full_augmenter_on_random_batches(parts: A.Particles, seed: int) -> None:
    config = {name: {"p": 1.0} for name in A.ORDER}
    config["collinear_split"]["fraction"] = 0.5
    out = A.Augmenter(config, max_particles=20)(batch_of(parts), gen(seed))
    assert torch.isfinite(out.features).all() and torch.isfinite(out.vectors).all()
    assert out.mask.shape[1] >= parts.mask.shape[1]
    n_in, n_out = parts.counts, out.mask.sum(1)
    assert ((n_out >= 1) == (n_in >= 1)).all()
    pad = ~out.mask
    assert (out.vectors[pad] == 0).all() and (out.features[pad] == 0).all()
    assert (out.vectors[..., 3][out.mask] >= 0).all()


@settings(max_examples=30, deadline=None)
@given(parts=jagged(), seed=st.integers(0, 2**31 - 1))
def test_collinear_split_preserves_four_momentum_property(parts: A.Particles, seed: int) -> None:
    out = A.collinear_split(parts, fraction=0.5, max_particles=16, generator=gen(seed))
    before, after = jet_p4(parts), jet_p4(out)
    scale = K.masked_sum(parts.vectors.double().abs(), parts.mask)  # [B, 4]
    assert ((after - before).abs() <= 1e-6 * scale + 1e-6).all()
    assert (out.counts >= parts.counts).all()
    assert_padding_clean(out)


@st.composite
def jagged64(draw: st.DrawFn) -> A.Particles:
    """Like :func:`jagged` but in float64, for exact invariants (empty jets included)."""
    b = draw(st.integers(1, 5))
    counts = draw(st.lists(st.integers(0, 12), min_size=b, max_size=b))
    slots = max(1, max(counts)) + draw(st.integers(0, 3))
    kin = st.tuples(
        st.floats(1e-2, 2000.0),
        st.floats(-4.0, 4.0),
        st.floats(-math.pi, math.pi),
        st.floats(0.0, 5.0),
    )
    jets = [draw(st.lists(kin, min_size=c, max_size=c)) for c in counts]
    return make_parts(jets, slots=slots, dtype=torch.float64, seed=draw(st.integers(0, 100)))


def assert_same_mass2(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> None:
    """Equal m^2 = E^2 - p^2 up to rounding relative to E^2 (masses can be ~0). A slightly
    negative input m^2 (rounding of a massless particle) may come out as 0: compare m^2 >= 0."""
    m2 = lambda v: (v[..., 3] ** 2 - (v[..., :3] ** 2).sum(-1)).clamp_min(0)  # noqa: E731
    scale = torch.maximum(a[..., 3] ** 2, b[..., 3] ** 2)
    assert ((m2(a) - m2(b)).abs()[mask] <= 1e-9 * scale[mask] + 1e-9).all()


SYMMETRIES = {
    "rotate": A.rotate,
    "translate": partial(A.translate, sigma=0.5),
    "boost_z": partial(A.boost_z, max_rapidity=2.0),
}


@settings(max_examples=25, deadline=None)
@given(parts=jagged64(), seed=st.integers(0, 2**31 - 1), name=st.sampled_from(list(SYMMETRIES)))
def test_symmetries_keep_pt_and_mass_property(parts: A.Particles, seed: int, name: str) -> None:
    """Rotations, translations and longitudinal boosts keep each particle's pT and mass, keep
    padding as padding, and never make NaN."""
    out = SYMMETRIES[name](parts, generator=gen(seed))
    m = parts.mask
    assert torch.equal(out.mask, m)
    assert_padding_clean(out)
    torch.testing.assert_close(K.pt(out.vectors)[m], K.pt(parts.vectors)[m], rtol=1e-9, atol=1e-9)
    assert_same_mass2(out.vectors, parts.vectors, m)
    if name == "boost_z":  # a boost along z keeps the jet's invariant mass too
        before, after = jet_p4(parts), jet_p4(out)
        scale = torch.maximum(before[:, 3], after[:, 3]) ** 2
        mj = lambda p4: (p4[:, 3] ** 2 - (p4[:, :3] ** 2).sum(-1)).clamp_min(0)  # noqa: E731
        assert ((mj(after) - mj(before)).abs() <= 1e-9 * scale + 1e-9).all()


@settings(max_examples=25, deadline=None)
@given(parts=jagged(), seed=st.integers(0, 2**31 - 1), name=st.sampled_from(list(ALL)))
def test_every_augmentation_keeps_padding_and_finiteness_property(
    parts: A.Particles, seed: int, name: str
) -> None:
    """Random jagged float32 batches: padding stays padding, no NaN/inf, no jet is emptied or
    filled from nothing, energies stay non-negative."""
    out = ALL[name](parts, generator=gen(seed))
    assert_padding_clean(out)
    assert ((out.counts >= 1) == (parts.counts >= 1)).all()
    assert (out.vectors[..., 3][out.mask] >= 0).all()
