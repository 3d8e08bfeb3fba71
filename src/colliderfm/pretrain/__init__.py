"""Self-supervised pretraining objectives; importing this package registers every recipe.

Each recipe is one module with a ``@register_objective`` class: contrastive (JetCLR / SimCLR),
masked particle modelling (MPM) and masked object identification on events.
"""

from __future__ import annotations

from colliderfm.pretrain import contrastive, masked_id, mpm  # noqa: F401  (register recipes)
from colliderfm.pretrain.base import (
    OBJECTIVES,
    Objective,
    PretrainModel,
    create_objective,
    make_params,
    objective_names,
    register_objective,
)

__all__ = [
    "OBJECTIVES",
    "Objective",
    "PretrainModel",
    "create_objective",
    "make_params",
    "objective_names",
    "register_objective",
]
