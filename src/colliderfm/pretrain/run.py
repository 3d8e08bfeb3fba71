"""``colliderfm pretrain``: train a backbone with a self-supervised objective on unlabelled jets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from colliderfm.config import Config
from colliderfm.data.features import n_features
from colliderfm.data.stream import count_jets, training_loader
from colliderfm.errors import ConfigError
from colliderfm.finetune.classifier import backbone_spec, build_backbone
from colliderfm.pretrain.base import PretrainModel, create_objective, make_params, params_dict
from colliderfm.pretrain.probe import LinearProbe
from colliderfm.train.checkpoint import register_builder
from colliderfm.train.logging import log
from colliderfm.train.loop import dist_info, fit, seed_everything


@register_builder("pretrain")
def build_pretrain_model(m: dict[str, Any]) -> nn.Module:
    """Rebuild a backbone + objective module from checkpoint metadata.

    Args:
        m: the ``model`` section (backbone spec + ``objective`` + ``params``).

    Returns:
        The module (random weights).
    """
    backbone = build_backbone(m)
    return PretrainModel(
        backbone, create_objective(m["objective"], m["params"], backbone.dim, m["in_dim"])
    )


def pretrain_loss(module: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
    """The loop's loss function for a :class:`PretrainModel`.

    Args:
        module: the pretraining module.
        batch: a batch (labels ignored).

    Returns:
        (loss, logs).
    """
    return module.loss(batch)


def run_pretrain(
    cfg: Config, out: str | Path, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Pretrain a backbone on ``data.train`` with ``objective.name`` (labels are ignored).

    Args:
        cfg: resolved config.
        out: run directory (model in ``out``, resumable state in ``out/last``).
        resume: continue an interrupted run.
        progress: show progress bars.

    Returns:
        Summary with steps, wall time, throughput and probe AUCs.
    """
    if cfg.data.train is None:
        raise ConfigError("data.train is not set (give --set data.train=DIR)")
    if cfg.objective.name == "none":
        raise ConfigError("objective.name is not set (choose a recipe, e.g. contrastive or mpm)")
    out = Path(out)
    if not resume and (out / "last").exists():
        raise ConfigError(
            f"{out}: a run already exists there (use --resume to continue it, or "
            "choose another --out)"
        )
    make_params(cfg.objective.name, cfg.objective.params)  # validate before any work
    probe = None
    if cfg.objective.probe_data is not None:
        probe = LinearProbe(
            cfg.objective.probe_data,
            n=cfg.objective.probe_n,
            feature_set=cfg.data.features,
            max_particles=cfg.data.max_particles,
            seed=cfg.train.seed,
        )
    seed_everything(cfg.train.seed)
    in_dim = n_features(cfg.data.features)
    spec = backbone_spec(cfg, in_dim)
    backbone = build_backbone(spec)
    objective = create_objective(cfg.objective.name, cfg.objective.params, backbone.dim, in_dim)
    meta_model = {
        **spec,
        "task": "pretrain",
        "objective": cfg.objective.name,
        "params": params_dict(objective.params),  # with the defaults it resolved
        "feature_set": cfg.data.features,
    }
    model = PretrainModel(backbone, objective)
    if not resume:
        objective.setup(backbone, cfg, out, progress)
    summary: dict[str, Any] = {}
    if probe is not None and dist_info()[0] == 0:
        summary["probe_auc_random"] = probe(backbone)
        log.info(
            "linear probe on the randomly initialised backbone: AUC %.4f",
            summary["probe_auc_random"],
        )
    n_jets = count_jets(cfg.data.train)
    if n_jets is None:
        raise ConfigError(
            f"{cfg.data.train}: pretraining reads shard directories; convert it "
            "first with `colliderfm convert`"
        )
    loader, spe = training_loader(cfg.data.train, n_jets, cfg)
    rank = dist_info()[0]

    def validate(module: nn.Module) -> dict[str, float]:
        if probe is None or rank != 0:
            return {}
        return {"probe_auc": probe(module.backbone)}

    def every(step: int, module: nn.Module) -> dict[str, float] | None:
        pe = cfg.objective.probe_every
        if probe is None or rank != 0 or not pe or step % pe or step % spe == 0:
            return None
        return {"probe_auc": probe(module.backbone)}

    log.info(
        "%s: pretraining %s on %d jets, %d steps/epoch, backbone %d params",
        out,
        cfg.objective.name,
        n_jets,
        spe,
        sum(p.numel() for p in backbone.parameters()),
    )
    result = fit(
        model,
        pretrain_loss,
        loader,
        cfg,
        out,
        spe,
        {"model": meta_model, "data": {"n_train": n_jets}},
        validate=validate,
        resume=resume,
        progress=progress,
        step_callback=every,
    )
    summary.update(
        {
            "steps": result.steps,
            "epochs": result.epochs,
            "wall_s": round(result.wall_s, 1),
            "jets_per_s": round(result.examples_per_s, 1),
            "last": result.last,
        }
    )
    if "probe_auc" in result.last:
        summary["probe_auc"] = result.last["probe_auc"]
        log.info(
            "linear probe: AUC %.4f after pretraining (random backbone: %.4f)",
            summary["probe_auc"],
            summary.get("probe_auc_random", float("nan")),
        )
    return summary
