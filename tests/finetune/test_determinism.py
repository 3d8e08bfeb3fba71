"""Same seed, same machine -> the same run: weights, per-step logs and test metrics identical."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from synth import write_synthetic_shards

from colliderfm.config import load_config
from colliderfm.recipes.finetune import run_finetune


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("det")
    write_synthetic_shards(root / "train", n=192, seed=1, rows_per_shard=64)
    write_synthetic_shards(root / "test", n=96, seed=2)
    return root


def _run(data: Path, out: Path, seed: int) -> dict[str, Any]:
    cfg = load_config(
        None,
        [
            f"data.train={data / 'train'}",
            f"data.val={data / 'test'}",
            f"data.test={data / 'test'}",
            "data.max_particles=16",
            "data.shuffle_buffer=64",
            "model.preset=tiny",
            "model.pair_features=false",
            "train.batch_size=16",
            "train.max_steps=10",
            "train.steps_per_epoch=5",
            "train.log_every=1",
            "train.threads=1",
            f"train.seed={seed}",
        ],
    )
    run_finetune(cfg, out, progress=False)
    metrics = json.loads((out / "test_metrics.json").read_text())
    for k in ("checkpoint", "data"):  # paths differ between the runs
        metrics.pop(k, None)
    return metrics


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "last" / "model.safetensors"))


def test_same_seed_same_run_different_seed_different_run(data: Path, tmp_path: Path) -> None:
    a = _run(data, tmp_path / "a", seed=11)
    b = _run(data, tmp_path / "b", seed=11)
    c = _run(data, tmp_path / "c", seed=12)
    assert a == b and c["n"] == a["n"]
    wa, wb, wc = _weights(tmp_path / "a"), _weights(tmp_path / "b"), _weights(tmp_path / "c")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    log_a = (tmp_path / "a" / "metrics.csv").read_text()
    assert log_a == (tmp_path / "b" / "metrics.csv").read_text()
    assert "val_auc" in log_a and "train_loss" in log_a
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)
    assert log_a != (tmp_path / "c" / "metrics.csv").read_text()
