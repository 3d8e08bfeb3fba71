"""Building classifiers (backbone + head) from configs, checkpoints and pretrained backbones."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from torch import nn

from colliderfm.config import Config, ModelConfig
from colliderfm.errors import CheckpointError
from colliderfm.train.checkpoint import load_weights, read_meta, register_builder

#: every backbone override in ``model`` (all ModelConfig fields but the name and the preset), so
#: a key added to the config reaches the backbone without a second list to keep in step
_MODEL_KEYS = tuple(f.name for f in fields(ModelConfig) if f.name not in ("name", "preset"))


def backbone_spec(cfg: Config, in_dim: int) -> dict[str, Any]:
    """The backbone part of checkpoint metadata from a run config.

    Args:
        cfg: run config (``model`` section).
        in_dim: per-particle input features.

    Returns:
        ``{"name", "preset", "in_dim", "kwargs"}``.
    """
    kwargs = {k: getattr(cfg.model, k) for k in _MODEL_KEYS if getattr(cfg.model, k) is not None}
    return {"name": cfg.model.name, "preset": cfg.model.preset, "in_dim": in_dim, "kwargs": kwargs}


def build_backbone(spec: dict[str, Any]) -> nn.Module:
    """Create a registered backbone from a spec.

    Args:
        spec: ``{"name", "preset", "in_dim", "kwargs"}``.

    Returns:
        A freshly initialised backbone.
    """
    from colliderfm.models.registry import create_model

    return create_model(spec["name"], spec["preset"], in_dim=spec["in_dim"], **spec["kwargs"])


@register_builder("classifier")
def build_classifier(m: dict[str, Any]) -> nn.Module:
    """Rebuild a classifier from checkpoint metadata.

    Args:
        m: the ``model`` section (backbone spec + ``n_classes`` + ``head_hidden``).

    Returns:
        The classifier module (random weights).
    """
    from colliderfm.models.heads import Classifier

    return Classifier(build_backbone(m), m["n_classes"], head_hidden=m.get("head_hidden"))


def pretrained_backbone_spec(init: str | Path, cfg: Config, in_dim: int) -> dict[str, Any]:
    """Backbone spec of a pretrained checkpoint, checked against the requested model.

    Args:
        init: checkpoint directory.
        cfg: run config.
        in_dim: input features of the fine-tuning data.

    Returns:
        The checkpoint's backbone spec.
    """
    meta = read_meta(init)
    m = meta["model"]
    spec = {k: m[k] for k in ("name", "preset", "in_dim", "kwargs")}
    want = backbone_spec(cfg, in_dim)
    if (spec["name"], spec["preset"]) != (want["name"], want["preset"]):
        raise CheckpointError(
            f"{init}: checkpoint holds model {spec['name']}/{spec['preset']} but the config asks "
            f"for {want['name']}/{want['preset']} (use --set model.name={spec['name']} "
            f"--set model.preset={spec['preset']})"
        )
    if spec["in_dim"] != in_dim:
        raise CheckpointError(
            f"{init}: checkpoint was trained on {spec['in_dim']} input features but the data "
            f"gives {in_dim} (data.features={cfg.data.features})"
        )
    return spec


def load_pretrained_backbone(backbone: nn.Module, init: str | Path) -> None:
    """Copy a checkpoint's backbone weights (keys ``backbone.*``) into ``backbone``.

    Args:
        backbone: target backbone with the same architecture.
        init: checkpoint directory (classifier or pretraining run).
    """
    load_weights(backbone, init, prefix="backbone.")
