from pathlib import Path

import pytest
import torch
from synth import write_synthetic_shards

from colliderfm.config import FinetuneConfig, load_config
from colliderfm.finetune.classifier import build_classifier
from colliderfm.finetune.modes import apply_mode
from colliderfm.recipes.finetune import run_finetune
from colliderfm.train.checkpoint import load_state


def _model():  # noqa: ANN202
    spec = {"name": "part", "preset": "tiny", "in_dim": 13, "kwargs": {"pair_features": False}}
    return build_classifier({**spec, "n_classes": 2, "head_hidden": 16})


def test_modes_choose_trainable_parts_and_multipliers() -> None:
    ft = FinetuneConfig(backbone_lr_mult=0.1, head_lr_mult=2.0)
    m = _model()
    assert apply_mode(m, "full", ft) == {"backbone.": 0.1, "head.": 2.0}
    assert all(p.requires_grad for p in m.parameters())
    m = _model()
    assert apply_mode(m, "frozen", ft) == {"head.": 2.0}
    assert not any(p.requires_grad for p in m.backbone.parameters())
    m.train()
    assert not m.backbone.training  # dropout stays off in a frozen backbone


def test_lr_multipliers_reach_the_optimizer(tmp_path: Path) -> None:
    write_synthetic_shards(tmp_path / "d", n=200, seed=0)
    cfg = load_config(
        None,
        [
            f"data.train={tmp_path / 'd'}",
            "model.preset=tiny",
            "model.pair_features=false",
            "train.batch_size=32",
            "train.lr=1e-3",
            "train.max_steps=1",
            "finetune.backbone_lr_mult=0.1",
            "finetune.head_lr_mult=3.0",
        ],
    )
    run_finetune(cfg, tmp_path / "run", progress=False)
    groups = load_state(tmp_path / "run" / "last")["optimizer"]["param_groups"]
    base = {g["name"].split(":")[0]: g["initial_lr"] for g in groups}
    assert base["backbone."] == pytest.approx(1e-4) and base["head."] == pytest.approx(3e-3)
    # frozen: the backbone is not in the optimizer at all
    run_finetune(
        load_config(None, [*_sets(cfg), "finetune.mode=frozen"]), tmp_path / "fr", progress=False
    )
    groups = load_state(tmp_path / "fr" / "last")["optimizer"]["param_groups"]
    assert {g["name"].split(":")[0] for g in groups} == {"head."}


def _sets(cfg) -> list[str]:  # noqa: ANN001
    return [
        f"data.train={cfg.data.train}",
        "model.preset=tiny",
        "model.pair_features=false",
        "train.batch_size=32",
        "train.max_steps=1",
    ]


def test_frozen_backbone_gets_no_gradient() -> None:
    m = _model()
    apply_mode(m, "linear", FinetuneConfig())
    x, mask = torch.randn(4, 10, 13), torch.ones(4, 10, dtype=torch.bool)
    m(x, mask).sum().backward()
    assert all(p.grad is None for p in m.backbone.parameters())
