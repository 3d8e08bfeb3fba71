"""The pretraining-objective interface and registry.

An objective is an ``nn.Module`` holding its own trainable parts (projection head, mask token,
token head, ...) and implementing ``loss(backbone, batch) -> (scalar, logs)``. Adding a recipe
is one new file with a ``@register_objective("name", Params)`` class plus one import line in
:data:`_RECIPE_MODULES`.

Settings come from the config's ``objective.params`` mapping and are validated against the
objective's ``Params`` dataclass (unknown keys and wrong types are :class:`ConfigError`).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from colliderfm.config import _build
from colliderfm.data.schema import Batch
from colliderfm.errors import ConfigError

_RECIPE_MODULES = (
    "colliderfm.pretrain.contrastive",
    "colliderfm.pretrain.mpm",
    "colliderfm.pretrain.masked_id",
)


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

    def setup(self, backbone: nn.Module, cfg: Any, out: Any, progress: bool = True) -> None:
        """Prepare before training (e.g. train or load a tokenizer). Default: nothing.

        Args:
            backbone: the backbone that will be trained.
            cfg: the run's :class:`~colliderfm.config.Config`.
            out: the run directory.
            progress: show progress bars.
        """

    def loss(self, backbone: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Compute the objective on a batch.

        Args:
            backbone: the shared backbone (``forward`` -> tokens, ``embed`` -> pooled).
            batch: an unlabelled (labels ignored) batch.

        Returns:
            (scalar loss, logged metrics).
        """
        raise NotImplementedError


_OBJECTIVES: dict[str, type[Objective]] = {}


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
        _OBJECTIVES[name] = cls
        return cls

    return deco


def _load_recipes() -> None:
    for mod in _RECIPE_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def objective_names() -> list[str]:
    """Registered recipe names.

    Returns:
        Sorted names.
    """
    _load_recipes()
    return sorted(_OBJECTIVES)


def make_params(name: str, params: dict[str, Any]) -> Any:
    """Validate a recipe's settings.

    Args:
        name: recipe name.
        params: ``objective.params`` mapping.

    Returns:
        The recipe's params dataclass instance.
    """
    _load_recipes()
    if name not in _OBJECTIVES:
        raise ConfigError(f"unknown objective '{name}' (valid: {', '.join(sorted(_OBJECTIVES))})")
    return _build(_OBJECTIVES[name].Params, params, "objective.params")


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
    return _OBJECTIVES[name](p, backbone_dim, in_dim)


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
