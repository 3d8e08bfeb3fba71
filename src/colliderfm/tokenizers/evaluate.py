"""Reconstruction error and codebook usage of a trained particle tokenizer."""

from __future__ import annotations

from typing import Any

import torch

from colliderfm.data.stream import evaluation_stream
from colliderfm.runtime import module_device
from colliderfm.tokenizers.vqvae import VQVAE


@torch.no_grad()
def evaluate_tokenizer(
    model: VQVAE,
    source: Any,
    feature_set: str = "part",
    max_particles: int = 128,
    batch_size: int = 512,
) -> dict[str, float]:
    """Reconstruction error and codebook usage of a tokenizer on a data source.

    The tokenizer runs where its weights are (each batch is copied there).

    Args:
        model: the tokenizer.
        source: jets (path or in-memory chunk).
        feature_set: input features.
        max_particles: particle slots.
        batch_size: jets per pass.

    Returns:
        ``val_loss`` (total loss), ``val_recon_mse``, ``val_perplexity`` and ``val_usage``
        (fraction of codes used anywhere in the source), particle-weighted.
    """
    was = model.training
    model.eval()
    tot: dict[str, float] = {"loss": 0.0, "recon_mse": 0.0}
    device = module_device(model)
    counts = torch.zeros(model.codebook_size, device=device)  # [K]
    n = 0
    for cpu_b in evaluation_stream(source, batch_size, max_particles, feature_set):
        b = cpu_b.to(device, non_blocking=True)
        loss, logs = model.loss(b)
        k = int(cpu_b.mask.sum())  # on the host: no device sync
        tot["loss"] += float(loss) * k
        tot["recon_mse"] += logs["recon_mse"] * k
        ids = model.tokenize(b.features, b.mask)[b.mask]  # [N]
        counts += torch.bincount(ids, minlength=model.codebook_size).float()
        n += k
    model.train(was)
    counts = counts.cpu()
    p = counts / counts.sum().clamp_min(1)
    perplexity = float(torch.exp(-(p * p.clamp_min(1e-12).log()).sum()))
    return {
        "val_loss": tot["loss"] / max(n, 1),
        "val_recon_mse": tot["recon_mse"] / max(n, 1),
        "val_perplexity": perplexity,
        "val_usage": float((counts > 0).float().mean()),
    }
