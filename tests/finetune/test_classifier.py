"""Building backbones from run configs: every model option reaches the constructor."""

from __future__ import annotations

import pytest

from colliderfm.config import load_config
from colliderfm.errors import ColliderFMError
from colliderfm.models.factory import backbone_spec, build_backbone


def test_normformer_and_init_reach_the_backbone() -> None:
    cfg = load_config(None, ["model.preset=tiny", "model.normformer=true"])
    spec = backbone_spec(cfg, in_dim=13)
    assert spec["kwargs"] == {"normformer": True}
    bb = build_backbone(spec)
    assert bb.blocks[0].scales is not None
    plain = build_backbone(backbone_spec(load_config(None, ["model.preset=tiny"]), in_dim=13))
    assert plain.blocks[0].scales is None
    forced = load_config(None, ["model.preset=tiny", "model.normformer=true", "model.init=normal"])
    assert backbone_spec(forced, 13)["kwargs"] == {"normformer": True, "init": "normal"}
    with pytest.raises(ColliderFMError, match="init"):
        load_config(None, ["model.init=kaiming"])


def test_option_a_model_lacks_is_a_clear_error() -> None:
    cfg = load_config(None, ["model.name=objt", "model.preset=tiny", "model.normformer=true"])
    with pytest.raises(ColliderFMError, match="has no option 'normformer'"):
        build_backbone(backbone_spec(cfg, in_dim=11))
