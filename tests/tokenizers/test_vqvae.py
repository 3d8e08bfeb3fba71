"""VQ-VAE tokenizer: codebook use, reconstruction, dead-code restarts, padding, checkpoints."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from synth import synthetic_jets, write_synthetic_shards

from colliderfm.checkpoints import load_model
from colliderfm.config import load_config
from colliderfm.data.schema import Batch
from colliderfm.data.stream import ConstituentStream
from colliderfm.errors import ConfigError
from colliderfm.recipes.tokenizer import train_tokenizer
from colliderfm.tokenizers import tokenizer_params
from colliderfm.tokenizers.evaluate import evaluate_tokenizer
from colliderfm.tokenizers.vqvae import VQVAE
from colliderfm.train.checkpoint import save_checkpoint

TINY = {"codebook_size": 16, "code_dim": 4, "hidden": 32, "layers": 1}


@pytest.fixture(autouse=True)
def _one_thread():  # noqa: ANN202  (tiny models: threads only add contention)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _batch(n: int = 32, seed: int = 0) -> Batch:
    return next(
        iter(
            ConstituentStream(
                synthetic_jets(n, seed=seed, max_particles=30), batch_size=n, shuffle=False
            )
        )
    )


@pytest.mark.parametrize("update", ["ema", "st"])
def test_training_in_the_loop_uses_the_codebook(tmp_path: Path, update: str) -> None:
    data = tmp_path / "jets"
    write_synthetic_shards(data, n=400, seed=1)
    params = ",".join(f"{k}: {v}" for k, v in {**TINY, "update": update}.items())
    cfg = load_config(
        "configs/pretrain/vqvae.yaml",
        [
            f"data.train={data}",
            f"data.val={data}",
            "data.max_particles=30",
            "train.max_steps=60",
            "train.batch_size=32",
            "train.log_every=1",
            "train.val_max=100",
            "train.lr=3e-3",
            "data.shuffle_buffer=64",
            "train.threads=1",
            "objective.params={" + params + ", restart_every: 20}",
        ],
    )
    summary = train_tokenizer(cfg, tmp_path / "run", progress=False)
    assert summary["steps"] == 60
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    mse = [float(r["value"]) for r in rows if r["name"] == "recon_mse"]
    assert sum(mse[-5:]) / 5 < 0.7 * sum(mse[:5]) / 5
    assert any(r["name"] == "perplexity" for r in rows)
    assert summary["last"]["val_usage"] > 0.5 and summary["last"]["val_perplexity"] > 4
    model = load_model(tmp_path / "run")
    assert isinstance(model, VQVAE)
    m = evaluate_tokenizer(model, synthetic_jets(100, seed=5, max_particles=30), max_particles=30)
    assert m["val_usage"] > 0.5


def test_dead_codes_are_restarted() -> None:
    torch.manual_seed(0)
    model = VQVAE(13, **TINY, restart_every=1)
    batch = _batch()
    model.loss(batch)  # first-batch init (normalisation, codebook) + one restart check
    with torch.no_grad():  # push half the codebook far away: those codes can never be chosen
        model.codebook.data[8:] = 100.0
        model.ema_sum[8:] = 100.0
    assert model.tokenize(batch.features, batch.mask)[batch.mask].max() < 8
    _, logs = model.loss(batch)
    assert logs["restarted"] >= 8
    assert model.codebook.data[8:].abs().max() < 50  # moved back among the encoder outputs
    ids = model.tokenize(batch.features, batch.mask)[batch.mask]
    assert (ids >= 8).any()  # and they are used again


def test_no_restarts_or_updates_in_eval_mode() -> None:
    torch.manual_seed(0)
    model = VQVAE(13, **TINY, restart_every=1)
    batch = _batch()
    model.loss(batch)
    before = model.state_dict()
    before = {k: v.clone() for k, v in before.items()}
    model.eval()
    model.loss(batch)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_tokenize_ignores_padding() -> None:
    torch.manual_seed(0)
    model = VQVAE(13, **TINY)
    batch = _batch()
    model.loss(batch)
    model.eval()
    ids = model.tokenize(batch.features, batch.mask)
    assert (ids[~batch.mask] == -1).all() and (ids[batch.mask] >= 0).all()
    b, p, f = batch.features.shape
    x = torch.cat((batch.features, 50 * torch.randn(b, 7, f)), 1)  # garbage in new padding
    mask = torch.cat((batch.mask, torch.zeros(b, 7, dtype=torch.bool)), 1)
    ids2 = model.tokenize(x, mask)
    assert torch.equal(ids2[:, :p], ids) and (ids2[:, p:] == -1).all()


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = VQVAE(13, **TINY)
    batch = _batch()
    model.loss(batch)
    meta = {
        "model": {
            "task": "vqvae",
            "in_dim": 13,
            "feature_set": "part",
            "params": {
                **TINY,
                "update": "ema",
                "beta": 0.25,
                "decay": 0.99,
                "restart_every": 50,
                "restart_threshold": 1.0,
                "reconstruct": "kinematic",
            },
        }
    }
    save_checkpoint(tmp_path / "ck", model, meta)
    loaded = load_model(tmp_path / "ck")
    model.eval()
    assert torch.equal(
        loaded.tokenize(batch.features, batch.mask), model.tokenize(batch.features, batch.mask)
    )
    assert torch.allclose(
        loaded.reconstruct(batch.features, batch.mask),
        model.reconstruct(batch.features, batch.mask),
    )


def test_unknown_setting_is_an_error() -> None:
    with pytest.raises(ConfigError, match="objective.params.codebook_sze"):
        tokenizer_params("vqvae", {"codebook_sze": 8})
    with pytest.raises(ConfigError, match="not one of ema, st"):
        tokenizer_params("vqvae", {"update": "kmeans"})


def test_tokens_are_permutation_equivariant() -> None:
    torch.manual_seed(0)
    model = VQVAE(13, **TINY)
    batch = _batch()
    model.loss(batch)
    model.eval()
    perm = torch.randperm(batch.mask.shape[1])
    ids = model.tokenize(batch.features, batch.mask)
    assert torch.equal(model.tokenize(batch.features[:, perm], batch.mask[:, perm]), ids[:, perm])


@pytest.mark.parametrize("update", ["ema", "st"])
def test_bf16_autocast(update: str) -> None:
    torch.manual_seed(0)
    model = VQVAE(13, **TINY, update=update)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, logs = model.loss(_batch())
    loss.backward()
    assert torch.isfinite(loss) and logs["perplexity"] > 1
