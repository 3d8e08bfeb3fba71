"""The tokenizer registry: recipe name -> settings dataclass (a leaf: imports no tokenizer).

``objective.name: vqvae`` names a tokenizer recipe; its ``objective.params`` are validated
against the registered dataclass like every config section.
"""

from __future__ import annotations

from typing import Any

from colliderfm.config import _build
from colliderfm.errors import ConfigError
from colliderfm.registry import Registry

#: tokenizer recipe name -> settings dataclass
TOKENIZERS: Registry[type] = Registry("tokenizer")


def tokenizer_params(name: str, params: dict[str, Any]) -> Any:
    """Validate a tokenizer's settings.

    Args:
        name: tokenizer recipe (``vqvae``).
        params: the ``objective.params`` mapping.

    Returns:
        The settings dataclass instance.
    """
    return _build(TOKENIZERS.get(name, ConfigError), params, "objective.params")
