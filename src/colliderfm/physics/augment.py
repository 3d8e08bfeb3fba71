"""Physics augmentations for self-supervised pretraining (JetCLR-style and more).

Every augmentation is a batched torch function ``f(parts, *, p, <strength>..., generator)`` on a
padded, masked :class:`Particles` (four-vectors in GeV, mask, charge, pid). Each jet is augmented
with probability ``p``; everything else is vectorised over jets and particles (no Python loops).
Inputs must have zero padding (:func:`from_batch` guarantees it) and padding stays padding (mask
False, all-zero vectors/charge/pid); real particles need not stay packed at the front. Randomness
comes only from the ``generator`` (same seed, same result); every function draws the same amount
of random numbers whatever ``p`` is, so seeds are stable across settings.

The jet axis is the (eta, phi) of the summed four-vector of the real particles, as in
:mod:`colliderfm.data.features`.

Augmentations:

* :func:`collinear_split` - split particles into two collinear ones (the pair sums exactly to the
  original four-vector, so the jet four-momentum is kept).
* :func:`add_soft` - add soft massless neutral particles in a cone around the jet axis.
* :func:`dropout` - drop particles at random (never the leading one).
* :func:`smear` - scale four-vectors by ``1 + delta`` with a pT-dependent resolution.
* :func:`rotate` - rotate (deta, dphi) about the jet axis; keeps each particle's pT and mass.
* :func:`translate` - shift every particle of a jet by the same (d_eta, d_phi); keeps pT and mass.
* :func:`boost_z` - longitudinal Lorentz boost; keeps pT and every invariant mass.

:class:`Augmenter` composes them from a config dict in the fixed order :data:`ORDER`: first the
particle content changes (IRC-safe emissions, then losses), then the detector-like response, then
the symmetry transformations of the whole jet, so those act on the final particle content.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch

from colliderfm.data.features import FEATURE_SETS, particle_features
from colliderfm.data.schema import Batch
from colliderfm.errors import ConfigError
from colliderfm.physics import kinematics as K
from colliderfm.physics.pipeline import build_steps, describe, rand, randn, tunable

_MIN_SCALE = 1e-3  # smallest energy scale factor smearing may give
_MIN_PT = 1e-3  # GeV, pT floor in the smearing resolution (avoids a/sqrt(0))


class Particles(NamedTuple):
    """Padded particles of a batch of jets.

    Attributes:
        vectors: ``[B, P, 4]`` (px, py, pz, E) in GeV, zero at padding.
        mask: ``[B, P]`` bool, True for real particles.
        charge: ``[B, P]`` float electric charge.
        type_id: ``[B, P]`` int64 PDG id (0 = unknown).
    """

    vectors: torch.Tensor
    mask: torch.Tensor
    charge: torch.Tensor
    type_id: torch.Tensor

    @property
    def counts(self) -> torch.Tensor:
        """``[B]`` number of real particles per jet."""
        return self.mask.sum(1)


def _clean(
    v: torch.Tensor, mask: torch.Tensor, charge: torch.Tensor, pid: torch.Tensor
) -> Particles:
    """Zero everything at padding and pack into :class:`Particles`."""
    return Particles(
        torch.where(mask.unsqueeze(-1), v, 0.0),
        mask,
        torch.where(mask, charge, 0.0),
        torch.where(mask, pid, 0),
    )


def from_batch(batch: Batch) -> Particles:
    """Take the particles out of a batch (charge and pid default to zeros).

    Args:
        batch: a jet batch with ``vectors``.

    Returns:
        The particles, padding zeroed.
    """
    if batch.vectors is None:
        raise ValueError("augmentations need four-vectors: batch.vectors is None")
    mask = batch.mask.bool()  # [B, P]
    charge = batch.charge if batch.charge is not None else torch.zeros_like(batch.vectors[..., 0])
    pid = batch.type_id if batch.type_id is not None else torch.zeros_like(mask, dtype=torch.long)
    return _clean(batch.vectors, mask, charge.to(batch.vectors.dtype), pid.long())


def compact(parts: Particles, size: int | None = None) -> Particles:
    """Pack real particles to the front (order kept) and cut the particle axis.

    Args:
        parts: particles.
        size: keep at least this many slots (never more than there are); None keeps only as
            many as the longest jet needs (at least 1).

    Returns:
        Packed particles with ``P' = max(longest jet, size)`` slots.
    """
    mask = parts.mask
    counts = parts.counts  # [B]
    longest = int(counts.max()) if counts.numel() else 0
    keep = max(longest, 1 if size is None else min(size, mask.shape[1]))
    packed = torch.arange(mask.shape[1], device=mask.device) < counts.unsqueeze(1)  # [B, P]
    if torch.equal(mask, packed):  # already packed: a view is enough
        return Particles(*(t[:, :keep] for t in parts))
    order = _select_index(mask, keep)  # [B, P']
    v = torch.gather(parts.vectors, 1, order.unsqueeze(-1).expand(-1, -1, 4))  # [B, P', 4]
    return Particles(
        v,
        torch.gather(mask, 1, order),
        torch.gather(parts.charge, 1, order),
        torch.gather(parts.type_id, 1, order),
    )


def to_batch(
    parts: Particles,
    labels: torch.Tensor,
    weights: torch.Tensor,
    feature_set: str = "part",
    size: int | None = None,
) -> Batch:
    """Rebuild a model-ready :class:`Batch` (features recomputed) from particles.

    Args:
        parts: particles.
        labels: ``[B]`` labels carried over.
        weights: ``[B]`` weights carried over.
        feature_set: see :mod:`colliderfm.data.features`.
        size: particle slots to keep at least (see :func:`compact`).

    Returns:
        A new batch; real particles packed at the front.
    """
    parts = compact(parts, size)
    feats = particle_features(parts.vectors, parts.mask, parts.charge, parts.type_id, feature_set)
    return Batch(
        features=feats,
        mask=parts.mask,
        labels=labels,
        weights=weights,
        vectors=parts.vectors,
        charge=parts.charge,
        type_id=parts.type_id,
    )


# ---- helpers ----


def _select_index(sel: torch.Tensor, size: int) -> torch.Tensor:
    """``[B, size]`` index of the r-th True entry of each row of ``sel`` (0 past the last).

    A scatter of positions to their rank (cheaper than a stable argsort).
    """
    b, p = sel.shape
    rank = torch.cumsum(sel, 1) - 1  # [B, P]
    dest = torch.where(sel & (rank < size), rank, size)  # [B, P], size = discard column
    out = torch.zeros(b, size + 1, dtype=torch.long, device=sel.device)
    out.scatter_(1, dest, torch.arange(p, device=sel.device).expand(b, p))
    return out[:, :size]


def _jets_on(parts: Particles, p: float, gen: torch.Generator | None) -> torch.Tensor:
    """``[B]`` bool: which jets get augmented (probability ``p``; empty jets never)."""
    return (rand((parts.mask.shape[0],), parts.vectors, gen) < p) & parts.mask.any(1)


def _axis(v: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, 1]`` eta and phi of the summed four-vector of the real particles."""
    jet = K.masked_sum(v, mask).unsqueeze(1)  # [B, 1, 4]
    return K.eta(jet), K.phi(jet)


def _mass2(v: torch.Tensor) -> torch.Tensor:
    """``[...]`` m^2 = (E - |p|)(E + |p|) clipped at 0 (better conditioned than E^2 - p^2)."""
    p = torch.linalg.vector_norm(v[..., :3], dim=-1)
    return ((v[..., 3] - p) * (v[..., 3] + p)).clamp_min(0.0)


def _rebuild(
    p_t: torch.Tensor, eta: torch.Tensor, phi: torch.Tensor, m2: torch.Tensor
) -> torch.Tensor:
    """``[..., 4]`` four-vectors from pT, eta, phi and m^2 (E = sqrt(p^2 + m^2))."""
    p = p_t * torch.cosh(eta)
    return K.from_pt_eta_phi_e(p_t, eta, phi, torch.sqrt(p * p + m2))


def _grow(parts: Particles, size: int) -> Particles:
    """Zero-pad the particle axis to ``size`` slots (no-op if already that long)."""
    extra = size - parts.mask.shape[1]
    if extra <= 0:
        return parts
    pad = torch.nn.functional.pad
    return Particles(
        pad(parts.vectors, (0, 0, 0, extra)),
        pad(parts.mask, (0, extra)),
        pad(parts.charge, (0, extra)),
        pad(parts.type_id, (0, extra)),
    )


def _room(
    parts: Particles, wanted: torch.Tensor, max_particles: int
) -> tuple[Particles, torch.Tensor, torch.Tensor]:
    """Grow the particle axis (up to ``max_particles``) to fit ``wanted`` new particles per jet.

    Returns:
        The grown particles, ``[B]`` how many new particles fit, ``[B, P']`` rank of each free
        slot among its jet's free slots (-1 on real particles).
    """
    counts = parts.counts  # [B]
    need = int((counts + wanted).max()) if counts.numel() else 0
    parts = _grow(parts, min(need, max_particles))
    free = ~parts.mask  # [B, P']
    fits = torch.minimum(wanted, parts.mask.shape[1] - counts)  # [B]
    rank = torch.where(free, torch.cumsum(free, 1) - 1, -1)  # [B, P']
    return parts, fits, rank


# ---- augmentations (each returns new Particles) ----


def rotate(
    parts: Particles,
    *,
    p: float = 1.0,
    max_angle: float = math.pi,
    generator: torch.Generator | None = None,
) -> Particles:
    """Rotate each particle's (deta, dphi) about the jet axis by a random angle (per jet).

    Each particle keeps its pT and mass (E = sqrt(p^2 + m^2)); the jet axis moves only at second
    order in the jet width.

    Args:
        parts: particles.
        p: probability per jet.
        max_angle: angle uniform in ``[-max_angle, max_angle]`` radians.
        generator: RNG.

    Returns:
        Rotated particles.
    """
    v, mask = parts.vectors, parts.mask  # [B, P, 4], [B, P]
    on = _jets_on(parts, p, generator)  # [B]
    angle = (2 * rand(on.shape, v, generator) - 1) * max_angle  # [B]
    eta_j, phi_j = _axis(v, mask)  # [B, 1]
    p_t = K.pt(v)  # [B, P]
    deta = torch.asinh(v[..., 2] / p_t.clamp_min(K.EPS)) - eta_j  # [B, P]
    dphi = K.delta_phi(torch.atan2(v[..., 1], v[..., 0]), phi_j)  # [B, P]
    c, s = torch.cos(angle).unsqueeze(1), torch.sin(angle).unsqueeze(1)  # [B, 1]
    new = _rebuild(p_t, eta_j + c * deta - s * dphi, phi_j + s * deta + c * dphi, _mass2(v))
    ok = (on.unsqueeze(1) & mask & (p_t > 0)).unsqueeze(-1)  # [B, P, 1]
    return parts._replace(vectors=torch.where(ok, new, v))  # padding stays zero


def translate(
    parts: Particles,
    *,
    p: float = 1.0,
    sigma: float = 0.1,
    distribution: str = "normal",
    generator: torch.Generator | None = None,
) -> Particles:
    """Shift all particles of a jet by the same random (d_eta, d_phi); pT and masses kept.

    The phi shift is a rotation about the beam axis (phi stays wrapped); the eta shift uses
    ``pz' = pz cosh(d) + |p| sinh(d)`` and ``|p'| = |p| cosh(d) + pz sinh(d)``, then
    ``E' = sqrt(|p'|^2 + m^2)`` (no per-particle angles needed).

    Args:
        parts: particles.
        p: probability per jet.
        sigma: width of the shift: standard deviation (``normal``) or half-width (``uniform``).
        distribution: ``"normal"`` or ``"uniform"``.
        generator: RNG.

    Returns:
        Translated particles.
    """
    if distribution not in ("normal", "uniform"):
        raise ValueError(f"distribution must be 'normal' or 'uniform', not {distribution!r}")
    v = parts.vectors  # [B, P, 4]
    on = _jets_on(parts, p, generator)  # [B]
    b = on.shape[0]
    shift = (
        randn((b, 2), v, generator)
        if distribution == "normal"
        else 2 * rand((b, 2), v, generator) - 1
    ) * sigma  # [B, 2]
    shift = shift * on.unsqueeze(1)  # [B, 2], zero for jets left alone
    v = K.rotate_z(v, shift[:, 1])  # [B, P, 4]
    pz, e = v[..., 2], v[..., 3]  # [B, P]
    mom = torch.linalg.vector_norm(v[..., :3], dim=-1)  # [B, P]
    m2 = ((e - mom) * (e + mom)).clamp_min(0.0)  # [B, P]
    ch, sh = torch.cosh(shift[:, :1]), torch.sinh(shift[:, :1])  # [B, 1]
    mom2 = mom * ch + pz * sh  # [B, P]
    out = torch.stack(
        (v[..., 0], v[..., 1], pz * ch + mom * sh, torch.sqrt(mom2 * mom2 + m2)), dim=-1
    )  # [B, P, 4]
    return parts._replace(vectors=torch.where(on.view(-1, 1, 1), out, parts.vectors))


def boost_z(
    parts: Particles,
    *,
    p: float = 1.0,
    max_rapidity: float = 1.0,
    generator: torch.Generator | None = None,
) -> Particles:
    """Longitudinal Lorentz boost of the whole jet: rapidities shift by ``y ~ U(-max, max)``.

    Keeps every pT and every invariant mass (particles and jet).

    Args:
        parts: particles.
        p: probability per jet.
        max_rapidity: largest rapidity shift.
        generator: RNG.

    Returns:
        Boosted particles.
    """
    on = _jets_on(parts, p, generator)  # [B]
    y = (2 * rand(on.shape, parts.vectors, generator) - 1) * max_rapidity  # [B]
    beta = torch.where(on, -torch.tanh(y), torch.zeros_like(y))  # [B]
    return parts._replace(vectors=K.boost_z(parts.vectors, beta))  # linear: padding stays 0


def smear(
    parts: Particles,
    *,
    p: float = 1.0,
    strength: float = 1.0,
    stochastic: float = 0.5,
    constant: float = 0.02,
    generator: torch.Generator | None = None,
) -> Particles:
    """Energy smearing: scale each four-vector by ``1 + delta`` (direction kept).

    ``delta ~ N(0, sigma)`` with ``sigma = strength * sqrt(stochastic^2 / pT + constant^2)``
    (pT in GeV); the scale is clipped at ``1e-3`` so energies stay positive. ``strength = 0`` is the
    identity.

    Args:
        parts: particles.
        p: probability per jet.
        strength: overall scale of the resolution.
        stochastic: stochastic term ``a`` in GeV^(1/2).
        constant: constant term ``b``.
        generator: RNG.

    Returns:
        Smeared particles.
    """
    v, mask = parts.vectors, parts.mask  # [B, P, 4], [B, P]
    on = _jets_on(parts, p, generator)  # [B]
    noise = randn(tuple(mask.shape), v, generator)  # [B, P]
    rel = torch.sqrt(stochastic**2 / K.pt(v).clamp_min(_MIN_PT) + constant**2)  # [B, P]
    scale = (1 + strength * rel * noise).clamp_min(_MIN_SCALE)  # [B, P]
    scale = torch.where(on.unsqueeze(1) & mask, scale, torch.ones_like(scale))
    return parts._replace(vectors=v * scale.unsqueeze(-1))


def collinear_split(
    parts: Particles,
    *,
    p: float = 1.0,
    fraction: float = 0.1,
    zmin: float = 0.1,
    max_particles: int = 128,
    mode: str = "conserve",
    generator: torch.Generator | None = None,
) -> Particles:
    """Split random particles into two collinear ones carrying fractions ``1 - z`` and ``z``.

    ``z ~ U(zmin, 0.5)``; the soft part is ``z * v`` in a free padding slot and the hard part is
    ``v - z * v`` in place, so the pair sums to the original four-vector (to rounding) and the
    jet four-momentum is kept. The particle axis grows up to ``max_particles``; when a jet lacks
    room, only its first picks in slot order are split.

    Charge and pid (``mode``): ``"conserve"`` (default) keeps charge and pid on the hard part and
    makes the soft part neutral: a photon (pid 22) when the original is charged (a collinear
    photon emission, as in bremsstrahlung/FSR), the same pid when it is neutral; charge is
    conserved. ``"duplicate"`` copies pid and charge to both (as JetCLR's collinear splitting).

    Args:
        parts: particles.
        p: probability per jet.
        fraction: probability per particle of a chosen jet to be split.
        zmin: smallest momentum fraction of the soft part (``0 <= zmin <= 0.5``).
        max_particles: cap on the particle axis.
        mode: ``"conserve"`` or ``"duplicate"``.
        generator: RNG.

    Returns:
        Particles with the splits added.
    """
    if mode not in ("conserve", "duplicate"):
        raise ValueError(f"mode must be 'conserve' or 'duplicate', not {mode!r}")
    v, mask = parts.vectors, parts.mask  # [B, P, 4], [B, P]
    on = _jets_on(parts, p, generator)  # [B]
    pick = rand(tuple(mask.shape), v, generator) < fraction  # [B, P]
    z = zmin + (0.5 - zmin) * rand(tuple(mask.shape), v, generator)  # [B, P]
    sel = pick & mask & on.unsqueeze(1)  # [B, P]
    parts, fits, free_rank = _room(parts, sel.sum(1), max_particles)
    extra = parts.mask.shape[1] - mask.shape[1]
    sel = torch.nn.functional.pad(sel, (0, extra))  # [B, P']
    z = torch.nn.functional.pad(z, (0, extra))  # [B, P']
    sel = sel & (torch.cumsum(sel, 1) <= fits.unsqueeze(1))  # keep the first `fits` picks
    order = _select_index(sel, sel.shape[1])  # [B, P'] picked particles first
    fill = (free_rank >= 0) & (free_rank < fits.unsqueeze(1))  # [B, P'] slots receiving a part
    src = torch.gather(order, 1, free_rank.clamp_min(0))  # [B, P'] particle split into slot
    v = parts.vectors  # [B, P', 4]
    soft = v * z.unsqueeze(-1)  # [B, P', 4]
    out = torch.where(sel.unsqueeze(-1), v - soft, v)  # [B, P', 4]
    out = torch.where(
        fill.unsqueeze(-1), torch.gather(soft, 1, src.unsqueeze(-1).expand(-1, -1, 4)), out
    )
    q_src = torch.gather(parts.charge, 1, src)  # [B, P']
    pid_src = torch.gather(parts.type_id, 1, src)  # [B, P']
    if mode == "conserve":
        pid_src = torch.where(q_src != 0, torch.full_like(pid_src, 22), pid_src)
        q_src = torch.zeros_like(q_src)
    charge = torch.where(fill, q_src, parts.charge)  # [B, P']
    pid = torch.where(fill, pid_src, parts.type_id)  # [B, P']
    return Particles(out, parts.mask | fill, charge, pid)  # input padding was zero


def add_soft(
    parts: Particles,
    *,
    p: float = 1.0,
    n: int = 5,
    pt_scale: float = 0.5,
    radius: float = 0.8,
    photon_fraction: float = 0.5,
    max_particles: int = 128,
    generator: torch.Generator | None = None,
) -> Particles:
    """Add ``n`` soft massless neutral particles uniformly in a cone around the jet axis.

    pT is exponential with mean ``pt_scale`` GeV, so ``pt_scale -> 0`` gives vanishing energy and
    the jet four-momentum is kept in that limit (infrared safety). Each is a photon (pid 22) with
    probability ``photon_fraction``, else a neutral hadron (pid 130); charge 0. The particle axis
    grows up to ``max_particles``; jets without room get fewer. Empty jets get none.

    Args:
        parts: particles.
        p: probability per jet.
        n: particles added per chosen jet.
        pt_scale: mean pT in GeV.
        radius: cone radius in (eta, phi).
        photon_fraction: share of photons among the added particles.
        max_particles: cap on the particle axis.
        generator: RNG.

    Returns:
        Particles with the soft ones added.
    """
    v, mask = parts.vectors, parts.mask  # [B, P, 4], [B, P]
    on = _jets_on(parts, p, generator)  # [B]
    if n <= 0:
        return parts
    u = rand((on.shape[0], n, 4), v, generator)  # [B, n, 4]
    eta_j, phi_j = _axis(v, mask)  # [B, 1]
    p_t = -pt_scale * torch.log1p(-u[..., 0])  # [B, n]
    r, a = radius * torch.sqrt(u[..., 1]), 2 * math.pi * u[..., 2]  # [B, n]
    eta = eta_j + r * torch.cos(a)  # [B, n]
    new = K.from_pt_eta_phi_e(p_t, eta, phi_j + r * torch.sin(a), p_t * torch.cosh(eta))
    new_pid = torch.where(u[..., 3] < photon_fraction, 22, 130).to(parts.type_id.dtype)  # [B, n]
    wanted = torch.where(on, n, 0)  # [B]
    parts, fits, free_rank = _room(parts, wanted, max_particles)
    fill = (free_rank >= 0) & (free_rank < fits.unsqueeze(1))  # [B, P']
    idx = free_rank.clamp(0, n - 1)  # [B, P'] which new particle goes into the slot
    gathered = torch.gather(new, 1, idx.unsqueeze(-1).expand(-1, -1, 4))  # [B, P', 4]
    out = torch.where(fill.unsqueeze(-1), gathered, parts.vectors)  # [B, P', 4]
    pid = torch.where(fill, torch.gather(new_pid, 1, idx), parts.type_id)  # [B, P']
    charge = torch.where(fill, torch.zeros_like(parts.charge), parts.charge)  # [B, P']
    return Particles(out, parts.mask | fill, charge, pid)  # input padding was zero


def dropout(
    parts: Particles, *, p: float = 1.0, rate: float = 0.1, generator: torch.Generator | None = None
) -> Particles:
    """Drop each real particle with probability ``rate``, never the leading (highest-pT) one.

    Args:
        parts: particles.
        p: probability per jet.
        rate: drop probability per particle.
        generator: RNG.

    Returns:
        Particles with the dropped ones turned into padding (a jet never becomes empty).
    """
    v, mask = parts.vectors, parts.mask  # [B, P, 4], [B, P]
    on = _jets_on(parts, p, generator)  # [B]
    drop = (rand(tuple(mask.shape), v, generator) < rate) & mask & on.unsqueeze(1)  # [B, P]
    ranked = torch.where(mask, K.pt(v), torch.full_like(mask, -1.0, dtype=v.dtype))  # [B, P]
    lead = torch.zeros_like(mask).scatter_(1, ranked.argmax(1, keepdim=True), True)  # [B, P]
    keep = mask & ~(drop & ~lead)  # [B, P]
    return _clean(v, keep, parts.charge, parts.type_id)


# ---- composition ----

#: Name -> function of every augmentation.
AUGMENTATIONS: dict[str, Callable[..., Particles]] = {
    "collinear_split": collinear_split,
    "add_soft": add_soft,
    "dropout": dropout,
    "smear": smear,
    "rotate": rotate,
    "translate": translate,
    "boost_z": boost_z,
}

#: The fixed order in which :class:`Augmenter` applies the configured augmentations.
ORDER: tuple[str, ...] = (
    "collinear_split",
    "add_soft",
    "dropout",
    "smear",
    "rotate",
    "translate",
    "boost_z",
)

#: JetCLR-style recipe for contrastive pretraining: rotations, translations, collinear splits and
#: soft emissions (the IRC-safe "soft+collinear" set), plus a mild energy smearing.
JETCLR_DEFAULT: dict[str, dict[str, Any]] = {
    "collinear_split": {"p": 1.0, "fraction": 0.1},
    "add_soft": {"p": 0.5, "n": 5, "pt_scale": 0.5},
    "smear": {"p": 1.0, "strength": 1.0},
    "rotate": {"p": 1.0},
    "translate": {"p": 1.0, "sigma": 0.5},
}

_RANGES: dict[str, tuple[float, float]] = {
    "p": (0.0, 1.0),
    "fraction": (0.0, 1.0),
    "rate": (0.0, 1.0),
    "photon_fraction": (0.0, 1.0),
    "zmin": (0.0, 0.5),
    "max_rapidity": (0.0, 5.0),
    "max_particles": (1, math.inf),
}
_CHOICES: dict[str, tuple[str, ...]] = {
    "mode": ("conserve", "duplicate"),
    "distribution": ("normal", "uniform"),
}


class Augmenter:
    """A fixed-order composition of augmentations built from a config dict.

    The config maps augmentation names to their parameters, e.g.
    ``{"rotate": {"p": 1.0}, "dropout": {"p": 0.5, "rate": 0.1}}``; a name mapped to ``None`` uses
    the defaults. Augmentations run in :data:`ORDER` whatever the dict order.

    Args:
        config: augmentations and parameters; None means :data:`JETCLR_DEFAULT`.
        feature_set: feature set of the output batches; None keeps the input's (by width).
        max_particles: particle-axis cap for ``collinear_split`` / ``add_soft`` unless their
            section sets ``max_particles``.

    Raises:
        ConfigError: unknown augmentation or parameter (the message lists the valid ones), or a
            value of the wrong type or out of range.
    """

    def __init__(
        self,
        config: Mapping[str, Mapping[str, Any] | None] | None = None,
        feature_set: str | None = None,
        max_particles: int | None = None,
    ) -> None:
        config = JETCLR_DEFAULT if config is None else config
        if feature_set is not None and feature_set not in FEATURE_SETS:
            raise ConfigError(
                f"augment: unknown feature set {feature_set!r}; valid: {list(FEATURE_SETS)}"
            )
        self.feature_set = feature_set
        self.steps = build_steps(config, AUGMENTATIONS, ORDER, _CHOICES, _RANGES)
        if max_particles is not None:
            for name, section in self.steps:
                if "max_particles" in tunable(AUGMENTATIONS[name]):
                    section.setdefault("max_particles", max_particles)

    def __repr__(self) -> str:
        return describe("Augmenter", self.steps)

    def apply(self, parts: Particles, generator: torch.Generator | None = None) -> Particles:
        """Run the configured augmentations on particles.

        Args:
            parts: particles.
            generator: RNG (None: torch's global one).

        Returns:
            Augmented particles.
        """
        for name, kwargs in self.steps:
            parts = AUGMENTATIONS[name](parts, generator=generator, **kwargs)
        return parts

    def __call__(self, batch: Batch, generator: torch.Generator | None = None) -> Batch:
        """Augment a jet batch and rebuild its features.

        Args:
            batch: a jet batch with ``vectors`` (``charge``/``type_id`` optional).
            generator: RNG (None: torch's global one).

        Returns:
            A new batch (labels and weights carried over) with at least as many particle slots
            as the input (more if splits/additions needed them).
        """
        feature_set = self.feature_set or next(
            (k for k, v in FEATURE_SETS.items() if len(v) == batch.features.shape[-1]), "part"
        )
        parts = self.apply(from_batch(batch), generator)
        return to_batch(parts, batch.labels, batch.weights, feature_set, size=batch.mask.shape[1])

    def views(
        self, batch: Batch, n: int = 2, generator: torch.Generator | None = None
    ) -> list[Batch]:
        """``n`` independently augmented views of a batch (for contrastive objectives).

        Args:
            batch: a jet batch.
            n: number of views.
            generator: RNG.

        Returns:
            The views.
        """
        return [self(batch, generator) for _ in range(n)]
