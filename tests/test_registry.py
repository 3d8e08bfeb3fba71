"""The one registry shape (models, objectives, tokenizers, readers, checkpoint builders)."""

import pytest

from colliderfm.builders import BUILDERS
from colliderfm.checkpoints import build_model
from colliderfm.data.readers import READERS
from colliderfm.errors import CheckpointError, ConfigError
from colliderfm.pretrain import OBJECTIVES
from colliderfm.registry import Registry
from colliderfm.tokenizers import TOKENIZERS
from colliderfm.train.meta import ModelSpec


def test_register_get_and_errors() -> None:
    reg: Registry[int] = Registry("thing")
    reg.register("b")(2)
    reg.register("a")(1)
    assert reg.get("a") == 1 and reg.names() == ["a", "b"] and "b" in reg
    with pytest.raises(ConfigError, match=r"unknown thing 'c' \(valid: a, b\)"):
        reg.get("c", ConfigError)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a")(3)


def test_every_registry_is_filled_by_importing_its_package() -> None:
    assert OBJECTIVES.names() == ["contrastive", "masked_id", "mpm"]
    assert TOKENIZERS.names() == ["vqvae"]
    assert READERS.names() == ["jetclass", "nanoaod", "parquet", "toptagging"]
    build_model(ModelSpec(task="vqvae", in_dim=13, params={}))  # registers the builders
    assert BUILDERS.names() == ["classifier", "pretrain", "vqvae"]


def test_unknown_checkpoint_task() -> None:
    with pytest.raises(CheckpointError, match="unknown checkpoint task 'gan'"):
        build_model(ModelSpec(task="gan"))
