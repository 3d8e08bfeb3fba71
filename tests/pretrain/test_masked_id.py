"""Masked object-id pretraining: learning, logged accuracies, the type really hidden, errors."""

from __future__ import annotations

import pytest
import torch
from synth_events import synthetic_events
from torch import nn
from train_helpers import train_on_batch

from colliderfm.data.features import EVENT_MASKED_COLUMN, EVENT_TYPE_SLICE
from colliderfm.data.schema import Batch
from colliderfm.errors import ConfigError
from colliderfm.models.registry import create_model
from colliderfm.pretrain.base import PretrainModel, create_objective, objective_names
from colliderfm.pretrain.masked_id import (
    EVENT_KINEMATIC_SLICE,
    KINEMATIC_NAMES,
    TYPE_NAMES,
    hide_kinematics,
    hide_types,
)


def _model(**params: object) -> PretrainModel:
    torch.manual_seed(0)
    backbone = create_model("objt", "tiny")
    return PretrainModel(backbone, create_objective("masked_id", params, backbone.dim, 11))


class _Spy(nn.Module):
    """Wraps a backbone and records the inputs of every forward call."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.dim = inner.dim
        self.seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, x, mask, vectors=None):  # noqa: ANN001, ANN201
        self.seen.append((x.detach().clone(), mask.clone(), vectors.detach().clone()))
        return self.inner(x, mask, vectors)


def test_registered() -> None:
    assert "masked_id" in objective_names()


def test_loss_decreases_on_fixed_batch_and_logs_accuracies() -> None:
    model = _model()
    batch = synthetic_events(256, seed=0, labelled=False)
    losses, logs = train_on_batch(model, batch, 40, 3e-3)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses
    assert set(logs) == {"acc"} | {f"acc_{t}" for t in TYPE_NAMES}
    assert all(0.0 <= v <= 1.0 for v in logs.values())
    assert logs["acc"] > 0.4 and logs["acc_met"] > 0.8  # MET is transverse: easy


def test_hidden_objects_carry_no_type_information() -> None:
    model = _model(augment={}, mask_rate=0.3)
    spy = _Spy(model.backbone)
    batch = synthetic_events(64, seed=1)
    torch.manual_seed(5)
    model.objective.loss(spy, batch)
    x, mask, _ = spy.seen[0]
    hidden = x[..., EVENT_MASKED_COLUMN] == 1  # [B, N]
    assert (hidden <= mask).all() and (hidden.sum(1) >= 1).all()
    n_real = mask.sum(1)
    assert torch.equal(hidden.sum(1), torch.round(n_real * 0.3).clamp_min(1).long())
    assert (x[hidden][:, EVENT_TYPE_SLICE] == 0).all()
    shown = mask & ~hidden
    torch.testing.assert_close(x[shown], batch.features[shown])  # the rest is untouched
    # relabel every object with another type: the backbone sees exactly the same hidden rows
    pid = torch.where(mask, batch.type_id % 5 + 1, 0)
    onehot = torch.nn.functional.one_hot(pid, 6)[..., 1:].float()
    feats = batch.features.clone()
    feats[..., EVENT_TYPE_SLICE] = onehot * mask.unsqueeze(-1)
    other = Batch(feats, batch.mask, batch.labels, batch.weights, batch.vectors, None, pid)
    torch.manual_seed(5)
    model.objective.loss(spy, other)
    x2, _, v2 = spy.seen[1]
    torch.testing.assert_close(x2[hidden], x[hidden])
    torch.testing.assert_close(v2, spy.seen[0][2])  # the pair bias input does not change either
    assert not torch.equal(x2[shown], x[shown])


def test_hide_types_does_not_modify_input() -> None:
    batch = synthetic_events(4, seed=2)
    before = batch.features.clone()
    hide = batch.mask.clone()
    out = hide_types(batch.features, hide)
    assert torch.equal(batch.features, before)
    assert (out[..., EVENT_TYPE_SLICE] == 0).all()
    assert torch.equal(out[..., EVENT_MASKED_COLUMN], hide.float())


def test_hidden_kinematics_are_invisible_and_regressed() -> None:
    model = _model(augment={}, mask_rate=0.2, kinematics_rate=0.2)
    spy = _Spy(model.backbone)
    batch = synthetic_events(64, seed=4)
    torch.manual_seed(7)
    _, logs = model.objective.loss(spy, batch)
    assert {"kin_mse"} | {f"kin_mse_{n}" for n in KINEMATIC_NAMES} <= set(logs)
    x, mask, vectors = spy.seen[0]
    flagged = x[..., EVENT_MASKED_COLUMN] == 1  # [B, N]
    no_type = (x[..., EVENT_TYPE_SLICE] == 0).all(-1) & mask  # type hidden
    no_kin = flagged & ~no_type  # kinematics hidden, type shown
    assert (no_kin.sum(1) >= 1).all() and not (no_kin & no_type).any()
    assert (x[no_kin][:, EVENT_KINEMATIC_SLICE] == 0).all()
    assert (vectors[no_kin] == 0).all()  # nothing reaches the pair bias either
    assert torch.equal(x[no_kin][:, EVENT_TYPE_SLICE], batch.features[no_kin][:, EVENT_TYPE_SLICE])
    # a hidden object's kinematics do not change what the backbone sees
    feats, vecs = batch.features.clone(), batch.vectors.clone()
    feats[..., EVENT_KINEMATIC_SLICE] += 0.5 * no_kin.unsqueeze(-1)
    vecs = vecs * (1 + no_kin.unsqueeze(-1).float())
    other = Batch(feats, batch.mask, batch.labels, batch.weights, vecs, None, batch.type_id)
    torch.manual_seed(7)
    model.objective.loss(spy, other)
    torch.testing.assert_close(spy.seen[1][0], x)
    torch.testing.assert_close(spy.seen[1][2], vectors)


def test_kinematic_regression_learns_on_fixed_batch() -> None:
    model = _model(kinematics_rate=0.2, mask_rate=0.1, augment={})
    batch = synthetic_events(256, seed=5, labelled=False)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    mse = []
    for step in range(60):
        torch.manual_seed(step % 4)  # the same few maskings over and over
        value, logs = model.loss(batch)
        opt.zero_grad()
        value.backward()
        opt.step()
        mse.append(logs["kin_mse"])
    assert sum(mse[-8:]) / 8 < 0.92 * sum(mse[:8]) / 8, mse


def test_pooled_kinematics_go_through_the_event_embedding() -> None:
    model = _model(kinematics_rate=0.2, kinematics_from="pooled", augment={})
    batch = synthetic_events(32, seed=8, labelled=False)
    calls: list[str] = []
    backbone = model.backbone
    inner = backbone.forward_both

    def both(*args: object) -> object:
        calls.append("both")
        return inner(*args)

    backbone.forward_both = both  # type: ignore[method-assign]
    value, logs = model.objective.loss(backbone, batch)
    assert calls == ["both"] and "kin_mse" in logs
    value.backward()
    # the regression reaches the pooling (class-attention) parameters
    pool_grads = [
        q.grad for n, q in backbone.named_parameters() if "cls" in n and q.grad is not None
    ]
    assert pool_grads and any(g.abs().sum() > 0 for g in pool_grads)
    # ... which the per-object (token) regression never touches
    tok = _model(kinematics_rate=0.2, augment={})
    tok.objective.loss(tok.backbone, batch)[0].backward()
    assert all(q.grad is None for n, q in tok.backbone.named_parameters() if "cls" in n)
    with pytest.raises(ConfigError, match="token, pooled"):
        create_objective("masked_id", {"kinematics_from": "cls"}, 32, 11)


def test_hide_kinematics_does_not_modify_input() -> None:
    batch = synthetic_events(4, seed=6)
    before, vbefore = batch.features.clone(), batch.vectors.clone()
    x, v = hide_kinematics(batch.features, batch.vectors, batch.mask)
    assert torch.equal(batch.features, before) and torch.equal(batch.vectors, vbefore)
    assert (x[..., EVENT_KINEMATIC_SLICE] == 0).all() and (v == 0).all()
    assert torch.equal(x[..., EVENT_TYPE_SLICE], before[..., EVENT_TYPE_SLICE])


def test_empty_events_give_zero_loss() -> None:
    model = _model()
    batch = synthetic_events(4, seed=3)
    empty = Batch(
        batch.features * 0,
        torch.zeros_like(batch.mask),
        batch.labels,
        batch.weights,
        batch.vectors * 0,
        None,
        torch.zeros_like(batch.type_id),
    )
    value, logs = model.loss(empty)
    assert value.item() == 0.0 and logs == {}


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="event features"):
        create_objective("masked_id", {}, 32, 13)
    with pytest.raises(ConfigError, match="objective.params.mask_rate"):
        create_objective("masked_id", {"mask_rate": 1.5}, 32, 11)
    with pytest.raises(ConfigError, match="mask_rate' must be > 0"):
        create_objective("masked_id", {"mask_rate": 0.0}, 32, 11)
    with pytest.raises(ConfigError, match="unknown event augmentation 'rotate'"):
        create_objective("masked_id", {"augment": {"rotate": {}}}, 32, 11)
    with pytest.raises(ConfigError, match="objective.params.kinematics_rate"):
        create_objective("masked_id", {"kinematics_rate": -0.1}, 32, 11)
