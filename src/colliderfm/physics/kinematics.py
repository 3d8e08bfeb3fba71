"""Physics conventions in one place: batched, masked kinematics on four-vectors.

Conventions:
* four-vectors are ``(px, py, pz, E)`` in GeV on the last axis;
* ``phi`` is wrapped to ``[-pi, pi)``;
* ``eta`` is computed from ``pz`` and ``|p|`` (``asinh(pz / pT)``), finite for ``pT > 0``;
* masses come from ``E^2 - p^2`` clipped at 0.
"""

from __future__ import annotations

import math

import numpy as np
import torch

EPS = 1e-8


def wrap_phi(phi: torch.Tensor) -> torch.Tensor:
    """Wrap angles to ``[-pi, pi)``.

    Args:
        phi: angles in radians, any shape.

    Returns:
        Wrapped angles, same shape.
    """
    return torch.remainder(phi + math.pi, 2 * math.pi) - math.pi


def pt(v: torch.Tensor) -> torch.Tensor:
    """Transverse momentum in GeV.

    Args:
        v: ``[..., 4]`` four-vectors.

    Returns:
        ``[...]`` pT.
    """
    return torch.hypot(v[..., 0], v[..., 1])


def eta(v: torch.Tensor) -> torch.Tensor:
    """Pseudorapidity ``asinh(pz / pT)`` (0 where pT is 0).

    Args:
        v: ``[..., 4]`` four-vectors.

    Returns:
        ``[...]`` eta.
    """
    p_t = pt(v)
    return torch.asinh(v[..., 2] / p_t.clamp_min(EPS)) * (p_t > 0)


def phi(v: torch.Tensor) -> torch.Tensor:
    """Azimuth in ``[-pi, pi)``.

    Args:
        v: ``[..., 4]`` four-vectors.

    Returns:
        ``[...]`` phi in radians.
    """
    return wrap_phi(torch.atan2(v[..., 1], v[..., 0]))


def rapidity(v: torch.Tensor) -> torch.Tensor:
    """Rapidity ``0.5 ln((E+pz)/(E-pz))``.

    Args:
        v: ``[..., 4]`` four-vectors.

    Returns:
        ``[...]`` rapidity (0 for zero vectors).
    """
    e, pz = v[..., 3], v[..., 2]
    return 0.5 * torch.log((e + pz).clamp_min(EPS) / (e - pz).clamp_min(EPS)) * (e > 0)


def mass2(v: torch.Tensor) -> torch.Tensor:
    """Squared invariant mass ``E^2 - p^2`` (not clipped).

    Args:
        v: ``[..., 4]`` four-vectors.

    Returns:
        ``[...]`` m^2 in GeV^2.
    """
    return v[..., 3] ** 2 - (v[..., :3] ** 2).sum(-1)


def mass(v: torch.Tensor) -> torch.Tensor:
    """Invariant mass with ``E^2 - p^2`` clipped at 0.

    Args:
        v: ``[..., 4]`` four-vectors.

    Returns:
        ``[...]`` mass in GeV.
    """
    return mass2(v).clamp_min(0.0).sqrt()


def masked_sum(v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of the real particles' four-vectors (the jet four-momentum).

    Args:
        v: ``[B, P, 4]`` four-vectors.
        mask: ``[B, P]`` bool, True for real particles.

    Returns:
        ``[B, 4]`` summed four-vector.
    """
    return (v * mask.unsqueeze(-1)).sum(1)


def delta_phi(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Signed azimuthal difference ``a - b`` wrapped to ``[-pi, pi)``.

    Args:
        a: angles in radians.
        b: angles in radians (broadcastable).

    Returns:
        Wrapped difference.
    """
    return wrap_phi(a - b)


def delta_r(
    eta1: torch.Tensor, phi1: torch.Tensor, eta2: torch.Tensor, phi2: torch.Tensor
) -> torch.Tensor:
    """Angular distance ``sqrt(d_eta^2 + d_phi^2)``.

    Args:
        eta1, phi1: first set of directions.
        eta2, phi2: second set (broadcastable).

    Returns:
        Delta R.
    """
    return torch.hypot(eta1 - eta2, delta_phi(phi1, phi2))


def from_pt_eta_phi_e(
    p_t: torch.Tensor, eta_: torch.Tensor, phi_: torch.Tensor, e: torch.Tensor
) -> torch.Tensor:
    """Build four-vectors from (pT, eta, phi, E).

    Args:
        p_t: transverse momentum, GeV.
        eta_: pseudorapidity.
        phi_: azimuth, radians.
        e: energy, GeV.

    Returns:
        ``[..., 4]`` (px, py, pz, E).
    """
    return torch.stack(
        (p_t * torch.cos(phi_), p_t * torch.sin(phi_), p_t * torch.sinh(eta_), e), dim=-1
    )


def boost_z(v: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Longitudinal Lorentz boost along z with velocity ``beta`` (per example).

    Args:
        v: ``[B, P, 4]`` four-vectors.
        beta: ``[B]`` boost velocities, ``|beta| < 1``.

    Returns:
        ``[B, P, 4]`` boosted four-vectors (invariant masses unchanged).
    """
    b = beta.view(-1, 1)
    gamma = 1.0 / torch.sqrt(1.0 - b * b)
    pz, e = v[..., 2], v[..., 3]
    pz2 = gamma * (pz - b * e)
    e2 = gamma * (e - b * pz)
    return torch.stack((v[..., 0], v[..., 1], pz2, e2), dim=-1)


def rotate_z(v: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate four-vectors about the beam (z) axis by ``angle`` radians (per example).

    Args:
        v: ``[B, P, 4]`` four-vectors.
        angle: ``[B]`` rotation angles.

    Returns:
        ``[B, P, 4]`` rotated four-vectors.
    """
    c, s = torch.cos(angle).view(-1, 1), torch.sin(angle).view(-1, 1)
    px, py = v[..., 0], v[..., 1]
    return torch.stack((c * px - s * py, s * px + c * py, v[..., 2], v[..., 3]), dim=-1)


# ---- NumPy twins used by readers/writers (no torch in the I/O path) ----


def np_phi(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Azimuth in ``[-pi, pi)`` (NumPy).

    Args:
        px, py: momentum components in GeV.

    Returns:
        phi in radians.
    """
    out = np.arctan2(py, px)
    return np.where(out >= np.pi, out - 2 * np.pi, out)


def np_eta(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
    """Pseudorapidity ``asinh(pz/pT)`` (0 where pT is 0) (NumPy).

    Args:
        px, py, pz: momentum components in GeV.

    Returns:
        eta.
    """
    p_t = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.arcsinh(np.where(p_t > 0, pz / np.where(p_t > 0, p_t, 1.0), 0.0))
    return out
