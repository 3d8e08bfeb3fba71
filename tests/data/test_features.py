import math

import torch

from colliderfm.data.features import FEATURE_SETS, particle_features, particle_type_onehot


def _one_jet() -> tuple[torch.Tensor, torch.Tensor]:
    # two particles: pT 100 GeV at (eta 0, phi 0) and pT 50 GeV at (eta 0.1, phi -0.2)
    def vec(pt: float, eta: float, phi: float) -> list[float]:
        px, py, pz = pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)
        return [px, py, pz, math.sqrt(px * px + py * py + pz * pz)]

    v = torch.tensor([[vec(100, 0.0, 0.0), vec(50, 0.1, -0.2), [9.0, 9.0, 9.0, 9.0]]])
    return v, torch.tensor([[True, True, False]])


def test_hand_computed_values() -> None:
    v, mask = _one_jet()
    f = particle_features(
        v, mask, torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[211, 22, 0]]), "part"
    )
    assert f.shape == (1, 3, 13)
    jet = v[0, :2].sum(0)
    jet_pt = math.hypot(jet[0].item(), jet[1].item())
    assert math.isclose(f[0, 0, 0].item(), (math.log(100) - 1.7) * 0.7, rel_tol=1e-5)
    assert math.isclose(f[0, 1, 2].item(), (math.log(50 / jet_pt) + 4.7) * 0.7, rel_tol=1e-4)
    jet_phi = math.atan2(jet[1].item(), jet[0].item())
    assert math.isclose(f[0, 1, 5].item(), -0.2 - jet_phi, abs_tol=1e-5)
    assert f[0, 0, 7].item() == 1.0 and f[0, 0, 8].item() == 1.0  # charged hadron
    assert f[0, 1, 10].item() == 1.0  # photon
    assert torch.all(f[0, 2] == 0)  # padding is exactly zero


def test_kinematic_set_is_prefix() -> None:
    v, mask = _one_jet()
    full = particle_features(v, mask, None, None, "part")
    kin = particle_features(v, mask, None, None, "kinematic")
    assert kin.shape[-1] == len(FEATURE_SETS["kinematic"]) == 7
    assert torch.allclose(full[..., :7], kin)


def test_phi_wraparound() -> None:
    # a jet straddling phi = pi: dphi must be small, not ~2 pi
    pts = [(100.0, 3.1), (100.0, -3.1)]
    v = torch.tensor([[[p * math.cos(a), p * math.sin(a), 0.0, p] for p, a in pts]])
    f = particle_features(v, torch.ones(1, 2, dtype=torch.bool), None, None, "kinematic")
    assert f[0, :, 5].abs().max() < 0.1


def test_onehot_types() -> None:
    pid = torch.tensor([[211, -211, 130, 2112, 22, 11, -13, 0]])
    q = torch.tensor([[1.0, -1, 0, 0, 0, -1, 1, 0]])
    oh = particle_type_onehot(pid, q)
    expect = [0, 0, 1, 1, 2, 3, 4]
    for i, k in enumerate(expect):
        assert oh[0, i].argmax().item() == k and oh[0, i].sum() == 1
    assert oh[0, 7].sum() == 0  # unknown
