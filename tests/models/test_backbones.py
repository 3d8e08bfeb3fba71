"""Backbones: shapes, padding and permutation symmetry, gradients, pair features, kernels."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from colliderfm.models.backbones import packs_on
from colliderfm.models.blocks import BiasedAttention, TokenLayout, gather_rows, scatter_rows
from colliderfm.models.pairs import PairEmbed, pair_features
from colliderfm.models.registry import create_model, registered

ALL = [(name, preset) for name, presets in registered().items() for preset in presets]
#: tiny variants covering every code path of the ``part`` backbone
VARIANTS = [
    {},
    {"pooling": "mean"},
    {"pair_features": False},
    {"pack": False},
    {"buckets": 1},
    {"pair_dim": 3, "pair_hidden": 0},
    {"normformer": True},
]


def make_batch(
    counts: list[int], p: int | None = None, f: int = 13, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random jets with the given multiplicities, real particles first, zero padding.

    Returns:
        ``(x [B, P, f], mask [B, P], vectors [B, P, 4])``.
    """
    g = torch.Generator().manual_seed(seed)
    p = p or max(max(counts), 1)
    b = len(counts)
    mask = torch.arange(p)[None, :] < torch.tensor(counts)[:, None]  # [B, P]
    pt = torch.rand(b, p, generator=g) * 30 + 0.5
    eta = torch.randn(b, p, generator=g) * 0.3
    phi = torch.randn(b, p, generator=g) * 0.3
    vec = torch.stack(
        (pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta), pt * torch.cosh(eta)),
        dim=-1,
    )  # [B, P, 4]
    x = torch.randn(b, p, f, generator=g)
    keep = mask.unsqueeze(-1)
    return x * keep, mask, vec * keep


def tiny(**kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("part", "tiny", **kw).eval()


@pytest.mark.parametrize(("name", "preset"), ALL)
def test_shapes_every_registered_model(name: str, preset: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, preset)
    x, mask, vec = make_batch([5, 1, 9], p=11, f=model.in_dim)  # each model's own input width
    tokens = model(x, mask, vec)
    pooled = model.embed(x, mask, vec)
    assert tokens.shape == (3, 11, model.dim)
    assert pooled.shape == (3, model.dim)
    assert torch.isfinite(tokens).all() and torch.isfinite(pooled).all()


@pytest.mark.parametrize("name", sorted(registered()))
def test_every_registered_model_is_padding_and_permutation_safe(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, "tiny").eval()
    f = model.in_dim
    x, mask, vec = make_batch([6, 2, 8], p=8, f=f)
    with torch.no_grad():
        tokens, pooled = model(x, mask, vec), model.embed(x, mask, vec)
    # garbage (NaN included) in extra padding slots changes nothing
    xg = torch.cat((x, torch.full((3, 3, f), float("nan"))), dim=1)
    vg = torch.cat((vec, torch.randn(3, 3, 4) * 1e4), dim=1)
    mg = torch.cat((mask, torch.zeros(3, 3, dtype=torch.bool)), dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model.embed(xg, mg, vg), pooled, atol=1e-5, rtol=1e-5)
    # permuting the slots permutes the tokens and keeps the embedding
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        tokens_p = model(x[:, perm], mask[:, perm], vec[:, perm])
        pooled_p = model.embed(x[:, perm], mask[:, perm], vec[:, perm])
    m = mask[:, perm]
    torch.testing.assert_close(tokens_p[m], tokens[:, perm][m], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pooled_p, pooled, atol=1e-5, rtol=1e-5)
    # finite gradients everywhere, with a one-object and an empty example
    model.train()
    x, mask, vec = make_batch([1, 7, 0], p=7, f=f)
    tokens, pooled = model.forward_both(x, mask, vec)
    (pooled.square().sum() + tokens[mask].square().sum()).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("kw", VARIANTS)
def test_padding_with_garbage_changes_nothing(kw: dict) -> None:
    model = tiny(**kw)
    x, mask, vec = make_batch([6, 2, 9, 4], p=9)
    with torch.no_grad():
        ref_tokens, ref_pooled = model.forward_both(x, mask, vec)
    extra = 7
    xg = torch.cat((x, torch.randn(4, extra, 13) * 1e3), dim=1)
    vg = torch.cat((vec, torch.randn(4, extra, 4) * 1e4), dim=1)
    xg[0, -1, 3] = float("nan")
    vg[1, -2, 0] = float("inf")
    vg[2, -1, 3] = float("nan")
    mg = torch.cat((mask, torch.zeros(4, extra, dtype=torch.bool)), dim=1)
    with torch.no_grad():
        tokens, pooled = model.forward_both(xg, mg, vg)
    real = mask
    torch.testing.assert_close(tokens[:, :9][real], ref_tokens[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pooled, ref_pooled, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(tokens[:, :9][real]).all()


@pytest.mark.parametrize("kw", VARIANTS)
def test_permutation_equivariant_tokens_invariant_embed(kw: dict) -> None:
    model = tiny(**kw)
    x, mask, vec = make_batch([6, 3, 8], p=10)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))  # mixes in padding
    with torch.no_grad():
        tokens = model(x, mask, vec)
        pooled = model.embed(x, mask, vec)
        tokens_p = model(x[:, perm], mask[:, perm], vec[:, perm])
        pooled_p = model.embed(x[:, perm], mask[:, perm], vec[:, perm])
    m = mask[:, perm]
    torch.testing.assert_close(tokens_p[m], tokens[:, perm][m], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pooled_p, pooled, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kw", VARIANTS)
def test_gradients_finite_with_single_particle_and_empty_jets(kw: dict) -> None:
    torch.manual_seed(0)
    model = create_model("part", "tiny", dropout=0.1, **kw).train()
    x, mask, vec = make_batch([1, 7, 0, 1], p=7)
    tokens, pooled = model.forward_both(x, mask, vec)
    loss = pooled.square().sum() + tokens[mask].square().sum()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert torch.isfinite(pooled).all() and torch.isfinite(tokens).all()


def test_pack_and_buckets_do_not_change_the_function() -> None:
    x, mask, vec = make_batch([6, 2, 9, 4, 1, 7], p=12)
    outs = []
    for kw in ({"pack": False}, {"buckets": 1}, {"buckets": 3}, {"buckets": 8}):
        model = tiny(**kw)
        with torch.no_grad():
            outs.append(model.forward_both(x, mask, vec))
    for tokens, pooled in outs[1:]:  # different kernels and summation orders: float32 noise
        torch.testing.assert_close(tokens[mask], outs[0][0][mask], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(pooled, outs[0][1], atol=1e-4, rtol=1e-4)


def test_pack_auto_packs_on_cpu_and_pads_on_accelerators() -> None:
    cpu, cuda, mps = torch.device("cpu"), torch.device("cuda", 1), torch.device("mps")
    assert packs_on("auto", cpu) is True
    assert packs_on("auto", cuda) is False and packs_on("auto", mps) is False
    assert packs_on(True, cuda) is True and packs_on(False, cpu) is False
    x, mask, vec = make_batch([6, 2, 9], p=12)
    model = tiny()  # the default is "auto"
    assert model.pack == "auto"
    _, layout = model._encode(x, mask, vec)
    assert layout.n_tokens == int(mask.sum())  # packed: real particles only, on CPU
    _, padded = tiny(pack=False)._encode(x, mask, vec)
    assert padded.n_tokens == mask.numel()
    with pytest.raises(ValueError, match="pack must be"):
        tiny(pack="yes")


@pytest.mark.gpu
def test_pack_auto_on_cuda_pads_and_matches_cpu() -> None:
    x, mask, vec = make_batch([6, 2, 9, 4, 1, 7], p=12)
    model = tiny()
    with torch.no_grad():
        ref_tokens, ref_pooled = model.forward_both(x, mask, vec)
        cuda = model.to("cuda")
        _, layout = cuda._encode(x.cuda(), mask.cuda(), vec.cuda())
        tokens, pooled = cuda.forward_both(x.cuda(), mask.cuda(), vec.cuda())
    assert layout.n_tokens == mask.numel()  # padded on CUDA
    torch.testing.assert_close(tokens.cpu()[mask], ref_tokens[mask], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(pooled.cpu(), ref_pooled, atol=1e-4, rtol=1e-4)


def test_train_and_eval_kernels_agree() -> None:
    """Training uses BiasedAttention (bias gradient), eval the fused SDPA kernel."""
    model = tiny()
    x, mask, vec = make_batch([6, 2, 9], p=9)
    with torch.no_grad():
        ref = model.embed(x, mask, vec)
    model.train()
    out = model.embed(x, mask, vec)
    torch.testing.assert_close(out.detach(), ref, atol=1e-5, rtol=1e-5)


def test_bf16_autocast_trains() -> None:
    torch.manual_seed(0)
    model = create_model("part", "tiny").train()
    x, mask, vec = make_batch([6, 2, 9], p=9)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tokens, pooled = model.forward_both(x, mask, vec)
    (pooled.float().square().sum() + tokens.float().square().sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_normformer_gets_weaver_init_and_fits_a_batch() -> None:
    """ParT's post-attention LayerNorm undoes the small normal init's scale (Adam's steps would
    then be huge relative to the weights, which collapsed training on real jets): normformer
    models default to weaver-core's Xavier init, and learn."""
    from colliderfm.models import Classifier

    normal = create_model("part", "tiny").blocks[0].proj.weight.std().item()
    nf = create_model("part", "tiny", normformer=True)
    xavier = nf.blocks[0].proj.weight.std().item()
    assert normal < 0.02 and xavier > 2 * normal
    forced = create_model("part", "tiny", normformer=True, init="normal")
    assert forced.blocks[0].proj.weight.std().item() < 0.02
    with pytest.raises(ValueError, match="init must be"):
        create_model("part", "tiny", init="he")
    torch.manual_seed(0)
    model = Classifier(create_model("part", "tiny", normformer=True), 2).train()
    x, mask, vec = make_batch([5, 8, 3, 9, 7, 4, 6, 2] * 4, p=9, seed=1)
    y = torch.tensor([0, 1] * 16)
    x[..., 0] += (2 * y - 1)[:, None] * mask  # a separable signal in feature 0
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x, mask, vec), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]


def test_pair_features_need_vectors() -> None:
    x, mask, _ = make_batch([3, 2])
    with pytest.raises(ValueError, match="vectors"):
        tiny()(x, mask)
    assert tiny(pair_features=False)(x, mask).shape == (2, 3, 48)


def test_wrong_feature_count_is_reported() -> None:
    x, mask, vec = make_batch([3, 2], f=7)
    with pytest.raises(ValueError, match=r"\[B, P, 13\]"):
        tiny()(x, mask, vec)


def test_pair_features_two_particles_by_hand() -> None:
    pt1, pt2, y2, phi2 = 10.0, 20.0, 0.3, 0.4
    v = torch.tensor(
        [
            [
                [pt1, 0.0, 0.0, pt1],
                [
                    pt2 * math.cos(phi2),
                    pt2 * math.sin(phi2),
                    pt2 * math.sinh(y2),
                    pt2 * math.cosh(y2),
                ],
            ]
        ],
        dtype=torch.float64,
    )  # massless: y = eta
    u = pair_features(v)  # [1, 4, 2, 2]
    delta = math.hypot(y2, phi2)  # 0.5
    m2 = 2 * pt1 * pt2 * (math.cosh(y2) - math.cos(phi2))  # massless pair mass
    expect = [math.log(pt1 * delta), math.log(pt1 / (pt1 + pt2)), math.log(delta), math.log(m2)]
    for c, val in enumerate(expect):
        assert u[0, c, 0, 1].item() == pytest.approx(val, rel=1e-4), c
        assert u[0, c, 1, 0].item() == pytest.approx(val, rel=1e-4), c
    eps = math.log(1e-8)
    assert u[0, 0, 0, 0].item() == pytest.approx(eps)  # kT of a particle with itself
    assert u[0, 1, 0, 0].item() == pytest.approx(math.log(0.5))
    assert u[0, 2, 0, 0].item() == pytest.approx(eps)
    assert u[0, 3, 0, 0].item() == pytest.approx(eps)  # massless: m^2 = 0


def test_pair_embed_masks_keys_and_is_finite_elsewhere() -> None:
    torch.manual_seed(0)
    emb = PairEmbed(num_heads=3, pair_dim=4, hidden=8)
    _, mask, vec = make_batch([2, 4], p=4)
    bias = emb(vec, mask)  # [2, 3, 4, 4]
    assert bias.shape == (2, 3, 4, 4)
    assert torch.isneginf(bias[0, :, :, 2:]).all()
    assert torch.isfinite(bias[0, :, :, :2]).all() and torch.isfinite(bias[1]).all()


def test_biased_attention_matches_sdpa_and_gradcheck() -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
        for _ in range(3)
    )
    bias = torch.randn(2, 3, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    out = BiasedAttention.apply(q, k, v, bias)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    torch.testing.assert_close(out, ref)
    assert torch.autograd.gradcheck(BiasedAttention.apply, (q, k, v, bias))
    key_bias = torch.randn(2, 1, 1, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(BiasedAttention.apply, (q, k, v, key_bias))


def test_row_gather_scatter_gradients() -> None:
    t = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    idx = torch.tensor([4, 0, 2])
    assert torch.autograd.gradcheck(lambda a: scatter_rows(a, idx, 6), (t,))
    s = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: gather_rows(a, idx), (s,))


def test_token_layout_round_trip() -> None:
    mask = torch.tensor(
        [[1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [0, 1, 0, 0, 0]], dtype=torch.bool
    )
    t = torch.randn(4, 5, 3)
    for buckets in (1, 2, 4):
        lay = TokenLayout(mask, pack=True, buckets=buckets)
        flat = lay.flatten(t)  # [N, 3]
        assert flat.shape == (int(mask.sum()), 3)
        back = lay.unflatten(flat)
        torch.testing.assert_close(back[mask], t[mask])
        assert (back[~mask] == 0).all()
        torch.testing.assert_close(lay.from_groups(lay.to_groups(flat)), flat)
        for part, km in zip(lay.to_groups(flat), lay.key_masks, strict=True):
            assert part.shape[:2] == km.shape
            assert km.any(dim=1).all()  # never a row with every key masked
