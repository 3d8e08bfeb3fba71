"""Lorentz augmentations and detector smearing for whole events (leptons, jets, MET).

Every augmentation is a batched torch function ``f(ev, *, p, <strength>..., generator)`` on a
padded, masked :class:`Objects` (four-vectors in GeV, mask, object type); each event is augmented
with probability ``p``, everything is vectorised over events and objects. Padding stays padding
(mask False, all-zero vectors and type). Every function draws the same amount of random numbers
whatever ``p`` is, so seeds are stable across settings.

The missing transverse momentum (MET, :attr:`ObjectType.MET`) is a transverse vector
``(px, py, 0, pT)``: it has no longitudinal component, so

* :func:`rotate_phi` rotates it with everything else (the event's total transverse momentum keeps
  its magnitude);
* :func:`boost_z` leaves it unchanged (a longitudinal boost does not change transverse momenta);
* :func:`reflect_eta` (``z -> -z``) leaves it unchanged;
* :func:`boost_transverse` (a small boost of the visible objects in a random transverse
  direction, like recoil against unobserved initial-state radiation) either, with
  ``met="recoil"`` (default), re-balances the MET so that the event's total transverse momentum
  (visible + MET) is the same as before -- the MET is the negative sum of what is visible, as the
  detector would reconstruct it -- or, with ``met="boost"``, boosts the MET as a massless
  vector with ``pz = 0`` and projects the result back onto the transverse plane;
* :func:`smear` scales it with its own (larger) resolution, independently of the jets.

:class:`EventAugmenter` composes them from a config dict in the fixed order :data:`EVENT_ORDER`
(detector response first, then the symmetry transformations) and rebuilds the model features
with :func:`colliderfm.data.features.event_features`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch

from colliderfm.data.features import event_features
from colliderfm.data.schema import Batch, ObjectType
from colliderfm.errors import ConfigError
from colliderfm.physics import kinematics as K
from colliderfm.physics.pipeline import build_steps, describe, rand, randn

_MIN_SCALE = 1e-3  # smallest energy scale factor smearing may give
_MIN_PT = 1.0  # GeV, pT floor in the jet resolution (avoids a/sqrt(0))


class Objects(NamedTuple):
    """Padded reconstructed objects of a batch of events.

    Attributes:
        vectors: ``[B, N, 4]`` (px, py, pz, E) in GeV, zero at padding; MET is
            ``(px, py, 0, pT)``.
        mask: ``[B, N]`` bool, True for real objects.
        obj_type: ``[B, N]`` int64 :class:`~colliderfm.data.schema.ObjectType` (0 at padding).
    """

    vectors: torch.Tensor
    mask: torch.Tensor
    obj_type: torch.Tensor

    @property
    def is_met(self) -> torch.Tensor:
        """``[B, N]`` bool: MET objects."""
        return self.obj_type == int(ObjectType.MET)


def _clean(v: torch.Tensor, mask: torch.Tensor, obj_type: torch.Tensor) -> Objects:
    """Zero everything at padding and pack into :class:`Objects`."""
    return Objects(
        torch.where(mask.unsqueeze(-1), v, 0.0), mask, torch.where(mask, obj_type.long(), 0)
    )


def from_batch(batch: Batch) -> Objects:
    """Take the objects out of an event batch (types from ``batch.type_id``).

    Args:
        batch: an event batch with ``vectors`` and ``type_id`` (ObjectType).

    Returns:
        The objects, padding zeroed.
    """
    if batch.vectors is None or batch.type_id is None:
        raise ValueError("event augmentations need batch.vectors and batch.type_id (object types)")
    return _clean(batch.vectors.float(), batch.mask.bool(), batch.type_id)


def to_batch(ev: Objects, like: Batch) -> Batch:
    """Rebuild a model-ready event :class:`Batch` (features recomputed) from objects.

    Args:
        ev: objects.
        like: batch whose labels, weights and charge are carried over.

    Returns:
        A new batch with ``event_features`` of the objects; ``type_id`` holds the object types.
    """
    return Batch(
        features=event_features(ev.vectors, ev.mask, ev.obj_type),
        mask=ev.mask,
        labels=like.labels,
        weights=like.weights,
        vectors=ev.vectors,
        charge=like.charge,
        type_id=ev.obj_type,
    )


def _events_on(ev: Objects, p: float, gen: torch.Generator | None) -> torch.Tensor:
    """``[B]`` bool: which events get augmented (probability ``p``; empty events never)."""
    return (rand((ev.mask.shape[0],), ev.vectors, gen) < p) & ev.mask.any(1)


def _select(on: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Per event: ``new`` where ``on`` else ``old`` (``[B, N, 4]``)."""
    return torch.where(on.view(-1, 1, 1), new, old)


# ---- augmentations (each returns new Objects) ----


def rotate_phi(
    ev: Objects,
    *,
    p: float = 1.0,
    max_angle: float = math.pi,
    generator: torch.Generator | None = None,
) -> Objects:
    """Rotate every object (MET included) about the beam axis by ``U(-max_angle, max_angle)``.

    Keeps every pT, eta and mass, and the magnitude of the event's total transverse momentum.

    Args:
        ev: objects.
        p: probability per event.
        max_angle: largest rotation angle in radians (``pi``: uniform in azimuth).
        generator: RNG.

    Returns:
        Rotated objects.
    """
    on = _events_on(ev, p, generator)  # [B]
    angle = (2 * rand(on.shape, ev.vectors, generator) - 1) * max_angle  # [B]
    angle = torch.where(on, angle, torch.zeros_like(angle))  # [B]
    return ev._replace(vectors=K.rotate_z(ev.vectors, angle))  # linear: padding stays 0


def boost_z(
    ev: Objects,
    *,
    p: float = 1.0,
    max_rapidity: float = 0.5,
    generator: torch.Generator | None = None,
) -> Objects:
    """Longitudinal boost of the visible objects: rapidities shift by ``U(-max, max)``.

    Keeps every pT and every invariant mass (objects and pairs); MET is unchanged (it is
    transverse).

    Args:
        ev: objects.
        p: probability per event.
        max_rapidity: largest rapidity shift.
        generator: RNG.

    Returns:
        Boosted objects.
    """
    on = _events_on(ev, p, generator)  # [B]
    y = (2 * rand(on.shape, ev.vectors, generator) - 1) * max_rapidity  # [B]
    beta = torch.where(on, -torch.tanh(y), torch.zeros_like(y))  # [B]
    boosted = K.boost_z(ev.vectors, beta)  # [B, N, 4]
    return ev._replace(vectors=torch.where(ev.is_met.unsqueeze(-1), ev.vectors, boosted))


def reflect_eta(
    ev: Objects, *, p: float = 0.5, generator: torch.Generator | None = None
) -> Objects:
    """Reflect the event through the transverse plane (``z -> -z``: eta -> -eta).

    Keeps pT, phi and every mass; MET (``pz = 0``) is unchanged.

    Args:
        ev: objects.
        p: probability per event.
        generator: RNG.

    Returns:
        Reflected objects.
    """
    on = _events_on(ev, p, generator)  # [B]
    flip = ev.vectors * ev.vectors.new_tensor([1.0, 1.0, -1.0, 1.0])  # [B, N, 4]
    return ev._replace(vectors=_select(on, flip, ev.vectors))


def boost_transverse(
    ev: Objects,
    *,
    p: float = 0.5,
    max_beta: float = 0.05,
    met: str = "recoil",
    generator: torch.Generator | None = None,
) -> Objects:
    """Small Lorentz boost of the visible objects in a random transverse direction.

    ``beta ~ U(0, max_beta)``, direction uniform in azimuth. Visible objects keep their masses;
    the MET is treated as described in the module docstring (``met="recoil"``: the MET absorbs
    the change of the visible transverse momentum, so visible + MET stays the same;
    ``met="boost"``: the MET is boosted as a massless ``pz = 0`` vector, then projected back to
    the transverse plane with ``E = pT``).

    Args:
        ev: objects.
        p: probability per event.
        max_beta: largest boost velocity (keep it small: a few percent).
        met: ``"recoil"`` or ``"boost"``.
        generator: RNG.

    Returns:
        Boosted objects.
    """
    if met not in ("recoil", "boost"):
        raise ConfigError(f"boost_transverse: met must be 'recoil' or 'boost', got {met!r}")
    v = ev.vectors  # [B, N, 4]
    on = _events_on(ev, p, generator)  # [B]
    u = rand((v.shape[0], 2), v, generator)  # [B, 2]
    beta = torch.where(on, u[:, 0] * max_beta, torch.zeros_like(u[:, 0]))  # [B]
    ang = (2 * u[:, 1] - 1) * math.pi  # [B]
    n = torch.stack((torch.cos(ang), torch.sin(ang)), -1).unsqueeze(1)  # [B, 1, 2]
    b = beta.view(-1, 1)  # [B, 1]
    gamma = 1.0 / torch.sqrt(1.0 - b * b)  # [B, 1]
    p_par = (v[..., :2] * n).sum(-1)  # [B, N] momentum along the boost
    e = v[..., 3]  # [B, N]
    p_par2 = gamma * (p_par - b * e)  # [B, N]
    e2 = gamma * (e - b * p_par)  # [B, N]
    pt2 = v[..., :2] + (p_par2 - p_par).unsqueeze(-1) * n  # [B, N, 2]
    boosted = torch.cat((pt2, v[..., 2:3], e2.unsqueeze(-1)), -1)  # [B, N, 4]
    is_met = ev.is_met.unsqueeze(-1)  # [B, N, 1]
    if met == "boost":
        pt_met = torch.linalg.vector_norm(pt2, dim=-1, keepdim=True)  # [B, N, 1]
        met_v = torch.cat((pt2, torch.zeros_like(pt_met), pt_met), -1)  # [B, N, 4]
    else:
        visible = ev.mask & ~ev.is_met  # [B, N]
        change = ((boosted - v)[..., :2] * visible.unsqueeze(-1)).sum(1, keepdim=True)  # [B,1,2]
        met_xy = v[..., :2] - change  # [B, N, 2]
        met_pt = torch.linalg.vector_norm(met_xy, dim=-1, keepdim=True)  # [B, N, 1]
        met_v = torch.cat((met_xy, torch.zeros_like(met_pt), met_pt), -1)  # [B, N, 4]
    new = torch.where(is_met, met_v, boosted)  # [B, N, 4]
    new = torch.where(ev.mask.unsqueeze(-1), new, 0.0)
    return ev._replace(vectors=_select(on, new, v))


def smear(
    ev: Objects,
    *,
    p: float = 1.0,
    strength: float = 1.0,
    lepton: float = 0.01,
    jet_stochastic: float = 1.0,
    jet_constant: float = 0.05,
    met: float = 0.1,
    generator: torch.Generator | None = None,
) -> Objects:
    """Resolution smearing: scale each object's four-vector by ``1 + delta`` (direction kept).

    ``delta ~ N(0, strength * sigma)`` with ``sigma`` by type: ``lepton`` for electrons and
    muons, ``sqrt(jet_stochastic^2 / pT + jet_constant^2)`` (pT in GeV) for b- and light jets,
    ``met`` for the MET (its ``pz`` stays 0, ``E = pT`` is kept). The scale is clipped at
    ``1e-3`` so energies stay positive. ``strength = 0`` (or all widths 0) is the identity.

    Args:
        ev: objects.
        p: probability per event.
        strength: overall scale of every resolution.
        lepton: relative resolution of leptons.
        jet_stochastic: stochastic term of jets in GeV^(1/2).
        jet_constant: constant term of jets.
        met: relative resolution of the MET.
        generator: RNG.

    Returns:
        Smeared objects.
    """
    v, mask, t = ev.vectors, ev.mask, ev.obj_type  # [B, N, 4], [B, N], [B, N]
    on = _events_on(ev, p, generator)  # [B]
    noise = randn(tuple(mask.shape), v, generator)  # [B, N]
    jet_rel = torch.sqrt(jet_stochastic**2 / K.pt(v).clamp_min(_MIN_PT) + jet_constant**2)
    is_lep = (t == int(ObjectType.ELECTRON)) | (t == int(ObjectType.MUON))  # [B, N]
    sigma = torch.where(is_lep, lepton, jet_rel)  # [B, N]
    sigma = torch.where(ev.is_met, met, sigma)  # [B, N]
    scale = (1 + strength * sigma * noise).clamp_min(_MIN_SCALE)  # [B, N]
    scale = torch.where(on.unsqueeze(1) & mask, scale, torch.ones_like(scale))  # [B, N]
    return ev._replace(vectors=v * scale.unsqueeze(-1))


#: Name -> augmentation function.
EVENT_AUGMENTATIONS: dict[str, Callable[..., Objects]] = {
    "smear": smear,
    "boost_transverse": boost_transverse,
    "boost_z": boost_z,
    "reflect_eta": reflect_eta,
    "rotate_phi": rotate_phi,
}
#: The order :class:`EventAugmenter` applies them in (detector response, then symmetries).
EVENT_ORDER: tuple[str, ...] = tuple(EVENT_AUGMENTATIONS)

#: Default augmentations of the masked object-id objective.
EVENT_DEFAULT: dict[str, dict[str, Any]] = {
    "smear": {"p": 1.0, "strength": 1.0},
    "boost_transverse": {"p": 0.5, "max_beta": 0.05},
    "boost_z": {"p": 1.0, "max_rapidity": 0.5},
    "reflect_eta": {"p": 0.5},
    "rotate_phi": {"p": 1.0},
}

_RANGES: dict[str, tuple[float, float]] = {
    "p": (0.0, 1.0),
    "max_angle": (0.0, math.pi),
    "max_rapidity": (0.0, 5.0),
    "max_beta": (0.0, 0.9),
}
_CHOICES: dict[str, tuple[str, ...]] = {"met": ("recoil", "boost")}


class EventAugmenter:
    """A fixed-order composition of event augmentations built from a config dict.

    The config maps augmentation names to their parameters, e.g.
    ``{"rotate_phi": {"p": 1.0}, "smear": {"strength": 0.5}}``; a name mapped to ``None`` uses
    the defaults; a name that is absent is not applied. They run in :data:`EVENT_ORDER`.

    Args:
        config: augmentations and parameters; None means :data:`EVENT_DEFAULT`.

    Raises:
        ConfigError: unknown augmentation or parameter (the message lists the valid ones), or a
            value of the wrong type or out of range.
    """

    def __init__(self, config: Mapping[str, Mapping[str, Any] | None] | None = None) -> None:
        config = EVENT_DEFAULT if config is None else config
        self.steps = build_steps(
            config, EVENT_AUGMENTATIONS, EVENT_ORDER, _CHOICES, _RANGES, "event augmentation"
        )

    def __repr__(self) -> str:
        return describe("EventAugmenter", self.steps)

    def apply(self, ev: Objects, generator: torch.Generator | None = None) -> Objects:
        """Run the configured augmentations on objects.

        Args:
            ev: objects.
            generator: RNG (None: torch's global one).

        Returns:
            Augmented objects.
        """
        for name, kwargs in self.steps:
            ev = EVENT_AUGMENTATIONS[name](ev, generator=generator, **kwargs)
        return ev

    def __call__(self, batch: Batch, generator: torch.Generator | None = None) -> Batch:
        """Augment an event batch and rebuild its features.

        Args:
            batch: an event batch with ``vectors`` and ``type_id`` (object types).
            generator: RNG (None: torch's global one).

        Returns:
            A new batch (same shape; labels, weights and charge carried over).
        """
        if not self.steps:
            return batch
        return to_batch(self.apply(from_batch(batch), generator), batch)
