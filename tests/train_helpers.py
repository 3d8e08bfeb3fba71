"""Shared test helper: optimise a pretraining model on one fixed batch."""

from __future__ import annotations

import torch

from colliderfm.data.schema import Batch
from colliderfm.pretrain.base import PretrainModel


def train_on_batch(
    model: PretrainModel, batch: Batch, steps: int, lr: float
) -> tuple[list[float], dict[str, float]]:
    """Run ``steps`` AdamW steps of ``model.loss`` on the same batch.

    Args:
        model: backbone + objective.
        batch: the batch every step sees.
        steps: optimizer steps.
        lr: AdamW learning rate.

    Returns:
        (loss of every step, logs of the last step).
    """
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    losses: list[float] = []
    logs: dict[str, float] = {}
    for _ in range(steps):
        value, logs = model.loss(batch)
        opt.zero_grad()
        value.backward()
        opt.step()
        losses.append(value.item())
    return losses, logs
