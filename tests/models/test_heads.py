"""Heads and the Classifier wrapper."""

from __future__ import annotations

import pytest
import torch

from colliderfm.models import Classifier, ClassifierHead, ProjectorHead, TokenHead, create_model


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    mask = torch.arange(6)[None, :] < torch.tensor([[4], [6], [1]])  # [3, 6]
    vec = torch.rand(3, 6, 4, generator=g) * 10
    vec[..., 3] = vec[..., :3].norm(dim=-1) + 0.1
    x = torch.randn(3, 6, 13, generator=g)
    return x, mask, vec


@pytest.mark.parametrize("hidden", [None, 16])
def test_classifier_head_shapes(hidden: int | None) -> None:
    head = ClassifierHead(8, 5, hidden=hidden, dropout=0.1)
    assert head(torch.randn(4, 8)).shape == (4, 5)


def test_projector_and_token_heads() -> None:
    assert ProjectorHead(8, 4, 32)(torch.randn(3, 8)).shape == (3, 4)
    th = TokenHead(8, 7)
    assert th(torch.randn(2, 5, 8)).shape == (2, 5, 7)
    assert th(torch.randn(11, 8)).shape == (11, 7)


def test_classifier_forward_embed_and_attributes() -> None:
    torch.manual_seed(0)
    model = Classifier(create_model("part", "tiny"), 3, head_hidden=16)
    x, mask, vec = _batch()
    assert model(x, mask, vec).shape == (3, 3)
    assert model.embed(x, mask, vec).shape == (3, model.backbone.dim)
    assert model.dim == model.backbone.dim and model.n_classes == 3
    names = {n.split(".")[0] for n, _ in model.named_parameters()}
    assert names == {"backbone", "head"}


def test_reset_head_keeps_backbone() -> None:
    torch.manual_seed(0)
    model = Classifier(create_model("part", "tiny"), 2)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    old_head = model.head
    model.reset_head(5)
    assert model.head is not old_head
    x, mask, vec = _batch()
    assert model(x, mask, vec).shape == (3, 5)
    after = model.backbone.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_frozen_backbone_gets_no_gradient_head_does() -> None:
    torch.manual_seed(0)
    model = Classifier(create_model("part", "tiny"), 2)
    model.backbone.requires_grad_(False)
    x, mask, vec = _batch()
    model(x, mask, vec).sum().backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.head.parameters())


def test_object_id_head_gives_five_logits_per_token() -> None:
    from colliderfm.models.heads import ObjectIdHead

    head = ObjectIdHead(32)
    assert head(torch.randn(3, 7, 32)).shape == (3, 7, 5)
    assert head(torch.randn(4, 32)).shape == (4, 5)
    assert ObjectIdHead(32, hidden=8).net[0].out_features == 8
