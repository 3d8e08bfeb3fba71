"""What a checkpoint can rebuild: one registry of builders, keyed by ``model.task`` (a leaf).

Each task that writes checkpoints registers, next to its module, a function that takes the
checkpoint's :class:`~colliderfm.train.meta.ModelSpec` and returns the freshly initialised
module: ``classifier`` (backbone + head, :mod:`colliderfm.finetune.classifier`), ``pretrain``
(backbone + objective, :mod:`colliderfm.pretrain.base`), ``vqvae`` (tokenizer,
:mod:`colliderfm.tokenizers.vqvae`). :mod:`colliderfm.checkpoints` is the one place that looks a
builder up; nothing imports a builder's module to rebuild a checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from colliderfm.registry import Registry

#: task name -> ``(ModelSpec) -> nn.Module``
BUILDERS: Registry[Callable[[Any], Any]] = Registry("checkpoint task")


def register_builder(task: str) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    """Register a function that rebuilds a module of kind ``task`` from its model spec.

    Args:
        task: the name stored in ``config.yaml`` under ``model.task``.

    Returns:
        Decorator.
    """
    return BUILDERS.register(task)
