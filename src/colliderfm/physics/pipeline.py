"""Plumbing shared by the jet and event augmentation pipelines: seeded draws and config parsing.

An augmentation is a function ``f(data, *, p=..., <param>=<default>, ..., generator=None)``; a
pipeline config maps augmentation names to their parameters. :func:`build_steps` validates such a
config against the functions' signatures (unknown names, unknown parameters, wrong types and
out-of-range values are :class:`~colliderfm.errors.ConfigError` naming the key) and returns the
steps in the pipeline's fixed order.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from colliderfm.errors import ConfigError

Steps = list[tuple[str, dict[str, Any]]]


def _draws(
    sampler: Callable[..., torch.Tensor],
    shape: tuple[int, ...],
    like: torch.Tensor,
    gen: torch.Generator | None,
) -> torch.Tensor:
    """Draws of ``sampler`` on the generator's device, moved to ``like``'s device and dtype."""
    dev = gen.device if gen is not None else like.device
    return sampler(shape, generator=gen, device=dev, dtype=like.dtype).to(like.device)


def rand(shape: tuple[int, ...], like: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """Uniform [0, 1) draws on the generator's device, moved to ``like``'s device and dtype.

    Args:
        shape: output shape.
        like: tensor whose device and dtype the result takes.
        gen: RNG (None: torch's global one).

    Returns:
        The draws.
    """
    return _draws(torch.rand, shape, like, gen)


def randn(shape: tuple[int, ...], like: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """Standard normal draws, like :func:`rand`.

    Args:
        shape: output shape.
        like: tensor whose device and dtype the result takes.
        gen: RNG (None: torch's global one).

    Returns:
        The draws.
    """
    return _draws(torch.randn, shape, like, gen)


def tunable(fn: Callable[..., Any]) -> dict[str, Any]:
    """Tunable parameters of an augmentation (keyword-only ones except ``generator``).

    Args:
        fn: the augmentation.

    Returns:
        Parameter name -> default.
    """
    return {
        k: v.default
        for k, v in inspect.signature(fn).parameters.items()
        if v.kind is inspect.Parameter.KEYWORD_ONLY and k != "generator"
    }


def check_value(
    where: str,
    value: Any,
    default: Any,
    choices: Mapping[str, tuple[str, ...]],
    ranges: Mapping[str, tuple[float, float]],
) -> None:
    """Raise :class:`ConfigError` if ``value`` has the wrong type or is out of range.

    Args:
        where: ``augment.<name>.<key>`` (the key is the part after the last dot).
        value: the configured value.
        default: the parameter's default (its type is the expected one).
        choices: allowed strings of string parameters, by key.
        ranges: inclusive ``(lo, hi)`` of numeric parameters, by key (default ``[0, inf]``).
    """
    key = where.rsplit(".", 1)[-1]
    if isinstance(default, str):
        if value not in choices[key]:
            raise ConfigError(f"{where}: {value!r} is not one of {list(choices[key])}")
        return
    kind = int if isinstance(default, int) else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(
            f"{where}: expected a number{' (integer)' if kind is int else ''}, got {value!r}"
        )
    lo, hi = ranges.get(key, (0.0, math.inf))
    if not lo <= value <= hi:
        raise ConfigError(f"{where}: {value!r} is outside [{lo}, {hi}]")


def build_steps(
    config: Any,
    registry: Mapping[str, Callable[..., Any]],
    order: tuple[str, ...],
    choices: Mapping[str, tuple[str, ...]],
    ranges: Mapping[str, tuple[float, float]],
    kind: str = "augmentation",
) -> Steps:
    """Validate a pipeline config and return its steps in ``order``.

    Args:
        config: mapping of augmentation name -> parameters (None: the defaults).
        registry: augmentation name -> function.
        order: the fixed order the pipeline applies them in.
        choices: see :func:`check_value`.
        ranges: see :func:`check_value`.
        kind: what to call an augmentation in messages (e.g. ``"event augmentation"``).

    Returns:
        ``[(name, parameters)]`` for the configured augmentations, in ``order``.

    Raises:
        ConfigError: not a mapping, unknown augmentation or parameter (the valid ones are
            listed), or a bad value.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"augment: expected a mapping of augmentations, got {config!r}")
    for name in config:
        if name not in registry:
            raise ConfigError(f"augment: unknown {kind} {name!r}; valid: {list(order)}")
    steps: Steps = []
    for name in order:
        if name not in config:
            continue
        section = dict(config[name] or {})
        valid = tunable(registry[name])
        for key, value in section.items():
            if key not in valid:
                raise ConfigError(
                    f"augment.{name}: unknown parameter {key!r}; valid: {list(valid)}"
                )
            check_value(f"augment.{name}.{key}", value, valid[key], choices, ranges)
        steps.append((name, section))
    return steps


def describe(cls_name: str, steps: Steps) -> str:
    """``Name(aug(k=v, ...), ...)`` for a pipeline's ``__repr__``.

    Args:
        cls_name: the pipeline class's name.
        steps: its steps.

    Returns:
        The representation.
    """
    inner = ", ".join(f"{n}({', '.join(f'{k}={v}' for k, v in kw.items())})" for n, kw in steps)
    return f"{cls_name}({inner})"
