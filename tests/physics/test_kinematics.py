"""Kinematics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from colliderfm.physics import kinematics as K


def vec(*rows: tuple[float, float, float, float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def test_pt_eta_phi_simple_cases() -> None:
    v = vec(
        (3.0, 4.0, 0.0, 5.0),
        (1.0, 0.0, math.sinh(1.0), math.cosh(1.0)),
        (0.0, 2.0, -2.0 * math.sinh(0.5), 3.0),
        (-1.0, 0.0, 0.0, 1.0),
    )
    torch.testing.assert_close(K.pt(v), vec((5.0, 1.0, 2.0, 1.0))[0])
    torch.testing.assert_close(K.eta(v), vec((0.0, 1.0, -0.5, 0.0))[0])
    torch.testing.assert_close(K.phi(v), vec((math.atan2(4, 3), 0.0, math.pi / 2, -math.pi))[0])


def test_eta_is_zero_along_the_beam_and_for_zero_vectors() -> None:
    v = vec((0.0, 0.0, 5.0, 5.0), (0.0, 0.0, 0.0, 0.0))
    assert K.eta(v).tolist() == [0.0, 0.0]
    assert K.phi(v).tolist() == [0.0, 0.0]


def test_rapidity_hand_computed() -> None:
    # (E + pz) / (E - pz) = 8 / 2 -> y = ln 2; a massless particle has y = eta.
    v = vec((0.0, 0.0, 3.0, 5.0), (1.0, 0.0, math.sinh(1.2), math.cosh(1.2)), (0, 0, 0, 0))
    torch.testing.assert_close(K.rapidity(v), vec((math.log(2.0), 1.2, 0.0))[0])


def test_mass_and_mass2() -> None:
    v = vec((1.0, 2.0, 2.0, 5.0), (3.0, 4.0, 12.0, 13.0), (3.0, 0.0, 0.0, 1.0))
    torch.testing.assert_close(K.mass2(v), vec((16.0, 0.0, -8.0))[0])
    torch.testing.assert_close(K.mass(v), vec((4.0, 0.0, 0.0))[0])  # spacelike clipped to 0


def test_wrap_phi_range_and_values() -> None:
    x = torch.tensor(
        [0.0, math.pi, -math.pi, 1.5 * math.pi, -1.5 * math.pi, 7.0], dtype=torch.float64
    )
    want = [0.0, -math.pi, -math.pi, -0.5 * math.pi, 0.5 * math.pi, 7.0 - 2 * math.pi]
    torch.testing.assert_close(K.wrap_phi(x), torch.tensor(want, dtype=torch.float64))
    many = torch.linspace(-50, 50, 10001, dtype=torch.float32)
    w = K.wrap_phi(many)
    assert (w >= -np.float32(math.pi)).all() and (w < np.float32(math.pi)).all()


def test_delta_phi_and_delta_r_wrap_across_pi() -> None:
    a, b = torch.tensor(3.0, dtype=torch.float64), torch.tensor(-3.0, dtype=torch.float64)
    torch.testing.assert_close(
        K.delta_phi(a, b), torch.tensor(6.0 - 2 * math.pi, dtype=torch.float64)
    )
    dr = K.delta_r(torch.tensor(0.3), a.float(), torch.tensor(0.0), b.float())
    assert dr.item() == pytest.approx(math.hypot(0.3, 2 * math.pi - 6.0), rel=1e-5)


def test_masked_sum_ignores_padding() -> None:
    v = torch.tensor([[[1.0, 2, 3, 4], [10, 20, 30, 40], [9, 9, 9, 9]]])  # [1, 3, 4]
    mask = torch.tensor([[True, True, False]])
    assert K.masked_sum(v, mask).tolist() == [[11.0, 22.0, 33.0, 44.0]]


def test_from_pt_eta_phi_e_round_trip() -> None:
    p_t = torch.tensor([2.0, 50.0], dtype=torch.float64)
    eta = torch.tensor([-1.3, 0.7], dtype=torch.float64)
    phi = torch.tensor([2.5, -0.4], dtype=torch.float64)
    v = K.from_pt_eta_phi_e(p_t, eta, phi, p_t * torch.cosh(eta))
    torch.testing.assert_close(K.pt(v), p_t)
    torch.testing.assert_close(K.eta(v), eta)
    torch.testing.assert_close(K.phi(v), phi)
    torch.testing.assert_close(K.mass(v), torch.zeros(2, dtype=torch.float64), atol=1e-6, rtol=0)


def test_boost_z_particle_at_rest() -> None:
    # beta = 0.6 -> gamma = 1.25: (0, 0, 0, m) -> (0, 0, -0.75 m, 1.25 m); y shifts by -ln 2.
    v = vec((0.0, 0.0, 0.0, 2.0), (1.0, 0.5, 3.0, 5.0)).unsqueeze(0)  # [1, 2, 4]
    out = K.boost_z(v, torch.tensor([0.6], dtype=torch.float64))
    torch.testing.assert_close(out[0, 0], vec((0.0, 0.0, -1.5, 2.5))[0])
    torch.testing.assert_close(K.mass(out), K.mass(v))
    torch.testing.assert_close(K.pt(out), K.pt(v))
    torch.testing.assert_close(K.rapidity(out[:, 1]), K.rapidity(v[:, 1]) - math.log(2.0))


def test_rotate_z_quarter_turn() -> None:
    v = vec((1.0, 0.0, 2.0, 3.0)).unsqueeze(0)  # [1, 1, 4]
    out = K.rotate_z(v, torch.tensor([math.pi / 2], dtype=torch.float64))
    torch.testing.assert_close(out, vec((0.0, 1.0, 2.0, 3.0)).unsqueeze(0))


def test_numpy_twins_match_torch() -> None:
    rng = np.random.default_rng(0)
    px, py, pz = (rng.normal(0, 10, 100) for _ in range(3))
    px[0] = py[0] = 0.0  # along the beam
    px[1], py[1] = -1.0, 0.0  # phi = pi -> -pi
    v = torch.from_numpy(np.stack([px, py, pz, np.zeros(100)], -1))
    np.testing.assert_allclose(K.np_phi(px, py), K.phi(v).numpy(), atol=1e-12)
    np.testing.assert_allclose(K.np_eta(px, py, pz), K.eta(v).numpy(), atol=1e-12)
    assert K.np_phi(np.array([-1.0]), np.array([0.0]))[0] == -np.pi
