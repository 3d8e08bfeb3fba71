"""ONNX export of classifier and pretraining checkpoints, with a JSON sidecar for users.

The model is rebuilt from the checkpoint alone with ``pack=False`` (the packed path uses
data-dependent shapes that a trace cannot capture; both paths compute the same function),
traced with the TorchScript-based exporter and written atomically. The ONNX graph takes

====================  ===========  =========================================================
``features``          float32      ``[batch, particles, F]`` normalised particle features
``mask``              bool         ``[batch, particles]``, True for real particles (float32,
                                   1 = real, 0 = padding, with ``mask_dtype="float"``)
``vectors``           float32      ``[batch, particles, 4]`` (px, py, pz, E) in GeV
====================  ===========  =========================================================

with dynamic ``batch`` and ``particles`` axes, and returns ``logits`` and ``probs`` ``[batch, C]``
(classifier checkpoints) or ``embedding`` ``[batch, D]`` (pretraining checkpoints). Padding may
hold anything (it is zeroed inside the graph). A float mask exists for runtimes that only feed
float tensors (CMSSW's ``cms::Ort::ONNXRuntime``).

Event models (feature set ``event``, e.g. the ``objt`` ObjectTransformer) take the same three
inputs with an ``objects`` axis instead of ``particles``: one row per reconstructed object
(lepton, b-jet, light jet, MET), the 11 per-object features of
:data:`~colliderfm.data.features.EVENT_FEATURES` (object type as a one-hot) and the objects'
four-vectors (MET: ``pz = 0``, ``E = pT``).

``<out>.json`` (the sidecar) describes how to prepare the inputs: the feature list in order with
definitions and normalisation, the four-vector convention (for events also the object types and
the MET convention), class names, versions and opset.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from colliderfm import __version__
from colliderfm.data.features import (
    FEATURE_SETS,
    NORMALISATION,
    event_features,
    particle_features,
)
from colliderfm.data.schema import ObjectType
from colliderfm.errors import ColliderFMError, ConfigError, require
from colliderfm.physics.kinematics import EPS

SIDECAR_SCHEMA = 1
MIN_OPSET = 14  # scaled_dot_product_attention needs opset 14
MAX_OPSET = 20  # newest opset of torch's TorchScript-based exporter
MAX_DIFF = 1e-3  # verification: largest |onnxruntime - torch| accepted

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
    table = EVENT_FEATURE_DEFINITIONS if feature_set == "event" else FEATURE_DEFINITIONS
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
    key = f"event_{name}" if feature_set == "event" else name
    shift, scale = NORMALISATION.get(key, (0.0, 1.0))
    return float(shift), float(scale)


class ExportError(ColliderFMError):
    """A checkpoint cannot be exported (wrong kind of checkpoint, unsupported option)."""


class _ExportWrapper(nn.Module):
    """Fixed-signature module for tracing: ``(features, mask, vectors) -> outputs``."""

    def __init__(self, model: nn.Module, task: str, float_mask: bool) -> None:
        """Wrap a model.

        Args:
            model: classifier (``forward -> logits``) or backbone (``embed -> [B, D]``).
            task: ``"classifier"`` or ``"pretrain"``.
            float_mask: the mask input is float (1 = real particle) instead of bool.
        """
        super().__init__()
        self.model = model
        self.task = task
        self.float_mask = float_mask

    def forward(
        self, features: torch.Tensor, mask: torch.Tensor, vectors: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """Run the model.

        Args:
            features: ``[B, P, F]`` float32.
            mask: ``[B, P]`` bool (or float32 with ``float_mask``).
            vectors: ``[B, P, 4]`` float32 (px, py, pz, E) in GeV.

        Returns:
            ``(logits [B, C], probs [B, C])`` or ``(embedding [B, D],)``.
        """
        real = mask > 0.5 if self.float_mask else mask  # [B, P] bool
        if self.task == "classifier":
            logits = self.model(features, real, vectors)  # [B, C]
            return logits, torch.softmax(logits, dim=-1)  # [B, C], [B, C]
        return (self.model.embed(features, real, vectors),)  # [B, D]


def _onnx_atan2(g: Any, y: Any, x: Any) -> Any:
    """``atan2`` for the exporter, 0 at (0, 0) like torch (the built-in gives NaN there)."""
    zero = g.op("Constant", value_t=torch.tensor(0.0))
    one = g.op("Constant", value_t=torch.tensor(1.0))
    pi = g.op("Constant", value_t=torch.tensor(math.pi))
    origin = g.op("And", g.op("Equal", x, zero), g.op("Equal", y, zero))
    x_safe = g.op("Where", origin, one, x)
    base = g.op("Atan", g.op("Div", y, x_safe))  # x == 0: +-inf -> +-pi/2
    left = g.op("Where", g.op("Less", y, zero), g.op("Sub", base, pi), g.op("Add", base, pi))
    return g.op("Where", g.op("Less", x_safe, zero), left, base)


def _onnx_hypot(g: Any, a: Any, b: Any) -> Any:
    """``hypot`` for the exporter (no ONNX op): ``sqrt(a^2 + b^2)``."""
    return g.op("Sqrt", g.op("Add", g.op("Mul", a, a), g.op("Mul", b, b)))


@contextlib.contextmanager
def _symbolics(opset: int) -> Iterator[None]:
    """Temporarily register the exporter translations this model needs.

    Args:
        opset: target opset.
    """
    from torch.onnx import register_custom_op_symbolic, unregister_custom_op_symbolic

    ops = {"aten::atan2": _onnx_atan2, "aten::hypot": _onnx_hypot}
    for name, fn in ops.items():
        register_custom_op_symbolic(name, fn, opset)
    try:
        yield
    finally:
        for name in ops:
            unregister_custom_op_symbolic(name, opset)


def example_batch(
    batch: int, particles: int, feature_set: str, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A small batch of random jet-like (or event-like) inputs with padding.

    Used for tracing and checks. For ``feature_set="event"`` the rows are events: random
    objects of every :class:`~colliderfm.data.schema.ObjectType`, the last real one MET
    (``pz = 0``, ``E = pT``), features from :func:`~colliderfm.data.features.event_features`.

    Args:
        batch: jets/events ``B`` (>= 2).
        particles: particle/object slots ``P`` (>= 2); row 0 fills them, row 1 has padding.
        feature_set: feature set of the model.
        seed: RNG seed.

    Returns:
        ``features [B, P, F]`` float32, ``mask [B, P]`` bool, ``vectors [B, P, 4]`` float32.
    """
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, particles + 1, size=batch)
    counts[0], counts[1] = particles, max(1, particles // 2)
    mask = torch.from_numpy(np.arange(particles)[None, :] < counts[:, None])  # [B, P]
    if feature_set == "event":
        return _example_events(rng, counts, mask)
    pt = rng.exponential(10.0, (batch, particles)) + 0.5  # GeV
    eta = rng.normal(0.0, 0.2, (batch, particles)) + rng.normal(0.0, 1.0, (batch, 1))
    phi = rng.normal(0.0, 0.2, (batch, particles)) + rng.uniform(-3.0, 3.0, (batch, 1))
    pz = pt * np.sinh(eta)
    vec = np.stack((pt * np.cos(phi), pt * np.sin(phi), pz, np.sqrt(pt**2 + pz**2)), -1)
    vectors = torch.from_numpy(vec.astype(np.float32)) * mask.unsqueeze(-1)  # [B, P, 4]
    charge = torch.from_numpy(rng.integers(-1, 2, (batch, particles)).astype(np.float32))
    pid = torch.where(charge != 0, 211 * charge.long(), 22) * mask  # [B, P]
    feats = particle_features(vectors, mask, charge * mask, pid, feature_set)  # [B, P, F]
    return feats, mask, vectors


def _example_events(
    rng: np.random.Generator, counts: np.ndarray, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random events for :func:`example_batch`: objects of every type, MET last (vectorised).

    Args:
        rng: random generator.
        counts: ``[B]`` real objects per event.
        mask: ``[B, P]`` bool, True for real objects.

    Returns:
        ``features [B, P, 11]``, ``mask [B, P]``, ``vectors [B, P, 4]`` (px, py, pz, E in GeV).
    """
    b, p = mask.shape
    obj = rng.integers(int(ObjectType.ELECTRON), int(ObjectType.MET), (b, p))  # [B, P] 1..4
    is_met = np.arange(p)[None, :] == (counts[:, None] - 1)  # [B, P] last real object
    obj = np.where(is_met, int(ObjectType.MET), obj) * mask.numpy()  # [B, P], 0 at padding
    pt = rng.exponential(50.0, (b, p)) + 20.0  # GeV
    eta = np.where(is_met, 0.0, rng.normal(0.0, 1.5, (b, p)))
    phi = rng.uniform(-np.pi, np.pi, (b, p))
    mass = np.where(obj >= int(ObjectType.BJET), 0.1 * pt, 0.0)  # jets are massive
    pz = pt * np.sinh(eta)
    e = np.where(is_met, pt, np.sqrt(pt**2 + pz**2 + mass**2))
    vec = np.stack((pt * np.cos(phi), pt * np.sin(phi), pz, e), -1)  # [B, P, 4]
    vectors = torch.from_numpy(vec.astype(np.float32)) * mask.unsqueeze(-1)  # [B, P, 4]
    obj_type = torch.from_numpy(obj.astype(np.int64))  # [B, P]
    feats = event_features(vectors, mask, obj_type)  # [B, P, 11]
    return feats, mask, vectors


def _rebuild(checkpoint: Path, meta: dict[str, Any]) -> tuple[nn.Module, str]:
    """Rebuild the exported part of a checkpoint with ``pack=False`` and load its weights.

    Args:
        checkpoint: checkpoint directory.
        meta: its metadata.

    Returns:
        (module in eval mode, task).
    """
    from colliderfm.finetune.classifier import build_backbone, build_classifier
    from colliderfm.train.checkpoint import load_weights

    m = meta["model"]
    task = m.get("task", "classifier")
    if task not in ("classifier", "pretrain"):
        raise ExportError(
            f"{checkpoint}: cannot export a '{task}' checkpoint; export a classifier "
            "(colliderfm finetune) or a pretraining run (colliderfm pretrain)"
        )
    spec = {**m, "kwargs": {**(m.get("kwargs") or {}), "pack": False}}
    try:
        build_backbone(spec)
    except ConfigError:  # a backbone without a packed path: build it as it was trained
        spec = m
    if task == "classifier":
        module = build_classifier(spec)
        load_weights(module, checkpoint)
    else:
        module = build_backbone(spec)
        load_weights(module, checkpoint, prefix="backbone.")
    return module.eval(), task


def _io_spec(
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
    event = feature_set == "event"
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
    meta: dict[str, Any],
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
    m = meta["model"]
    data_cfg = (meta.get("config") or {}).get("data") or {}
    feature_set = m.get("feature_set") or data_cfg.get("features", "part")
    max_particles = data_cfg.get("max_particles", 128)
    features = []
    for i, (name, definition) in enumerate(feature_definitions(feature_set).items()):
        shift, scale = feature_normalisation(feature_set, name)
        features.append(
            {"index": i, "name": name, "definition": definition, "shift": shift, "scale": scale}
        )
    event = feature_set == "event"
    side: dict[str, Any] = {
        "format": "colliderfm-onnx",
        "sidecar_schema": SIDECAR_SCHEMA,
        "colliderfm_version": __version__,
        "checkpoint": {
            "path": str(checkpoint),
            "colliderfm_version": meta.get("colliderfm_version"),
            "task": m.get("task", "classifier"),
            "model": m.get("name"),
            "preset": m.get("preset"),
            "kwargs": m.get("kwargs") or {},
            "objective": m.get("objective"),
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


def _write_atomic_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _verify(
    path: Path, wrapper: _ExportWrapper, feature_set: str, float_mask: bool
) -> float | None:
    """Largest ``|onnxruntime - torch|`` on a batch shaped unlike the trace (None without ORT).

    Args:
        path: ONNX file.
        wrapper: the traced module.
        feature_set: input features.
        float_mask: the mask input is float.

    Returns:
        Max absolute difference over all outputs, or None when onnxruntime is missing.
    """
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - onnxruntime is in the same extra
        return None
    feats, mask, vectors = example_batch(5, 9, feature_set, seed=1)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    m = mask.float() if float_mask else mask
    feed = {"features": feats.numpy(), "mask": m.numpy(), "vectors": vectors.numpy()}
    got = sess.run(None, {i.name: feed[i.name] for i in sess.get_inputs()})
    with torch.no_grad():
        want = wrapper(feats, m, vectors)
    return max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want, strict=True))


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    opset: int = 17,
    mask_dtype: str = "bool",
    verify: bool = True,
) -> dict[str, Any]:
    """Export a classifier or pretraining checkpoint to ONNX plus a JSON sidecar.

    Jet models (feature sets ``part``/``kinematic``) get a ``particles`` axis, event models
    (feature set ``event``, e.g. an ``objt`` classifier) an ``objects`` axis; both axes and the
    batch axis are dynamic.

    Args:
        checkpoint: checkpoint directory (``model.safetensors`` + ``config.yaml``).
        out: ONNX file to write (``<out>.json`` is the sidecar); written atomically.
        opset: ONNX opset (14-20).
        mask_dtype: ``"bool"`` or ``"float"`` (for runtimes that only take float inputs).
        verify: run the exported file with onnxruntime on a batch shaped unlike the trace and
            report the largest difference to torch.

    Returns:
        ``{"onnx", "sidecar", "task", "opset", "inputs", "outputs", "classes",
        "max_abs_diff"}`` (``max_abs_diff`` is None when not verified).
    """
    onnx = require("onnx", "onnx")
    from colliderfm.train.checkpoint import read_meta

    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"opset {opset} is not supported (choose {MIN_OPSET}-{MAX_OPSET})")
    if mask_dtype not in ("bool", "float"):
        raise ExportError(f"mask dtype must be 'bool' or 'float', got {mask_dtype!r}")
    checkpoint, out = Path(checkpoint), Path(out)
    meta = read_meta(checkpoint)
    model, task = _rebuild(checkpoint, meta)
    float_mask = mask_dtype == "float"
    wrapper = _ExportWrapper(model, task, float_mask).eval()
    feature_set = meta["model"].get("feature_set") or "part"
    if feature_set not in FEATURE_SETS:
        raise ExportError(
            f"{checkpoint}: unknown feature set {feature_set!r} "
            f"(expected one of {', '.join(FEATURE_SETS)})"
        )
    n_feat = len(FEATURE_SETS[feature_set])
    classes = meta["model"].get("classes")
    if task == "classifier" and not classes:
        classes = [str(i) for i in range(int(model.n_classes))]
    inputs, outputs = _io_spec(task, n_feat, float_mask, classes, int(model.dim), feature_set)
    feats, mask, vectors = example_batch(2, 4, feature_set)
    example = (feats, mask.float() if float_mask else mask, vectors)
    names_in = [i["name"] for i in inputs]
    names_out = [o["name"] for o in outputs]
    axis = "objects" if feature_set == "event" else "particles"
    axes = {n: {0: "batch", 1: axis} for n in names_in}
    axes.update({n: {0: "batch"} for n in names_out})
    if not out.parent.exists():
        raise ExportError(f"{out.parent}: output directory does not exist")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.tmp-", suffix=".onnx", dir=out.parent)
    except OSError as exc:
        raise ExportError(f"{out}: cannot write ({exc.strerror or exc})") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    side_path = out.with_name(out.name + ".json")
    try:
        with torch.no_grad(), _symbolics(opset), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # constant shape checks
            warnings.simplefilter("ignore", DeprecationWarning)  # "legacy exporter"
            torch.onnx.export(
                wrapper,
                example,
                str(tmp),
                input_names=names_in,
                output_names=names_out,
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        proto = onnx.load(str(tmp))
        onnx.checker.check_model(proto)
        # the exporter drops unused inputs (``vectors`` of a backbone without pair features)
        present = {i.name for i in proto.graph.input}
        inputs = [i for i in inputs if i["name"] in present]
        info = {
            "colliderfm_version": __version__,
            "task": task,
            "feature_set": feature_set,
            "classes": json.dumps(classes),
            "sidecar": out.name + ".json",
        }
        for k, v in info.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, str(v)
        onnx.save(proto, str(tmp))
        diff = _verify(tmp, wrapper, feature_set, float_mask) if verify else None
        if diff is not None and not diff < MAX_DIFF:
            raise ExportError(
                f"{checkpoint}: the exported model differs from torch by {diff:.3g} "
                f"(> {MAX_DIFF}); not written (please report this)"
            )
        side = sidecar(meta, checkpoint, opset, inputs, outputs, classes)
        # the sidecar first: a model file never appears without its description
        _write_atomic_text(side_path, json.dumps(side, indent=2) + "\n")
        os.replace(tmp, out)
    except OSError as exc:
        raise ExportError(f"{out}: cannot write ({exc.strerror or exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return {
        "onnx": str(out),
        "sidecar": str(side_path),
        "task": task,
        "opset": opset,
        "inputs": inputs,
        "outputs": outputs,
        "classes": classes,
        "max_abs_diff": diff,
    }
