"""Backbones, heads and the model registry.

``create_model("part", "base")`` builds a registered backbone (``"objt"``: the
:class:`ObjectTransformer` for whole events); ``Classifier(backbone, n)`` adds a
head. Importing this package registers the built-in backbones.
"""

from __future__ import annotations

from colliderfm.models import backbones as _backbones  # noqa: F401  (registers "part")
from colliderfm.models.backbones import ParticleTransformer
from colliderfm.models.heads import Classifier, ClassifierHead, ProjectorHead, TokenHead
from colliderfm.models.objects import ObjectTransformer  # registers "objt"
from colliderfm.models.registry import create_model, list_models, register_model

__all__ = [
    "Classifier",
    "ClassifierHead",
    "ObjectTransformer",
    "ParticleTransformer",
    "ProjectorHead",
    "TokenHead",
    "create_model",
    "list_models",
    "register_model",
]
