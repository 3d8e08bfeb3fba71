"""Model registry: ``@register_model(name, presets)`` on a backbone class, ``create_model(name)``.

Follows timm/torchtune: a backbone class is registered under a short name together with its size
presets (``tiny``, ``small``, ``base``: constructor keyword arguments). ``create_model`` builds a
preset and applies overrides; ``None`` overrides are skipped so a
:class:`~colliderfm.config.ModelConfig` can be passed through unchanged.

A leaf, like timm's ``_registry.py``: it imports no model. ``colliderfm/models/__init__.py``
imports every model module, so importing anything from ``colliderfm.models`` registers them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from colliderfm.errors import ConfigError

#: Default per-particle input width (the 13 ParT features of ``colliderfm.data.features``).
DEFAULT_IN_DIM = 13

_REGISTRY: dict[str, tuple[type[nn.Module], dict[str, dict[str, Any]]]] = {}


def register_model(
    name: str, presets: dict[str, dict[str, Any]]
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator registering a backbone under ``name`` with its size presets.

    Args:
        name: registry name (e.g. ``"part"``).
        presets: preset name -> constructor keyword arguments.

    Returns:
        The decorator (returns the class unchanged).
    """

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        valid = _constructor_keys(cls)
        for preset, kwargs in presets.items():
            bad = sorted(set(kwargs) - valid)
            if bad:
                raise TypeError(f"preset {name}/{preset}: {cls.__name__} has no argument {bad}")
        _REGISTRY[name] = (cls, {k: dict(v) for k, v in presets.items()})
        return cls

    return deco


def _constructor_keys(cls: type) -> set[str]:
    params = inspect.signature(cls.__init__).parameters
    return {
        k
        for k, p in params.items()
        if k != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def create_model(name: str, preset: str = "small", **overrides: Any) -> nn.Module:
    """Build a registered backbone from a preset plus overrides.

    Args:
        name: registered model name (see :func:`list_models`).
        preset: size preset of that model.
        **overrides: constructor arguments replacing the preset's (``None`` values are ignored).

    Returns:
        The freshly initialised backbone.

    Raises:
        ConfigError: unknown name, preset or override key (the message lists the valid ones).
    """
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model '{name}' (registered: {', '.join(sorted(_REGISTRY))})")
    cls, presets = _REGISTRY[name]
    if preset not in presets:
        raise ConfigError(
            f"model '{name}' has no preset '{preset}' (presets: {', '.join(presets)})"
        )
    valid = _constructor_keys(cls)
    kwargs = dict(presets[preset])
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in valid:
            raise ConfigError(
                f"model '{name}' has no option '{key}' (valid: {', '.join(sorted(valid))})"
            )
        kwargs[key] = value
    return cls(**kwargs)


def list_models() -> list[tuple[str, str, int]]:
    """Every registered model and preset with its parameter count.

    Returns:
        ``(name, preset, n_parameters)`` with each model's default ``in_dim`` (the 13 ParT
        features for ``part``, the 11 event features for ``objt``).
    """
    out = []
    for name, (_, presets) in sorted(_REGISTRY.items()):
        for preset in presets:
            model = create_model(name, preset)
            out.append((name, preset, sum(p.numel() for p in model.parameters())))
    return out


def registered() -> dict[str, list[str]]:
    """Registered model names and their preset names (no models are built).

    Returns:
        name -> list of presets.
    """
    return {name: list(presets) for name, (_, presets) in sorted(_REGISTRY.items())}
