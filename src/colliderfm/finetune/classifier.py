"""Classifiers (backbone + head): the checkpoint builder, and backbones from pretrained runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from colliderfm.builders import register_builder
from colliderfm.config import Config
from colliderfm.errors import CheckpointError, ConfigError
from colliderfm.models.factory import backbone_spec, build_backbone
from colliderfm.models.heads import Classifier
from colliderfm.pretrain.base import objective_trains_pooling
from colliderfm.train.checkpoint import load_weights, read_checkpoint_meta
from colliderfm.train.meta import ModelSpec
from colliderfm.zoo import checkpoint_path


def as_spec(m: ModelSpec | dict[str, Any]) -> ModelSpec:
    """A model spec from checkpoint metadata, typed or as its plain ``model`` section.

    Args:
        m: the spec or the mapping.

    Returns:
        The typed spec.
    """
    return m if isinstance(m, ModelSpec) else ModelSpec.from_dict(m)


@register_builder("classifier")
def build_classifier(m: ModelSpec | dict[str, Any]) -> nn.Module:
    """Rebuild a classifier from its model spec.

    Args:
        m: backbone spec + ``n_classes`` + ``head_hidden`` (typed, or the plain mapping).

    Returns:
        The classifier module (random weights).
    """
    spec = as_spec(m)
    assert spec.n_classes is not None, "a classifier spec needs n_classes"
    return Classifier(build_backbone(spec.backbone()), spec.n_classes, head_hidden=spec.head_hidden)


def pretrained_backbone_spec(init: str | Path, cfg: Config, in_dim: int) -> dict[str, Any]:
    """Backbone spec of a pretrained checkpoint, checked against the requested model.

    Args:
        init: checkpoint directory, or ``zoo:NAME`` (a shipped checkpoint).
        cfg: run config.
        in_dim: input features of the fine-tuning data.

    Returns:
        The checkpoint's backbone spec.
    """
    spec = read_checkpoint_meta(checkpoint_path(init)).model.backbone()
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
        backbone: target backbone with the same architecture, or the same one pooling by the
            mean where the checkpoint's pools by class attention (its pooling is then not
            loaded; see :func:`frozen_pooling`).
        init: checkpoint directory (classifier or pretraining run), or ``zoo:NAME``.
    """
    mean = getattr(backbone, "pooling", None) == "mean"
    load_weights(
        backbone,
        checkpoint_path(init),
        prefix="backbone.",
        drop=getattr(backbone, "POOLING_KEYS", ()) if mean else (),
    )


def pooling_pretrained(init: str | Path) -> bool:
    """Whether a checkpoint's backbone pooling was trained.

    A classifier checkpoint trained everything; a pretraining checkpoint trained its pooling
    when its objective did (:func:`~colliderfm.pretrain.base.objective_trains_pooling`: not for
    MPM, nor for masked object-id without pooled kinematics).

    Args:
        init: checkpoint directory or ``zoo:NAME``.

    Returns:
        True when the pooling was trained.
    """
    m = read_checkpoint_meta(checkpoint_path(init)).model
    if m.task != "pretrain" or not m.objective:
        return True
    return objective_trains_pooling(m.objective, dict(m.params or {}))


def frozen_pooling(setting: str, init: str, mode: str, spec: dict[str, Any]) -> tuple[str, str]:
    """How the backbone of a fine-tuning run pools: ``finetune.frozen_pooling`` resolved.

    In the frozen modes (``frozen``, ``linear``) a pooling that pretraining never trained stays
    random, so ``auto`` pools such a backbone's pretrained tokens by their masked mean instead
    (the pooling's norm stays, at its initialisation); ``mean`` always does, ``keep`` never.
    ``best`` (mode ``linear`` only) builds the backbone with its own pooling and lets the
    linear probe fit the token mean too, keeping the better on validation AUC
    (:func:`colliderfm.recipes.finetune.run_linear_probe`).
    Modes that train the backbone (``full``, ``lp-ft``) keep the checkpoint's pooling: it
    trains there.

    Args:
        setting: ``auto``, ``keep``, ``mean`` or ``best``.
        init: ``finetune.init`` (a checkpoint, ``zoo:NAME`` or ``none``).
        mode: ``finetune.mode``.
        spec: the backbone spec (its ``kwargs`` may hold ``pooling``).

    Returns:
        (``cls`` or ``mean``, why).
    """
    have = str(spec.get("kwargs", {}).get("pooling", "cls"))
    if setting == "best" and mode == "frozen":
        raise ConfigError(
            "config key 'finetune.frozen_pooling' = 'best' chooses the pooling on validation "
            "for the linear probe only (mode linear); use auto, keep or mean with mode frozen"
        )
    if setting == "best" and mode == "linear" and have == "cls":
        return have, "the backbone's own pooling; the token mean competes on validation"
    if mode not in ("frozen", "linear") or setting in ("keep", "best") or have == "mean":
        return have, "the backbone's own pooling"
    if setting == "mean":
        return "mean", "finetune.frozen_pooling=mean"
    if init == "none" or pooling_pretrained(init):
        return have, "the backbone's own pooling (trained, or a random backbone)"
    return "mean", "its pretraining did not train the class-attention pooling"
