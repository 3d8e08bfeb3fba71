"""The JSON sidecar of an ONNX export: how to prepare the inputs, feature by feature.

``<out>.json`` describes the feature list in order with definitions and normalisation, the
four-vector convention (for events also the object types and the MET convention), the inputs
and outputs of the graph, class names, versions and opset. A C++/CMSSW or onnxruntime user
needs nothing else to feed the graph that :func:`colliderfm.export.onnx.export_onnx` writes.

Jets (feature sets ``part`` and ``kinematic``) are described per particle, relative to the jet
axis (the sum of the kept particles' four-vectors); events (feature set ``event``) per
reconstructed object (lepton, b-jet, light jet, MET) with the object type as a one-hot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from colliderfm.data.features import FEATURE_SETS, NORMALISATION, feature_kind
from colliderfm.data.schema import ObjectType
from colliderfm.physics.kinematics import EPS
from colliderfm.train.meta import CheckpointMeta
from colliderfm.version import __version__

SIDECAR_SCHEMA = 1

#: Raw definition of every particle feature (before normalisation); units GeV and radians.
#: The jet axis is the sum of the four-vectors of the jet's kept particles.
FEATURE_DEFINITIONS: dict[str, str] = {
    "log_pt": "ln(pT), pT = sqrt(px^2 + py^2) in GeV",
    "log_e": "ln(E), E in GeV",
    "log_ptrel": "ln(pT / pT_jet)",
    "log_erel": "ln(E / E_jet)",
    "deta": "eta - eta_jet, eta = asinh(pz / pT) (0 where pT = 0)",
    "dphi": "phi - phi_jet wrapped to [-pi, pi), phi = atan2(py, px)",
    "dr": "sqrt(deta^2 + dphi^2)",
    "charge": "electric charge in units of e (0 where unknown)",
    "is_charged_hadron": "1 if pid != 0, charge != 0 and |pid| not in {11, 13}, else 0",
    "is_neutral_hadron": "1 if pid != 0, charge == 0 and |pid| not in {11, 13, 22}, else 0",
    "is_photon": "1 if |pid| == 22, else 0",
    "is_electron": "1 if |pid| == 11, else 0",
    "is_muon": "1 if |pid| == 13, else 0",
}
#: Raw definition of every per-object feature of the ``event`` set (objects of a collision
#: event; ``type`` is the ObjectType code, see the sidecar's ``objects.types``). ``log_pt`` and
#: ``log_e`` have the same raw definition as for particles but their own normalisation.
EVENT_FEATURE_DEFINITIONS: dict[str, str] = {
    "log_pt": "ln(pT) of the object, pT in GeV (MET: its magnitude)",
    "eta": "eta = asinh(pz / pT) of the object, clamped to [-5, 5]; 0 for MET (type 5)",
    "sin_phi": "sin(phi), phi = atan2(py, px) of the object",
    "cos_phi": "cos(phi), phi = atan2(py, px) of the object",
    "log_e": "ln(E) of the object, E in GeV (MET: E = pT)",
    "is_electron": "1 if type == 1 (electron), else 0",
    "is_muon": "1 if type == 2 (muon), else 0",
    "is_bjet": "1 if type == 3 (b-tagged jet), else 0",
    "is_jet": "1 if type == 4 (light jet), else 0",
    "is_met": "1 if type == 5 (missing transverse momentum), else 0",
    "is_masked": "always 0 (set to 1 only by masked object-id pretraining on hidden objects)",
}
# every feature name of every set has a definition (shared names: the particle wording)
FEATURE_DEFINITIONS.update(
    {k: v for k, v in EVENT_FEATURE_DEFINITIONS.items() if k not in FEATURE_DEFINITIONS}
)


def feature_definitions(feature_set: str) -> dict[str, str]:
    """Raw definitions of the features of one feature set.

    Args:
        feature_set: ``"part"``, ``"kinematic"`` or ``"event"``.

    Returns:
        Feature name -> definition (before normalisation), in the set's order.
    """
    events = feature_kind(feature_set) == "events"
    table = EVENT_FEATURE_DEFINITIONS if events else FEATURE_DEFINITIONS
    return {name: table[name] for name in FEATURE_SETS[feature_set]}


def feature_normalisation(feature_set: str, name: str) -> tuple[float, float]:
    """``(shift, scale)`` of one feature, applied as ``(raw + shift) * scale``.

    Event features are stored under ``event_<name>`` in
    :data:`~colliderfm.data.features.NORMALISATION` (their ``log_pt``/``log_e`` differ from the
    particle ones); features without an entry are not normalised.

    Args:
        feature_set: ``"part"``, ``"kinematic"`` or ``"event"``.
        name: feature name within the set.

    Returns:
        ``(shift, scale)``.
    """
    key = f"event_{name}" if feature_kind(feature_set) == "events" else name
    shift, scale = NORMALISATION.get(key, (0.0, 1.0))
    return float(shift), float(scale)


def io_spec(
    task: str,
    n_feat: int,
    float_mask: bool,
    classes: list[str] | None,
    dim: int,
    feature_set: str = "part",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Input and output descriptions for the sidecar.

    Args:
        task: ``"classifier"`` or ``"pretrain"``.
        n_feat: features per particle (object) ``F``.
        float_mask: the mask is float32.
        classes: class names (classifier).
        dim: embedding width (pretrain).
        feature_set: input features; ``"event"`` names the second axis ``objects``.

    Returns:
        (inputs, outputs), each a list of ``{"name", "shape", "dtype", "description"}``.
    """
    event = feature_kind(feature_set) == "events"
    axis, what = ("objects", "object") if event else ("particles", "particle")
    inputs: list[dict[str, Any]] = [
        {
            "name": "features",
            "shape": ["batch", axis, n_feat],
            "dtype": "float32",
            "description": f"normalised {what} features in the order of 'features.names'",
        },
        {
            "name": "mask",
            "shape": ["batch", axis],
            "dtype": "float32" if float_mask else "bool",
            "description": (
                f"1.0 for real {axis}, 0.0 for padding"
                if float_mask
                else f"true for real {axis}, false for padding"
            ),
        },
        {
            "name": "vectors",
            "shape": ["batch", axis, 4],
            "dtype": "float32",
            "description": f"{what} four-momenta (px, py, pz, E) in GeV"
            + (" (MET: pz = 0, E = pT)" if event else ""),
        },
    ]
    if task == "classifier":
        n = len(classes or [])
        outputs = [
            {
                "name": "logits",
                "shape": ["batch", n],
                "dtype": "float32",
                "description": "class logits in the order of 'classes'",
            },
            {
                "name": "probs",
                "shape": ["batch", n],
                "dtype": "float32",
                "description": "softmax of the logits",
            },
        ]
    else:
        outputs = [
            {
                "name": "embedding",
                "shape": ["batch", dim],
                "dtype": "float32",
                "description": f"pooled {'event' if event else 'jet'} representation of the "
                "pretrained backbone",
            }
        ]
    return inputs, outputs


def sidecar(
    meta: CheckpointMeta,
    checkpoint: Path,
    opset: int,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    classes: list[str] | None,
) -> dict[str, Any]:
    """Everything a C++/CMSSW or onnxruntime user needs to prepare inputs.

    Args:
        meta: checkpoint metadata.
        checkpoint: checkpoint directory.
        opset: ONNX opset of the export.
        inputs: input descriptions.
        outputs: output descriptions.
        classes: class names in logit order (classifier), else None.

    Returns:
        The JSON-serialisable sidecar.
    """
    m = meta.model
    data_cfg = (meta.config or {}).get("data") or {}
    feature_set = m.feature_set or data_cfg.get("features", "part")
    max_particles = data_cfg.get("max_particles", 128)
    features = []
    for i, (name, definition) in enumerate(feature_definitions(feature_set).items()):
        shift, scale = feature_normalisation(feature_set, name)
        features.append(
            {"index": i, "name": name, "definition": definition, "shift": shift, "scale": scale}
        )
    event = feature_kind(feature_set) == "events"
    side: dict[str, Any] = {
        "format": "colliderfm-onnx",
        "sidecar_schema": SIDECAR_SCHEMA,
        "colliderfm_version": __version__,
        "checkpoint": {
            "path": str(checkpoint),
            "colliderfm_version": meta.colliderfm_version,
            "task": m.task,
            "model": m.name,
            "preset": m.preset,
            "kwargs": dict(m.kwargs),
            "objective": m.objective,
            "data_fingerprint": meta.data.fingerprint,
        },
        "opset": opset,
        "inputs": inputs,
        "outputs": outputs,
        "classes": classes,
        "features": {
            "set": feature_set,
            "names": list(FEATURE_SETS[feature_set]),
            "normalisation": "value = (raw + shift) * scale, raw as in 'definition'",
            "log_clamp": f"arguments of ln are clamped below at {EPS}",
            "padding": "features, mask and vectors of padded slots are ignored (set them to 0)",
            "reference": "colliderfm.data.features."
            + ("event_features" if event else "particle_features"),
            "per_feature": features,
        },
    }
    if event:
        side["four_vectors"] = {
            "components": ["px", "py", "pz", "E"],
            "units": "GeV",
            "from_pt_eta_phi": "px = pT cos(phi), py = pT sin(phi), pz = pT sinh(eta), E as "
            "measured; MET: pz = 0 and E = pT (eta = 0)",
            "order": "objects sorted by pT descending (MET by its magnitude)",
            "max_objects": max_particles,
            "truncation": f"keep the {max_particles} highest-pT objects of each event",
            "objects_axis": "any length >= 1; padding slots beyond an event's objects are masked",
        }
        side["objects"] = {
            "types": {str(int(t)): t.name.lower() for t in ObjectType},
            "type_encoding": "one-hot in features is_electron..is_met (type 0 = padding)",
            "met_type": int(ObjectType.MET),
            "met": "one object of type 5 per event: the missing transverse momentum",
            "no_event_frame": "features are per object; no per-event axis is subtracted",
        }
    else:
        side["four_vectors"] = {
            "components": ["px", "py", "pz", "E"],
            "units": "GeV",
            "order": "particles sorted by pT descending",
            "max_particles": max_particles,
            "truncation": f"keep the {max_particles} highest-pT particles of each jet",
            "jet_axis": "the sum of the four-vectors of the kept particles (not the clustered "
            "jet); pT_jet, E_jet, eta_jet, phi_jet in the features come from it",
            "particles_axis": "any length >= 1; padding slots beyond a jet's particles are masked",
        }
    return side
