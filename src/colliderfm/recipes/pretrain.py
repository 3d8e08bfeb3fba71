"""Pretraining recipe: a backbone with a self-supervised objective on unlabelled jets or events.

Stages: (1) the tokenizer the objective asks for, trained first into ``out/tokenizer`` when the
objective needs one and none is given (MPM with token targets); (2) the objective itself, with
the periodic linear probe when ``objective.probe_data`` is set. A tokenizer config
(``objective.name: vqvae``) runs :func:`~colliderfm.recipes.tokenizer.train_tokenizer` alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from colliderfm.config import Config
from colliderfm.data.features import n_features
from colliderfm.errors import ConfigError
from colliderfm.models.factory import backbone_spec, build_backbone
from colliderfm.pretrain import PretrainModel, create_objective, make_params
from colliderfm.pretrain.base import objective_trains_pooling, params_dict
from colliderfm.pretrain.probe import LinearProbe
from colliderfm.recipes.runner import Runner, own_loss
from colliderfm.recipes.tokenizer import train_tokenizer
from colliderfm.tokenizers import TOKENIZERS
from colliderfm.train.logging import log
from colliderfm.train.meta import ModelSpec


def run_pretrain(
    cfg: Config, out: str | Path, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Pretrain a backbone on ``data.train`` with ``objective.name`` (labels are ignored).

    Args:
        cfg: resolved config (``objective.name`` a pretraining objective, or a tokenizer).
        out: run directory (model in ``out``, resumable state in ``out/last``).
        resume: continue an interrupted run.
        progress: show progress bars.

    Returns:
        Summary with steps, wall time, throughput and probe AUCs.
    """
    if cfg.objective.name in TOKENIZERS:
        return train_tokenizer(cfg, out, resume=resume, progress=progress)
    with Runner(cfg, out, resume, progress) as run:
        if cfg.objective.name == "none":
            raise ConfigError(
                "objective.name is not set (choose a recipe, e.g. contrastive or mpm)"
            )
        make_params(cfg.objective.name, cfg.objective.params)  # validate before any work
        probe = None
        if cfg.objective.probe_data is not None:
            pools = objective_trains_pooling(cfg.objective.name, cfg.objective.params)
            probe = LinearProbe(
                cfg.objective.probe_data,
                n=cfg.objective.probe_n,
                feature_set=cfg.data.features,
                max_particles=cfg.data.max_particles,
                seed=cfg.train.seed,
                pooling=None if pools else "mean",  # as finetune.frozen_pooling=auto does
            )
        run.seed()
        in_dim = n_features(cfg.data.features)
        spec = backbone_spec(cfg, in_dim)
        backbone = build_backbone(spec)
        objective = create_objective(cfg.objective.name, cfg.objective.params, backbone.dim, in_dim)
        model_spec = ModelSpec(
            task="pretrain",
            objective=cfg.objective.name,
            params=params_dict(objective.params),  # with the defaults it resolved
            feature_set=cfg.data.features,
            **spec,
        )
        model = PretrainModel(backbone, objective)
        if not resume:  # on resume the tokenizer's weights come back with the checkpoint
            _tokenizer_stage(run, objective)
        summary: dict[str, Any] = {}
        if probe is not None and run.main:
            backbone.to(run.device)  # the probe embeds on the backbone's device (fit moves it too)
            summary["probe_auc_random"] = probe(backbone)
            log.info(
                "linear probe on the randomly initialised backbone: AUC %.4f",
                summary["probe_auc_random"],
            )
        n = run.shard_count()
        loader, spe = run.loader(cfg.data.train, n)  # type: ignore[arg-type]

        def validate(module: nn.Module) -> dict[str, float]:
            if probe is None or not run.main:
                return {}
            return {"probe_auc": probe(module.backbone)}

        def every(step: int, module: nn.Module) -> dict[str, float] | None:
            pe = cfg.objective.probe_every
            if probe is None or not run.main or not pe or step % pe or step % spe == 0:
                return None
            return {"probe_auc": probe(module.backbone)}

        log.info(
            "%s: pretraining %s on %d %s, %d steps/epoch, backbone %d params",
            run.out,
            cfg.objective.name,
            n,
            cfg.data.unit,
            spe,
            sum(p.numel() for p in backbone.parameters()),
        )
        result = run.train(
            model,
            own_loss,
            loader,
            spe,
            run.meta(model_spec, n),
            validate=validate,
            step_callback=every,
        )
        summary.update({**run.summary(result), "last": result.last})
        if "probe_auc" in result.last:
            summary["probe_auc"] = result.last["probe_auc"]
            log.info(
                "linear probe: AUC %.4f after pretraining (random backbone: %.4f)",
                summary["probe_auc"],
                summary.get("probe_auc_random", float("nan")),
            )
        return summary


def _tokenizer_stage(run: Runner, objective: Any) -> None:
    """Stage 1: give the objective the tokenizer it asks for, training it first if needed."""
    need = objective.tokenizer_request(run.cfg)
    if need is None:
        return
    if isinstance(need, Config):
        path = run.out / "tokenizer"
        log.info(
            "%s: no tokenizer given; training a %s (%s codes, %s steps) first",
            path,
            need.objective.name,
            need.objective.params.get("codebook_size"),
            need.train.max_steps,
        )
        train_tokenizer(need, path, resume=(path / "last").exists(), progress=run.progress)
        if run.world > 1:
            torch.distributed.barrier()  # rank 0 writes the checkpoint
    else:
        path = Path(need)
    objective.load_tokenizer(path, run.cfg.data.features)
