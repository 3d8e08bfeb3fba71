"""Per-particle model inputs built in torch from padded four-vectors (ParT-style).

Feature set ``part`` (13 features, in this order, following ParticleTransformer's normalisation):

====  ================  =========================================
  0   ``log_pt``        ``(ln pT - 1.7) * 0.7``   (pT in GeV)
  1   ``log_e``         ``(ln E - 2.0) * 0.7``
  2   ``log_ptrel``     ``(ln(pT / pT_jet) + 4.7) * 0.7``
  3   ``log_erel``      ``(ln(E / E_jet) + 4.7) * 0.7``
  4   ``deta``          ``eta - eta_jet``
  5   ``dphi``          ``phi - phi_jet`` wrapped to [-pi, pi)
  6   ``dr``            ``(sqrt(deta^2 + dphi^2) - 0.2) * 4.0``
  7   ``charge``        electric charge
  8   ``is_charged_hadron``  one-hot particle type from PDG id and charge
  9   ``is_neutral_hadron``
 10   ``is_photon``
 11   ``is_electron``
 12   ``is_muon``
====  ================  =========================================

Feature set ``kinematic`` is features 0-6 only (for inputs without charge/type, e.g. Top Tagging).
Padding positions are exactly zero. Everything is batched; there is no Python loop over jets.
"""

from __future__ import annotations

import torch

from colliderfm.physics import kinematics as K

PART_FEATURES: tuple[str, ...] = (
    "log_pt",
    "log_e",
    "log_ptrel",
    "log_erel",
    "deta",
    "dphi",
    "dr",
    "charge",
    "is_charged_hadron",
    "is_neutral_hadron",
    "is_photon",
    "is_electron",
    "is_muon",
)
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "part": PART_FEATURES,
    "kinematic": PART_FEATURES[:7],
}

# (shift, scale) applied as (x + shift) * scale; recorded in checkpoints and the ONNX sidecar.
NORMALISATION: dict[str, tuple[float, float]] = {
    "log_pt": (-1.7, 0.7),
    "log_e": (-2.0, 0.7),
    "log_ptrel": (4.7, 0.7),
    "log_erel": (4.7, 0.7),
    "dr": (-0.2, 4.0),
}


def n_features(feature_set: str) -> int:
    """Number of per-particle features of a feature set.

    Args:
        feature_set: ``"part"`` or ``"kinematic"``.

    Returns:
        Feature count.
    """
    return len(FEATURE_SETS[feature_set])


def particle_type_onehot(pid: torch.Tensor, charge: torch.Tensor) -> torch.Tensor:
    """One-hot particle type (charged hadron, neutral hadron, photon, electron, muon).

    PDG id 0 means unknown and gives all zeros.

    Args:
        pid: ``[B, P]`` PDG ids.
        charge: ``[B, P]`` charges.

    Returns:
        ``[B, P, 5]`` float one-hot.
    """
    apid = pid.abs()
    known = apid > 0
    is_e = apid == 11
    is_mu = apid == 13
    is_photon = apid == 22
    charged = charge != 0
    is_ch = known & charged & ~is_e & ~is_mu
    is_nh = known & ~charged & ~is_photon & ~is_e & ~is_mu
    return torch.stack((is_ch, is_nh, is_photon, is_e, is_mu), dim=-1).float()


def particle_features(
    vectors: torch.Tensor,
    mask: torch.Tensor,
    charge: torch.Tensor | None,
    pid: torch.Tensor | None,
    feature_set: str = "part",
) -> torch.Tensor:
    """Build the per-particle feature tensor from four-vectors.

    Args:
        vectors: ``[B, P, 4]`` (px, py, pz, E) in GeV (padding may hold anything).
        mask: ``[B, P]`` bool, True for real particles.
        charge: ``[B, P]`` charges, or None (zeros).
        pid: ``[B, P]`` PDG ids, or None (unknown).
        feature_set: ``"part"`` (13 features) or ``"kinematic"`` (7).

    Returns:
        ``[B, P, F]`` float32 features, zero at padding.
    """
    if feature_set not in ("part", "kinematic"):
        raise ValueError(f"unknown particle feature set {feature_set!r}; choose part or kinematic")
    v = vectors.float() * mask.unsqueeze(-1)  # [B, P, 4]
    jet = v.sum(1, keepdim=True)  # [B, 1, 4]
    pt = K.pt(v)  # [B, P]
    e = v[..., 3]  # [B, P]
    tiny = 1e-8
    log_pt = torch.log(pt.clamp_min(tiny))
    log_e = torch.log(e.clamp_min(tiny))
    log_ptrel = log_pt - torch.log(K.pt(jet).clamp_min(tiny))  # [B, P]
    log_erel = log_e - torch.log(jet[..., 3].clamp_min(tiny))  # [B, P]
    deta = K.eta(v) - K.eta(jet)  # [B, P]
    dphi = K.delta_phi(K.phi(v), K.phi(jet))  # [B, P]
    dr = torch.hypot(deta, dphi)  # [B, P]
    cols = [
        (log_pt - 1.7) * 0.7,
        (log_e - 2.0) * 0.7,
        (log_ptrel + 4.7) * 0.7,
        (log_erel + 4.7) * 0.7,
        deta,
        dphi,
        (dr - 0.2) * 4.0,
    ]
    if feature_set == "part":
        q = charge.float() if charge is not None else torch.zeros_like(pt)
        p = pid if pid is not None else torch.zeros_like(pt, dtype=torch.long)
        cols.append(q)
        feats = torch.cat((torch.stack(cols, -1), particle_type_onehot(p, q)), dim=-1)
    else:
        feats = torch.stack(cols, -1)  # [B, P, 7]
    return feats * mask.unsqueeze(-1)  # [B, P, F]


#: Per-object features of event-level data (feature set ``event``), in this order. The last six
#: columns are the object-type one-hot (ObjectType 1..5) and a ``masked`` flag that the masked
#: object-id objective sets (with the one-hot zeroed) on objects whose type it hides.
EVENT_FEATURES: tuple[str, ...] = (
    "log_pt",
    "eta",
    "sin_phi",
    "cos_phi",
    "log_e",
    "is_electron",
    "is_muon",
    "is_bjet",
    "is_jet",
    "is_met",
    "is_masked",
)
FEATURE_SETS["event"] = EVENT_FEATURES
#: Columns of the object-type one-hot inside :data:`EVENT_FEATURES` (ObjectType t -> 4 + t).
EVENT_TYPE_SLICE = slice(5, 10)
#: Column of the ``masked`` flag inside :data:`EVENT_FEATURES`.
EVENT_MASKED_COLUMN = 10
NORMALISATION["event_log_pt"] = (-4.0, 1.0)
NORMALISATION["event_eta"] = (0.0, 0.5)
NORMALISATION["event_log_e"] = (-4.5, 1.0)


def event_features(
    vectors: torch.Tensor, mask: torch.Tensor, obj_type: torch.Tensor
) -> torch.Tensor:
    """Build per-object features of events (feature set ``event``).

    ``log_pt = ln pT - 4``, ``eta / 2`` (MET: 0), ``sin/cos phi``, ``log_e = ln E - 4.5`` (GeV),
    then the one-hot of the :class:`~colliderfm.data.schema.ObjectType` and a zero ``masked`` flag.
    No per-event reference frame is subtracted, so event-level Lorentz augmentations change the
    features the way they change the physics.

    Args:
        vectors: ``[B, N, 4]`` (px, py, pz, E) in GeV (padding may hold anything).
        mask: ``[B, N]`` bool, True for real objects.
        obj_type: ``[B, N]`` int ObjectType (1..5; 0 at padding).

    Returns:
        ``[B, N, 11]`` float32 features, zero at padding.
    """
    v = vectors.float() * mask.unsqueeze(-1)  # [B, N, 4]
    tiny = 1e-8
    pt = K.pt(v)  # [B, N]
    is_met = obj_type == 5  # [B, N]
    eta = torch.where(is_met, torch.zeros_like(pt), K.eta(v)).clamp(-5.0, 5.0)  # [B, N]
    phi = K.phi(v)  # [B, N]
    onehot = torch.nn.functional.one_hot(obj_type.long().clamp(0, 5), 6)[..., 1:].float()
    cols = torch.stack(
        (
            torch.log(pt.clamp_min(tiny)) - 4.0,
            eta * 0.5,
            torch.sin(phi),
            torch.cos(phi),
            torch.log(v[..., 3].clamp_min(tiny)) - 4.5,
        ),
        -1,
    )  # [B, N, 5]
    flag = torch.zeros_like(pt).unsqueeze(-1)  # [B, N, 1]
    feats = torch.cat((cols, onehot, flag), -1)  # [B, N, 11]
    return feats * mask.unsqueeze(-1)


#: what each feature set describes: the particles of jets or the objects of events
FEATURE_KINDS: dict[str, str] = {"part": "jets", "kinematic": "jets", "event": "events"}


def feature_kind(feature_set: str) -> str:
    """What a feature set describes.

    Args:
        feature_set: a name in :data:`FEATURE_SETS`.

    Returns:
        ``"jets"`` (per-particle features) or ``"events"`` (per-object features).
    """
    return FEATURE_KINDS[feature_set]


def feature_sets_of(kind: str) -> list[str]:
    """The feature sets that describe ``kind``.

    Args:
        kind: ``"jets"`` or ``"events"``.

    Returns:
        Their names, in definition order.
    """
    return [name for name, k in FEATURE_KINDS.items() if k == kind]


def build_features(
    feature_set: str,
    vectors: torch.Tensor,
    mask: torch.Tensor,
    charge: torch.Tensor | None,
    type_id: torch.Tensor | None,
) -> torch.Tensor:
    """The features of a feature set from constituent four-vectors and types.

    Args:
        feature_set: a name in :data:`FEATURE_SETS`.
        vectors: ``[B, P, 4]`` (px, py, pz, E) in GeV.
        mask: ``[B, P]`` bool, True for real constituents.
        charge: ``[B, P]`` particle charges (jets; None = unknown).
        type_id: ``[B, P]`` PDG ids (jets) or :class:`~colliderfm.data.schema.ObjectType`
            (events).

    Returns:
        ``[B, P, F]`` float32 features, zero at padding.
    """
    if feature_kind(feature_set) == "events":
        assert type_id is not None, "event features need the object types"
        return event_features(vectors, mask, type_id)  # [B, P, 11]
    return particle_features(vectors, mask, charge, type_id, feature_set)  # [B, P, F]
