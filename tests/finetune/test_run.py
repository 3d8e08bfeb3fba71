from pathlib import Path

import pytest
import torch
from synth import tiny_finetune_config, write_splits

from colliderfm.checkpoints import load_model
from colliderfm.errors import CheckpointError, ConfigError
from colliderfm.recipes.finetune import run_finetune
from colliderfm.train.checkpoint import read_meta


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_splits(tmp_path_factory.mktemp("ft"), (1200, 300, 400), seed=1, rows_per_shard=400)


def _cfg(data: Path, *extra: str):  # noqa: ANN202
    return tiny_finetune_config(data, "train.epochs=2", *extra)


def test_scratch_training_learns_separable_jets(data: Path, tmp_path: Path) -> None:
    summary = run_finetune(_cfg(data), tmp_path / "run", progress=False)
    # class-1 synthetic jets are three times wider: a working classifier separates them
    assert summary["test"]["auc"] > 0.9, summary["test"]
    assert summary["steps"] == 2 * 19
    model = load_model(tmp_path / "run")
    meta = read_meta(tmp_path / "run")
    assert meta["model"]["classes"] == ["QCD", "Tbqq"] and meta["config"]["train"]["epochs"] == 2
    assert (tmp_path / "run" / "metrics.csv").is_file()
    assert (tmp_path / "run" / "last" / "state.pt").is_file()
    assert not model.training


def test_frozen_mode_leaves_backbone_identical(data: Path, tmp_path: Path) -> None:
    run_finetune(_cfg(data, "train.epochs=1"), tmp_path / "pre", progress=False)
    before = load_model(tmp_path / "pre").backbone.state_dict()
    cfg = _cfg(
        data,
        f"finetune.init={tmp_path / 'pre'}",
        "finetune.mode=frozen",
        "finetune.n_train=200",
        "train.epochs=1",
    )
    summary = run_finetune(cfg, tmp_path / "frozen", progress=False)
    assert summary["n_train"] == 200
    after = load_model(tmp_path / "frozen")
    for k, v in before.items():
        assert torch.equal(v, after.backbone.state_dict()[k]), k


def test_init_checks_model_and_refuses_to_overwrite(data: Path, tmp_path: Path) -> None:
    run_finetune(_cfg(data, "train.max_steps=2"), tmp_path / "a", progress=False)
    with pytest.raises(ConfigError, match="a run already exists"):
        run_finetune(_cfg(data, "train.max_steps=2"), tmp_path / "a", progress=False)
    with pytest.raises(CheckpointError, match="part/tiny but the config asks for part/small"):
        run_finetune(
            _cfg(data, f"finetune.init={tmp_path / 'a'}", "model.preset=small"),
            tmp_path / "b",
            progress=False,
        )
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        run_finetune(
            _cfg(data, f"finetune.init={tmp_path / 'nope'}"), tmp_path / "c", progress=False
        )
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_lp_ft_probes_then_trains_everything(data: Path, tmp_path: Path) -> None:
    run_finetune(_cfg(data, "train.max_steps=2"), tmp_path / "pre", progress=False)
    init = load_model(tmp_path / "pre").backbone.state_dict()
    cfg = _cfg(
        data,
        f"finetune.init={tmp_path / 'pre'}",
        "finetune.mode=lp-ft",
        "finetune.lp_fraction=0.5",
        "train.max_steps=8",
        "train.steps_per_epoch=4",
    )
    summary = run_finetune(cfg, tmp_path / "lpft", progress=False)
    assert summary["steps"] == 8  # both phases count: 4 probe steps, then 4 of everything
    assert summary["phases"]["lp"]["steps"] == 4 and summary["phases"]["ft"]["steps"] == 4
    phases_wall = summary["phases"]["lp"]["wall_s"] + summary["phases"]["ft"]["wall_s"]
    assert summary["wall_s"] == pytest.approx(phases_wall, abs=0.11)
    probe = load_model(tmp_path / "lpft" / "lp" / "last").backbone.state_dict()
    final = load_model(tmp_path / "lpft" / "last").backbone.state_dict()
    assert all(torch.equal(init[k], probe[k]) for k in init)  # phase 1: backbone frozen
    assert any(not torch.equal(init[k], final[k]) for k in init)  # phase 2: backbone trains
