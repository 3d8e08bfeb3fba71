"""Masked particle modelling: masking, learning on a fixed batch, tokenizer handling, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from synth import synthetic_jets, write_synthetic_shards
from torch import nn

from colliderfm.checkpoints import load_model
from colliderfm.config import load_config
from colliderfm.data.schema import Batch
from colliderfm.data.stream import ConstituentStream
from colliderfm.errors import CheckpointError, ConfigError
from colliderfm.models.registry import create_model
from colliderfm.pretrain.base import PretrainModel, create_objective
from colliderfm.pretrain.mpm import choose_masked, pt_rank
from colliderfm.recipes.pretrain import run_pretrain
from colliderfm.tokenizers.vqvae import VQVAE
from colliderfm.train.checkpoint import save_checkpoint

TOK = {"codebook_size": 16, "code_dim": 4, "tokenizer_hidden": 16, "tokenizer_layers": 0}
VQ = {"codebook_size": 16, "code_dim": 4, "hidden": 16, "layers": 0}
VQ_META = {
    "update": "ema",
    "beta": 0.25,
    "decay": 0.99,
    "restart_every": 50,
    "restart_threshold": 1.0,
    "reconstruct": "kinematic",
}


@pytest.fixture(autouse=True)
def _one_thread():  # noqa: ANN202  (tiny models: threads only add contention)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mpm") / "jets"
    write_synthetic_shards(path, n=200, seed=1)
    return path


def _batch(n: int = 32, seed: int = 0) -> Batch:
    return next(
        iter(
            ConstituentStream(
                synthetic_jets(n, seed=seed, max_particles=30), batch_size=n, shuffle=False
            )
        )
    )


def _backbone() -> nn.Module:
    return create_model("part", "tiny", in_dim=13, embed_dim=32, depth=1, num_heads=4)


def _tokenizer_ckpt(
    path: Path, in_dim: int = 13, feature_set: str = "part", codebook_size: int = 16
) -> Path:
    vq = {**VQ, "codebook_size": codebook_size}
    save_checkpoint(
        path,
        VQVAE(in_dim, **vq),
        {
            "model": {
                "task": "vqvae",
                "in_dim": in_dim,
                "feature_set": feature_set,
                "params": {**vq, **VQ_META},
            }
        },
    )
    return path


def test_masking_fraction_padding_and_at_least_one() -> None:
    counts = torch.tensor([1, 2, 5, 10, 30, 0, 7])
    mask = torch.arange(30).unsqueeze(0) < counts.unsqueeze(1)  # [7, 30]
    want = torch.tensor([1, 1, 2, 4, 12, 0, 3])  # round(0.4 n), at least 1 (0 for empty jets)
    seen = torch.zeros_like(mask)
    for _ in range(50):
        sel = choose_masked(mask, 0.4)
        assert torch.equal(sel.sum(1), want)
        assert not (sel & ~mask).any()
        seen |= sel
    assert torch.equal(seen[3], mask[3])  # the choice is random: every particle gets masked


def test_pt_rank() -> None:
    x = torch.zeros(1, 4, 13)
    x[0, :, 0] = torch.tensor([0.5, 2.0, 1.0, 9.0])
    mask = torch.tensor([[True, True, True, False]])
    assert pt_rank(x, mask).tolist() == [[2, 0, 1, 3]]


class _Spy(nn.Module):
    """Stand-in backbone recording what it is given."""

    dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(13, 8)

    def forward(self, x, mask, vectors=None):  # noqa: ANN001, ANN201
        self.seen = (x.detach().clone(), vectors.clone())
        return self.lin(x)  # [B, P, D]


def test_masked_particles_are_hidden_from_the_backbone() -> None:
    torch.manual_seed(0)
    b = _batch()
    obj = create_objective("mpm", {"target": "continuous"}, 8, 13)
    spy = _Spy()
    torch.manual_seed(5)
    obj.loss(spy, b)
    torch.manual_seed(5)
    sel = choose_masked(b.mask, 0.4)
    x, v = spy.seen
    assert torch.equal(x[sel], obj.mask_token.detach().expand(int(sel.sum()), 13))
    assert (v[sel] == 0).all()
    keep = b.mask & ~sel
    assert torch.equal(x[keep], b.features[keep]) and torch.equal(v[keep], b.vectors[keep])


def test_decoder_layout_removes_masked_particles_from_the_backbone() -> None:
    torch.manual_seed(0)
    b = _batch()
    obj = create_objective("mpm", {"target": "continuous", "decoder_depth": 1}, 32, 13)
    seen = {}
    backbone = _backbone()
    real_forward = backbone.forward

    def spy(x, mask, vectors=None):  # noqa: ANN001, ANN202
        seen["x"], seen["mask"], seen["v"] = x, mask.clone(), vectors
        return real_forward(x, mask, vectors)

    backbone.forward = spy
    torch.manual_seed(5)
    obj.loss(backbone, b)
    torch.manual_seed(5)
    sel = choose_masked(b.mask, 0.4)
    # the backbone gets the untouched jet with the hidden particles turned into padding:
    # no mask token in feature space, no rank, nothing of the hidden particles
    assert torch.equal(seen["mask"], b.mask & ~sel)
    assert torch.equal(seen["x"], b.features) and torch.equal(seen["v"], b.vectors)
    out = backbone(b.features, b.mask & ~sel, b.vectors)
    perturbed = b.features.clone()
    perturbed[sel] = 123.0  # changing hidden particles does not change the encoding
    assert torch.allclose(out, backbone(perturbed, b.mask & ~sel, b.vectors), atol=1e-6)


def test_decoder_heads_must_divide_the_width() -> None:
    with pytest.raises(ConfigError, match="decoder_heads=5"):
        create_objective(
            "mpm", {"target": "continuous", "decoder_depth": 1, "decoder_heads": 5}, 32, 13
        )


@pytest.mark.parametrize(
    ("target", "extra"),
    [
        ("tokens", {}),
        ("continuous", {}),
        ("tokens", {"decoder_depth": 1, "positional": "pt_order"}),
    ],
)
def test_loss_decreases_on_a_fixed_batch(target: str, extra: dict) -> None:
    torch.manual_seed(0)
    b = _batch()
    real = b.mask.unsqueeze(-1)
    # every particle of a jet is a copy of its first one: masked particles are predictable
    b.features = b.features[:, :1].expand_as(b.features) * real
    b.vectors = b.vectors[:, :1].expand_as(b.vectors) * real
    model = PretrainModel(
        _backbone(), create_objective("mpm", {"target": target, **TOK, **extra}, 32, 13)
    )
    tok = model.objective.tokenizer
    if tok is not None:
        tok.train()
        tok.loss(b)  # fit its normalisation and codebook to this batch
        tok.eval()
        frozen = {k: v.clone() for k, v in tok.state_dict().items()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(40):
        loss, logs = model.loss(b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        assert logs["masked_frac"] == pytest.approx(0.4, abs=0.05)
    assert sum(losses[-5:]) < 0.75 * sum(losses[:5])
    assert ("mpm_acc" if target == "tokens" else "mpm_mse") in logs
    if tok is not None:
        assert all(torch.equal(v, frozen[k]) for k, v in tok.state_dict().items())
        assert not tok.training and not any(p.requires_grad for p in tok.parameters())


@pytest.mark.parametrize("decoder_depth", [0, 1])
def test_pt_order_embedding_is_used(decoder_depth: int) -> None:
    torch.manual_seed(0)
    params = {"target": "continuous", "positional": "pt_order", "decoder_depth": decoder_depth}
    obj = create_objective("mpm", params, 32, 13)
    assert obj.rank_embed.weight.shape[1] == (32 if decoder_depth else 13)
    loss, _ = obj.loss(_backbone(), _batch())
    loss.backward()
    assert obj.rank_embed.weight.grad.abs().sum() > 0


def _cfg(data: Path, *extra: str):  # noqa: ANN202
    params = ", ".join(f"{k}: {v}" for k, v in {**TOK, "tokenizer_steps": 4}.items())
    return load_config(
        "configs/pretrain/mpm.yaml",
        [
            f"data.train={data}",
            "data.max_particles=30",
            "data.shuffle_buffer=64",
            "objective.probe_data=null",
            "model.preset=tiny",
            "model.embed_dim=32",
            "model.depth=1",
            "model.num_heads=4",
            "train.max_steps=3",
            "train.batch_size=32",
            "train.threads=1",
            "objective.params={" + params + "}",
            *extra,
        ],
    )


def test_pretrain_trains_a_tokenizer_first_and_checkpoints_it(shards: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = run_pretrain(_cfg(shards), out, progress=False)
    assert summary["steps"] == 3
    tok = load_model(out / "tokenizer")
    assert isinstance(tok, VQVAE) and bool(tok.initialised)
    model = load_model(out)  # rebuilt from the checkpoint alone, tokenizer weights inside
    for k, v in tok.state_dict().items():
        assert torch.equal(model.objective.tokenizer.state_dict()[k], v), k
    b = _batch()
    assert torch.equal(
        model.objective.tokenizer.tokenize(b.features, b.mask), tok.tokenize(b.features, b.mask)
    )


def test_given_tokenizer_is_loaded(shards: Path, tmp_path: Path) -> None:
    path = _tokenizer_ckpt(tmp_path / "tok")
    out = tmp_path / "run"
    run_pretrain(_cfg(shards, f"objective.params.tokenizer={path}"), out, progress=False)
    assert not (out / "tokenizer").exists()
    want = load_model(path).state_dict()
    got = load_model(out).objective.tokenizer.state_dict()
    assert all(torch.equal(got[k], v) for k, v in want.items())


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("missing", ConfigError, "objective.params.tokenizer: .* does not exist"),
        ("not_vqvae", CheckpointError, "not a VQ-VAE tokenizer checkpoint"),
        ("codebook", CheckpointError, "codebook_size=32 but objective.params.codebook_size=16"),
        ("features", CheckpointError, "trained on feature set 'kinematic' \\(7 features\\)"),
    ],
)
def test_bad_tokenizer_fails_before_training(
    shards: Path, tmp_path: Path, case: str, error: type, message: str
) -> None:
    if case == "missing":
        path = tmp_path / "nope"
    elif case == "not_vqvae":
        path = save_checkpoint(tmp_path / "cls", nn.Linear(2, 2), {"model": {"task": "classifier"}})
    elif case == "codebook":
        path = _tokenizer_ckpt(tmp_path / "tok", codebook_size=32)
    else:
        path = _tokenizer_ckpt(tmp_path / "tok", in_dim=7, feature_set="kinematic")
    out = tmp_path / "run"
    with pytest.raises(error, match=message):
        run_pretrain(_cfg(shards, f"objective.params.tokenizer={path}"), out, progress=False)
    assert not (out / "last").exists() and not (out / "metrics.csv").exists()


def test_unknown_param_is_an_error() -> None:
    with pytest.raises(ConfigError, match="objective.params.mask_frac"):
        create_objective("mpm", {"mask_frac": 0.3}, 8, 13)


def test_periodic_probe_pools_by_the_mean(
    shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MPM never trains the class-attention pooling, so its periodic probe uses the token mean
    (as ``finetune.frozen_pooling=auto`` does)."""
    import colliderfm.recipes.pretrain as rp

    made: list[str | None] = []
    real = rp.LinearProbe

    def probe(*a, **k):  # noqa: ANN002, ANN003, ANN202
        made.append(k.get("pooling"))
        return real(*a, **k)

    monkeypatch.setattr(rp, "LinearProbe", probe)
    cfg = _cfg(shards, f"objective.probe_data={shards}", "objective.probe_n=40")
    run_pretrain(cfg, tmp_path / "run", progress=False)
    assert made == ["mean"]
