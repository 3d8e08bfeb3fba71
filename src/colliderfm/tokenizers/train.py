"""Training a particle tokenizer with the shared loop (``objective.name: vqvae``).

Tokenizers are not backbone objectives, so they have their own small registry of settings
dataclasses (:data:`TOKENIZER_PARAMS`), validated like every config section (unknown keys and
wrong types are :class:`~colliderfm.errors.ConfigError`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from colliderfm.config import Config, _build
from colliderfm.data.features import n_features
from colliderfm.data.schema import Batch, JetChunk
from colliderfm.data.stream import JetStream, count_jets, steps_per_pass
from colliderfm.errors import ConfigError
from colliderfm.tokenizers.vqvae import VQVAE, VQVAEParams, vqvae_from_params
from colliderfm.train.logging import log
from colliderfm.train.loop import dist_info, fit, seed_everything

#: tokenizer recipe name -> settings dataclass
TOKENIZER_PARAMS: dict[str, type] = {"vqvae": VQVAEParams}


def is_tokenizer(name: str) -> bool:
    """Whether ``objective.name`` names a tokenizer recipe (trained by :func:`train_tokenizer`).

    Args:
        name: recipe name.

    Returns:
        True for tokenizer recipes.
    """
    return name in TOKENIZER_PARAMS


def tokenizer_params(name: str, params: dict[str, Any]) -> Any:
    """Validate a tokenizer's settings.

    Args:
        name: tokenizer recipe (``vqvae``).
        params: the ``objective.params`` mapping.

    Returns:
        The settings dataclass instance.
    """
    if name not in TOKENIZER_PARAMS:
        raise ConfigError(f"unknown tokenizer '{name}' (valid: {', '.join(TOKENIZER_PARAMS)})")
    return _build(TOKENIZER_PARAMS[name], params, "objective.params")


def tokenizer_loss(module: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
    """The loop's loss function for a tokenizer.

    Args:
        module: the :class:`VQVAE`.
        batch: a batch (labels ignored).

    Returns:
        (loss, logs).
    """
    return module.loss(batch)


def _val_chunk(cfg: Config) -> JetChunk | None:
    if cfg.data.val is None:
        return None
    from colliderfm.data.readers.dispatch import iter_jet_chunks

    limit = cfg.train.val_max or 20_000
    parts, n = [], 0
    for c in iter_jet_chunks(cfg.data.val):
        parts.append(c)
        n += len(c)
        if n >= limit:
            break
    chunk = JetChunk.concat(parts)
    return chunk.take(np.arange(min(len(chunk), limit)))


@torch.no_grad()
def evaluate_tokenizer(
    model: VQVAE,
    source: Any,
    feature_set: str = "part",
    max_particles: int = 128,
    batch_size: int = 512,
) -> dict[str, float]:
    """Reconstruction error and codebook usage of a tokenizer on a data source.

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
    counts = torch.zeros(model.codebook_size)
    n = 0
    for b in JetStream(
        source,
        batch_size=batch_size,
        max_particles=max_particles,
        shuffle=False,
        feature_set=feature_set,
        rank=0,
        world_size=1,
    ):
        loss, logs = model.loss(b)
        k = int(b.mask.sum())
        tot["loss"] += float(loss) * k
        tot["recon_mse"] += logs["recon_mse"] * k
        ids = model.tokenize(b.features, b.mask)[b.mask]  # [N]
        counts += torch.bincount(ids, minlength=model.codebook_size).float()
        n += k
    model.train(was)
    p = counts / counts.sum().clamp_min(1)
    perplexity = float(torch.exp(-(p * p.clamp_min(1e-12).log()).sum()))
    return {
        "val_loss": tot["loss"] / max(n, 1),
        "val_recon_mse": tot["recon_mse"] / max(n, 1),
        "val_perplexity": perplexity,
        "val_usage": float((counts > 0).float().mean()),
    }


def train_tokenizer(
    cfg: Config, out: str | Path, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Train a VQ-VAE tokenizer on ``data.train`` (labels ignored) with the shared loop.

    Args:
        cfg: resolved config with ``objective.name: vqvae`` and its settings in
            ``objective.params`` (see :class:`~colliderfm.tokenizers.vqvae.VQVAEParams`).
        out: run directory (model in ``out``, resumable state in ``out/last``).
        resume: continue an interrupted run.
        progress: show progress bars.

    Returns:
        Summary: steps, wall time, throughput, last validation metrics (with ``data.val``).
    """
    if cfg.data.train is None:
        raise ConfigError("data.train is not set (give --set data.train=DIR)")
    params = tokenizer_params(cfg.objective.name, cfg.objective.params)
    out = Path(out)
    if not resume and (out / "last").exists():
        raise ConfigError(
            f"{out}: a run already exists there (use --resume to continue it, or "
            "choose another --out)"
        )
    n_jets = count_jets(cfg.data.train)
    if n_jets is None:
        raise ConfigError(
            f"{cfg.data.train}: tokenizer training reads shard directories; "
            "convert it first with `colliderfm convert`"
        )
    val = _val_chunk(cfg)
    seed_everything(cfg.train.seed)
    in_dim = n_features(cfg.data.features)
    model = vqvae_from_params(in_dim, params)
    meta_model = {
        "task": "vqvae",
        "tokenizer": cfg.objective.name,
        "in_dim": in_dim,
        "feature_set": cfg.data.features,
        "params": dataclasses.asdict(params),
    }
    _, world = dist_info()
    stream = JetStream(
        cfg.data.train,
        batch_size=cfg.train.batch_size,
        max_particles=cfg.data.max_particles,
        shuffle=True,
        buffer_size=cfg.data.shuffle_buffer,
        seed=cfg.train.seed,
        infinite=True,
        feature_set=cfg.data.features,
        trim_padding=cfg.data.trim_padding,
    )
    loader = torch.utils.data.DataLoader(
        stream,
        batch_size=None,
        num_workers=cfg.train.workers,
        persistent_workers=cfg.train.workers > 0,
    )
    spe = cfg.train.steps_per_epoch or steps_per_pass(n_jets, cfg.train.batch_size, world)

    def validate(module: nn.Module) -> dict[str, float]:
        if val is None or dist_info()[0] != 0:
            return {}
        return evaluate_tokenizer(module, val, cfg.data.features, cfg.data.max_particles)

    log.info(
        "%s: training a %s tokenizer (%d codes) on %d jets, %d steps/epoch",
        out,
        cfg.objective.name,
        params.codebook_size,
        n_jets,
        spe,
    )
    result = fit(
        model,
        tokenizer_loss,
        loader,
        cfg,
        out,
        spe,
        {"model": meta_model, "data": {"n_train": n_jets}},
        validate=validate,
        resume=resume,
        progress=progress,
    )
    return {
        "steps": result.steps,
        "epochs": result.epochs,
        "wall_s": round(result.wall_s, 1),
        "jets_per_s": round(result.examples_per_s, 1),
        "last": result.last,
    }
