"""Rebuilding modules from checkpoints: the one place that turns ``config.yaml`` into a module.

The builder of each ``model.task`` is looked up in :data:`colliderfm.builders.BUILDERS`;
importing the task packages (:mod:`colliderfm.finetune`, :mod:`colliderfm.pretrain`,
:mod:`colliderfm.tokenizers`) registers them. Saving and reading the files themselves is
:mod:`colliderfm.train.checkpoint`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from colliderfm.builders import BUILDERS
from colliderfm.errors import CheckpointError
from colliderfm.runtime import resolve_device
from colliderfm.train.checkpoint import META, WEIGHTS, load_weights, read_checkpoint_meta, resolve
from colliderfm.train.meta import CheckpointMeta, ModelSpec


def _register_builders() -> None:
    import colliderfm.finetune.classifier  # noqa: F401  (classifier)
    import colliderfm.pretrain  # noqa: F401  (pretrain)
    import colliderfm.tokenizers  # noqa: F401  (vqvae)


def build_model(meta: CheckpointMeta | ModelSpec) -> nn.Module:
    """Rebuild a module from checkpoint metadata (no weights).

    Args:
        meta: checkpoint metadata, or its model spec.

    Returns:
        The freshly initialised module.
    """
    _register_builders()
    spec = meta.model if isinstance(meta, CheckpointMeta) else meta
    if spec.task not in BUILDERS:
        raise CheckpointError(f"unknown checkpoint task {spec.task!r} (known: {BUILDERS.names()})")
    return BUILDERS.get(spec.task)(spec)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from a checkpoint directory alone, in eval mode.

    Weights are read to the CPU and then moved, so a checkpoint written on any device loads on
    any other (checkpoints hold CPU copies).

    Args:
        path: checkpoint directory.
        device: where the module's weights go (``cpu``, ``cuda``, ``cuda:N``, ``mps``, or
            ``auto``: CUDA when available); a device this machine lacks is a ConfigError.

    Returns:
        The module with its weights.
    """
    dev = resolve_device(device, what="device")
    module = build_model(read_checkpoint_meta(path))
    load_weights(module, path)
    return module.to(dev).eval()


def is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a checkpoint directory (weights and metadata).

    Args:
        path: any path.

    Returns:
        True for checkpoint directories.
    """
    p = Path(path)
    return (p / WEIGHTS).is_file() and (p / META).is_file()


def describe_checkpoint(path: str | Path) -> dict[str, Any]:
    """What ``colliderfm inspect`` shows for a checkpoint: model, data fingerprint, provenance.

    Args:
        path: checkpoint directory.

    Returns:
        A JSON-friendly summary.
    """
    p = resolve(path)
    meta = read_checkpoint_meta(p)
    module = build_model(meta)
    n_params = sum(t.numel() for t in module.parameters())
    m = meta.model
    info: dict[str, Any] = {
        "path": str(path),
        "kind": "checkpoint",
        "task": m.task,
        "model": {k: v for k, v in m.to_dict().items() if k != "params"},
        "parameters": int(n_params),
        "data": meta.data.to_dict(),
        "colliderfm_version": meta.colliderfm_version,
        "checkpoint_schema": meta.checkpoint_schema,
    }
    if m.params is not None:
        info["params"] = m.params
    state = p / "state.pt"
    info["resumable"] = state.is_file()
    return info


def format_checkpoint(info: dict[str, Any]) -> str:
    """Human-readable text of :func:`describe_checkpoint`.

    Args:
        info: the summary.

    Returns:
        Text lines.
    """
    m = info["model"]
    d = info["data"]
    lines = [
        f"{info['path']}: checkpoint ({info['task']}), colliderfm {info['colliderfm_version']}, "
        f"schema {info['checkpoint_schema']}",
        f"  model: {m.get('name') or m.get('tokenizer')}"
        + (f"/{m['preset']}" if m.get("preset") else "")
        + f", {info['parameters']:,} parameters, features {m.get('feature_set')} "
        f"({m.get('in_dim')})",
    ]
    if m.get("classes"):
        lines.append(f"  classes: {', '.join(m['classes'])}")
    if m.get("objective"):
        lines.append(f"  objective: {m['objective']}")
    fp = d.get("fingerprint")
    lines.append(
        f"  data: {d.get('n_train', '?')} training examples per pass, fingerprint "
        f"{fp or 'not recorded (written before checkpoint schema 2)'}"
    )
    for s in d.get("sources", []):
        n = f", {s['n']} examples" if s.get("n") is not None else ""
        lines.append(f"    source {s['path']} (sha256 {s['sha256']}{n})")
    if d.get("subset"):
        lines.append(f"    subset: {d['subset']}")
    lines.append(f"  resumable: {'yes' if info['resumable'] else 'no'}")
    return "\n".join(lines)
