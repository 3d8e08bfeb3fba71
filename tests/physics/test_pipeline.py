"""Shared augmentation-pipeline plumbing: config validation, ordering, seeded draws."""

from __future__ import annotations

import pytest
import torch

from colliderfm.errors import ConfigError
from colliderfm.physics.pipeline import build_steps, describe, rand, randn, tunable


def _shift(x: torch.Tensor, *, p: float = 1.0, n: int = 2, mode: str = "a", generator=None):
    return x


def _scale(x: torch.Tensor, *, p: float = 0.5, generator=None):
    return x


REG = {"shift": _shift, "scale": _scale}
ORDER = ("scale", "shift")
CHOICES = {"mode": ("a", "b")}
RANGES = {"p": (0.0, 1.0), "n": (1, 10)}


def test_steps_follow_the_fixed_order_and_keep_parameters() -> None:
    steps = build_steps({"shift": {"n": 3}, "scale": None}, REG, ORDER, CHOICES, RANGES)
    assert steps == [("scale", {}), ("shift", {"n": 3})]
    assert describe("P", steps) == "P(scale(), shift(n=3))"
    assert tunable(_shift) == {"p": 1.0, "n": 2, "mode": "a"}


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ([1, 2], "expected a mapping"),
        ({"spin": {}}, r"unknown augmentation 'spin'; valid: \['scale', 'shift'\]"),
        ({"shift": {"q": 1}}, r"augment.shift: unknown parameter 'q'"),
        ({"shift": {"n": 2.5}}, r"augment.shift.n: expected a number \(integer\)"),
        ({"shift": {"p": True}}, r"augment.shift.p: expected a number"),
        ({"shift": {"p": 1.5}}, r"augment.shift.p: 1.5 is outside"),
        ({"shift": {"mode": "c"}}, r"augment.shift.mode: 'c' is not one of"),
    ],
)
def test_bad_configs_name_the_key(config: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_steps(config, REG, ORDER, CHOICES, RANGES)


def test_draws_are_seeded_and_take_the_reference_dtype() -> None:
    like = torch.zeros(2, dtype=torch.float64)
    a = rand((3,), like, torch.Generator().manual_seed(1))
    b = rand((3,), like, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.dtype == torch.float64 and ((a >= 0) & (a < 1)).all()
    assert randn((4,), like, None).shape == (4,)
