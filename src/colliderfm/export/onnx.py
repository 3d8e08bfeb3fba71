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

``<out>.json`` (the sidecar, :mod:`colliderfm.export.sidecar`) describes how to prepare the
inputs: the feature list in order with definitions and normalisation, the four-vector
convention (for events also the object types and the MET convention), class names, versions and
opset. This module builds, writes and verifies the graph.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from colliderfm.data.features import FEATURE_SETS, event_features, feature_kind, particle_features
from colliderfm.data.schema import ObjectType
from colliderfm.errors import ColliderFMError, ConfigError, DataError, require
from colliderfm.export.sidecar import (
    EVENT_FEATURE_DEFINITIONS,
    FEATURE_DEFINITIONS,
    SIDECAR_SCHEMA,
    feature_definitions,
    feature_normalisation,
    io_spec,
    sidecar,
)
from colliderfm.fileio import atomic_path, write_text
from colliderfm.train.meta import CheckpointMeta
from colliderfm.version import __version__

__all__ = [
    "EVENT_FEATURE_DEFINITIONS",
    "FEATURE_DEFINITIONS",
    "SIDECAR_SCHEMA",
    "ExportError",
    "example_batch",
    "export_onnx",
    "feature_definitions",
    "feature_normalisation",
    "sidecar",
]

MIN_OPSET = 14  # scaled_dot_product_attention needs opset 14
MAX_OPSET = 20  # newest opset of torch's TorchScript-based exporter
MAX_DIFF = 1e-3  # verification: largest |onnxruntime - torch| accepted


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
    if feature_kind(feature_set) == "events":
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


def _rebuild(checkpoint: Path, meta: CheckpointMeta) -> tuple[nn.Module, str]:
    """Rebuild the exported part of a checkpoint with ``pack=False`` and load its weights.

    Args:
        checkpoint: checkpoint directory.
        meta: its metadata.

    Returns:
        (module in eval mode, task).
    """
    from colliderfm.checkpoints import build_model
    from colliderfm.models.factory import build_backbone
    from colliderfm.train.checkpoint import load_weights

    m = meta.model
    if m.task not in ("classifier", "pretrain"):
        raise ExportError(
            f"{checkpoint}: cannot export a '{m.task}' checkpoint; export a classifier "
            "(colliderfm finetune) or a pretraining run (colliderfm pretrain)"
        )
    spec = dataclasses.replace(m, kwargs={**m.kwargs, "pack": False})
    try:
        build_backbone(spec.backbone())
    except ConfigError:  # a backbone without a packed path: build it as it was trained
        spec = m
    if m.task == "classifier":
        module = build_model(spec)
        load_weights(module, checkpoint)
    else:
        module = build_backbone(spec.backbone())
        load_weights(module, checkpoint, prefix="backbone.")
    return module.eval(), m.task


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
    from colliderfm.train.checkpoint import read_checkpoint_meta

    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"opset {opset} is not supported (choose {MIN_OPSET}-{MAX_OPSET})")
    if mask_dtype not in ("bool", "float"):
        raise ExportError(f"mask dtype must be 'bool' or 'float', got {mask_dtype!r}")
    checkpoint, out = Path(checkpoint), Path(out)
    meta = read_checkpoint_meta(checkpoint)
    model, task = _rebuild(checkpoint, meta)
    float_mask = mask_dtype == "float"
    wrapper = _ExportWrapper(model, task, float_mask).eval()
    feature_set = meta.model.feature_set or "part"
    if feature_set not in FEATURE_SETS:
        raise ExportError(
            f"{checkpoint}: unknown feature set {feature_set!r} "
            f"(expected one of {', '.join(FEATURE_SETS)})"
        )
    n_feat = len(FEATURE_SETS[feature_set])
    classes = meta.model.classes
    if task == "classifier" and not classes:
        classes = [str(i) for i in range(int(model.n_classes))]
    inputs, outputs = io_spec(task, n_feat, float_mask, classes, int(model.dim), feature_set)
    feats, mask, vectors = example_batch(2, 4, feature_set)
    example = (feats, mask.float() if float_mask else mask, vectors)
    names_in = [i["name"] for i in inputs]
    names_out = [o["name"] for o in outputs]
    axis = "objects" if feature_kind(feature_set) == "events" else "particles"
    axes = {n: {0: "batch", 1: axis} for n in names_in}
    axes.update({n: {0: "batch"} for n in names_out})
    if not out.parent.exists():
        raise ExportError(f"{out.parent}: output directory does not exist")
    side_path = out.with_name(out.name + ".json")
    try:
        with atomic_path(out, suffix=".onnx") as tmp:
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
                "sidecar": side_path.name,
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
            write_text(side_path, json.dumps(side, indent=2) + "\n")
    except DataError as exc:  # disk full, no permission: the temporary file is removed
        raise ExportError(str(exc)) from exc
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
