"""Model registry: presets, overrides, errors, parameter counts."""

from __future__ import annotations

import dataclasses

import pytest
from torch import nn

from colliderfm.config import ModelConfig
from colliderfm.errors import ConfigError
from colliderfm.models import registry
from colliderfm.models.registry import create_model, list_models, register_model

#: expected parameter ranges per preset of the built-in ``part`` backbone
_SIZES = {"tiny": (0.05e6, 0.2e6), "small": (0.5e6, 1.0e6), "base": (1.9e6, 2.3e6)}


def test_list_models_has_every_preset_in_range() -> None:
    rows = {(name, preset): n for name, preset, n in list_models()}
    for preset, (lo, hi) in _SIZES.items():
        assert lo <= rows[("part", preset)] <= hi, (preset, rows[("part", preset)])


def test_create_model_applies_overrides() -> None:
    m = create_model("part", "tiny", embed_dim=32, num_heads=4, depth=1, in_dim=7)
    assert m.dim == 32
    assert len(m.blocks) == 1
    assert m.in_dim == 7


def test_none_overrides_are_ignored_and_model_config_passes_through() -> None:
    a = create_model("part", "tiny", embed_dim=None, depth=None, pooling=None, dropout=None)
    assert a.dim == create_model("part", "tiny").dim
    cfg = ModelConfig(preset="tiny", pooling="mean")
    m = create_model(**dataclasses.asdict(cfg))
    assert m.pooling == "mean"
    assert sum(p.numel() for p in m.parameters()) < 0.2e6


def test_unknown_name_lists_registered_models() -> None:
    with pytest.raises(ConfigError, match="unknown model 'nope'.*part"):
        create_model("nope")


def test_unknown_preset_lists_presets() -> None:
    with pytest.raises(ConfigError, match="no preset 'huge'.*tiny, small, base"):
        create_model("part", "huge")


def test_unknown_override_names_key_and_valid_ones() -> None:
    with pytest.raises(ConfigError, match="no option 'widht'.*embed_dim") as err:
        create_model("part", "tiny", widht=3)
    assert "num_heads" in str(err.value)


def test_register_model_decorator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_model("dummy", {"tiny": {"width": 2}, "big": {"width": 8}})
    class Dummy(nn.Module):
        def __init__(self, in_dim: int = 13, width: int = 4) -> None:
            super().__init__()
            self.dim = width
            self.lin = nn.Linear(in_dim, width)

    assert create_model("dummy", "big").dim == 8
    assert ("dummy", "tiny", 13 * 2 + 2) in list_models()
    with pytest.raises(TypeError, match="no argument"):
        register_model("bad", {"tiny": {"nonsense": 1}})(Dummy)
