"""The pretraining-objective interface and registry.

An objective is an ``nn.Module`` holding its own trainable parts (projection head, mask token,
token head, ...) and implementing ``loss(backbone, batch) -> (scalar, logs)``. Adding a recipe
is one new file with a ``@register_objective("name", Params)`` class plus one import line in
``colliderfm/pretrain/__init__.py``. This module is the registry and the interface; it imports no
recipe.

Settings come from the config's ``objective.params`` mapping and are validated against the
objective's ``Params`` dataclass (unknown keys and wrong types are :class:`ConfigError`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colliderfm.builders import register_builder
from colliderfm.config import Config, _build
from colliderfm.data.schema import Batch
from colliderfm.errors import ConfigError
from colliderfm.models.factory import build_backbone
from colliderfm.registry import Registry


class Objective(nn.Module):
    """Base class of pretraining objectives.

    Args:
        params: the validated settings dataclass.
        backbone_dim: width ``D`` of the backbone tokens/embedding.
        in_dim: per-particle input features ``F``.
    """

    Params: type = object

    def __init__(self, params: Any, backbone_dim: int, in_dim: int) -> None:
        super().__init__()
        self.params = params
        self.backbone_dim = backbone_dim
        self.in_dim = in_dim

    def tokenizer_request(self, cfg: Config) -> str | Config | None:
        """What this objective needs from a tokenizer stage run before it (default: nothing).

        Objectives never train anything themselves: the pretraining recipe runs the stage.

        Args:
            cfg: the run's config.

        Returns:
            None (no tokenizer), the path of a trained tokenizer to load, or the config of a
            tokenizer the recipe trains first (into ``out/tokenizer``).
        """
        return None

    def load_tokenizer(self, path: str | Path, feature_set: str) -> None:
        """Check a tokenizer checkpoint against this objective and load its weights.

        Args:
            path: tokenizer checkpoint directory.
            feature_set: the run's ``data.features``.
        """
        raise NotImplementedError(f"{type(self).__name__} uses no tokenizer")

    @classmethod
    def trains_pooling(cls, params: Any) -> bool:
        """Whether the loss reaches the backbone's pooling (class attention and its norm).

        Objectives on per-particle tokens only (MPM, masked object-id) leave it at its random
        initialisation, so their frozen pooled embedding is pretrained tokens seen through a
        random pooling; frozen uses of such a backbone pool its tokens by their mean instead
        (``finetune.frozen_pooling``).

        Args:
            params: the objective's settings dataclass.

        Returns:
            True by default (the objective uses ``embed``).
        """
        return True

    def loss(self, backbone: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Compute the objective on a batch.

        Args:
            backbone: the shared backbone (``forward`` -> tokens, ``embed`` -> pooled).
            batch: an unlabelled (labels ignored) batch.

        Returns:
            (scalar loss, logged metrics).
        """
        raise NotImplementedError


#: recipe name -> objective class (filled by the recipe modules that ``__init__`` imports)
OBJECTIVES: Registry[type[Objective]] = Registry("objective")


def register_objective(name: str, params: type) -> Callable[[type[Objective]], type[Objective]]:
    """Register an objective class under ``name`` with its settings dataclass.

    Args:
        name: recipe name used in ``objective.name``.
        params: dataclass of the recipe's settings.

    Returns:
        Class decorator.
    """

    def deco(cls: type[Objective]) -> type[Objective]:
        cls.Params = params
        return OBJECTIVES.register(name)(cls)

    return deco


def objective_names() -> list[str]:
    """Registered recipe names.

    Returns:
        Sorted names.
    """
    return OBJECTIVES.names()


def make_params(name: str, params: dict[str, Any]) -> Any:
    """Validate a recipe's settings.

    Args:
        name: recipe name.
        params: ``objective.params`` mapping.

    Returns:
        The recipe's params dataclass instance.
    """
    return _build(OBJECTIVES.get(name, ConfigError).Params, params, "objective.params")


def objective_trains_pooling(name: str, params: dict[str, Any]) -> bool:
    """Whether a recipe with these settings trains the backbone's pooling.

    Args:
        name: recipe name.
        params: ``objective.params`` mapping (as stored in a checkpoint).

    Returns:
        :meth:`Objective.trains_pooling` of the recipe.
    """
    return OBJECTIVES.get(name, ConfigError).trains_pooling(make_params(name, params))


def create_objective(
    name: str, params: dict[str, Any], backbone_dim: int, in_dim: int
) -> Objective:
    """Instantiate a registered objective.

    Args:
        name: recipe name.
        params: ``objective.params`` mapping.
        backbone_dim: backbone width.
        in_dim: per-particle input features.

    Returns:
        The objective module.
    """
    p = make_params(name, params)
    return OBJECTIVES.get(name, ConfigError)(p, backbone_dim, in_dim)


class PretrainModel(nn.Module):
    """A backbone plus a pretraining objective: what the loop trains and checkpoints save.

    Args:
        backbone: the shared backbone.
        objective: the recipe's module.
    """

    def __init__(self, backbone: nn.Module, objective: Objective) -> None:
        super().__init__()
        self.backbone = backbone
        self.objective = objective

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """The objective's loss on a batch.

        Args:
            batch: input batch.

        Returns:
            (loss, logs).
        """
        return self.objective.loss(self.backbone, batch)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, vectors: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Pooled backbone embedding (what downstream tasks use).

        Args:
            x: ``[B, P, F]`` features.
            mask: ``[B, P]`` real-particle mask.
            vectors: ``[B, P, 4]`` four-vectors (pair features).

        Returns:
            ``[B, D]`` embedding.
        """
        return self.backbone.embed(x, mask, vectors)  # [B, D]


def params_dict(params: Any) -> dict[str, Any]:
    """A params dataclass as a plain dict.

    Args:
        params: dataclass instance.

    Returns:
        Dict of its fields.
    """
    return dataclasses.asdict(params)


@register_builder("pretrain")
def build_pretrain_model(m: Any) -> nn.Module:
    """Rebuild a backbone + objective module from its checkpoint model spec.

    Args:
        m: the :class:`~colliderfm.train.meta.ModelSpec` (backbone spec, ``objective``,
            ``params``).

    Returns:
        The module (random weights).
    """
    backbone = build_backbone(m.backbone())
    return PretrainModel(backbone, create_objective(m.objective, m.params, backbone.dim, m.in_dim))
