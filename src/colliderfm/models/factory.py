"""Backbones from configs and checkpoint specs (the only place a backbone spec is made or used).

A backbone spec is the ``{"name", "preset", "in_dim", "kwargs"}`` part of checkpoint metadata:
enough to rebuild the backbone with :func:`build_backbone`, without the run's config file.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from torch import nn

from colliderfm.config import Config, ModelConfig
from colliderfm.models.registry import create_model

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
        spec: ``{"name", "preset", "in_dim", "kwargs"}`` (other keys are ignored).

    Returns:
        A freshly initialised backbone.
    """
    return create_model(
        spec["name"], spec["preset"], in_dim=spec["in_dim"], **(spec.get("kwargs") or {})
    )
