"""Tokenizer recipe: train a particle tokenizer (``objective.name: vqvae``) with the shared loop.

Run on its own (``colliderfm pretrain --config configs/pretrain/vqvae.yaml``) or as the first
stage of masked particle modelling (:mod:`colliderfm.recipes.pretrain`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torch import nn

from colliderfm.config import Config
from colliderfm.data.features import n_features
from colliderfm.recipes.runner import Runner, own_loss
from colliderfm.tokenizers import tokenizer_params
from colliderfm.tokenizers.evaluate import evaluate_tokenizer
from colliderfm.tokenizers.vqvae import vqvae_from_params
from colliderfm.train.logging import log
from colliderfm.train.meta import ModelSpec

#: validation jets held in memory when ``train.val_max`` is not set
VAL_DEFAULT = 20_000


def train_tokenizer(
    cfg: Config, out: str | Path, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Train a VQ-VAE tokenizer on ``data.train`` (labels ignored).

    Args:
        cfg: resolved config with ``objective.name: vqvae`` and its settings in
            ``objective.params`` (see :class:`~colliderfm.tokenizers.vqvae.VQVAEParams`).
        out: run directory (model in ``out``, resumable state in ``out/last``).
        resume: continue an interrupted run.
        progress: show progress bars.

    Returns:
        Summary: steps, wall time, throughput, last validation metrics (with ``data.val``).
    """
    with Runner(cfg, out, resume, progress) as run:
        params = tokenizer_params(cfg.objective.name, cfg.objective.params)
        n = run.shard_count()
        val = run.val_source(cfg.train.val_max or VAL_DEFAULT)
        run.seed()
        in_dim = n_features(cfg.data.features)
        model = vqvae_from_params(in_dim, params)
        spec = ModelSpec(
            task="vqvae",
            tokenizer=cfg.objective.name,
            in_dim=in_dim,
            feature_set=cfg.data.features,
            params=dataclasses.asdict(params),
        )
        loader, spe = run.loader(cfg.data.train, n)  # type: ignore[arg-type]

        def validate(module: nn.Module) -> dict[str, float]:
            if val is None or not run.main:
                return {}
            return evaluate_tokenizer(module, val, cfg.data.features, cfg.data.max_particles)

        log.info(
            "%s: training a %s tokenizer (%d codes) on %d %s, %d steps/epoch",
            run.out,
            cfg.objective.name,
            params.codebook_size,
            n,
            cfg.data.unit,
            spe,
        )
        result = run.train(model, own_loss, loader, spe, run.meta(spec, n), validate=validate)
        return {**run.summary(result), "last": result.last}
