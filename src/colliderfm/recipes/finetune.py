"""Fine-tuning recipe: a classifier from scratch or from a pretrained backbone (and CWoLa).

Modes: ``full``, ``frozen``, ``linear`` and ``lp-ft`` (a linear-probe stage into ``out/lp``, then
everything from there). With ``finetune.cwola`` the labels are the mixture ids of two mixed
samples; validation and test use the true labels.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from colliderfm.config import Config
from colliderfm.data.features import n_features
from colliderfm.data.readers import reader_for
from colliderfm.data.readers.dispatch import data_classes
from colliderfm.data.schema import Batch, ConstituentChunk
from colliderfm.data.stream import count_examples
from colliderfm.data.subset import load_subset
from colliderfm.errors import ConfigError
from colliderfm.evaluate.metrics import classifier_metrics
from colliderfm.evaluate.predict import predict
from colliderfm.finetune.classifier import (
    build_classifier,
    load_pretrained_backbone,
    pretrained_backbone_spec,
)
from colliderfm.finetune.cwola import prepare_cwola
from colliderfm.finetune.modes import apply_mode, head_hidden_for
from colliderfm.models.factory import backbone_spec
from colliderfm.recipes.runner import Runner
from colliderfm.train.checkpoint import load_weights
from colliderfm.train.logging import log
from colliderfm.train.loop import FitResult
from colliderfm.train.meta import ModelSpec

HEAD_HIDDEN = 128


def classification_loss(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted cross-entropy of a classifier on a labelled batch.

    Args:
        model: classifier.
        batch: labelled batch.

    Returns:
        (loss, logs with the batch accuracy).
    """
    logits = model(batch.features, batch.mask, batch.vectors)  # [B, C]
    per = F.cross_entropy(logits.float(), batch.labels, reduction="none")  # [B]
    loss = (per * batch.weights).sum() / batch.weights.sum()
    acc = (logits.argmax(-1) == batch.labels).float().mean().item()
    return loss, {"train_acc": acc}


def _train_source(cfg: Config) -> tuple[str | Path | ConstituentChunk, int]:
    """The training data of a run and the number of jets (or events) in one pass over it.

    Shard directories and ``.parquet`` files give the exact count from their metadata; JetClass
    ROOT and Top Tagging HDF5 files the number of stored entries (exact unless the reader skips
    bad jets: then an upper bound by their number). NanoAOD is refused: it is read unlabelled
    (label -1) with the event selection applied on the fly, so it cannot train a classifier and
    its size after selection is unknown until it has been read; converting it once
    (``colliderfm convert --format nanoaod --label K``) gives labelled, counted shards.

    Args:
        cfg: run config (``data.train``, ``finetune.n_train``, ``train.seed``).

    Returns:
        (the source: a path, or the in-memory ``--n-train`` subset; examples per pass).

    Raises:
        ConfigError: ``data.train`` is a NanoAOD file.
    """
    path = cfg.data.train
    assert path is not None
    reader = reader_for(path)
    if not reader.labelled:
        raise ConfigError(
            f"data.train={path} is a NanoAOD file: it is read unlabelled, with the event "
            "selection applied while reading, so it cannot train a classifier and its size is "
            f"unknown; convert it first (`colliderfm convert {path} --format {reader.name} "
            "--label K --out DIR`, one label per input), then --set data.train=DIR"
        )
    if cfg.finetune.n_train:
        sub = load_subset(path, cfg.finetune.n_train, cfg.train.seed)
        return sub, len(sub)
    n = count_examples(path)  # shards: exact, from the manifest / Parquet metadata
    if n is None:
        n = reader.count(Path(path))  # JetClass ROOT, Top Tagging HDF5: stored entries
    if n is None:  # a format without a stored count: one streaming pass, exact
        n = sum(len(c) for c in reader.iter_chunks(Path(path)))
    return path, int(n)


def make_validate(cfg: Config, classes: list[str], val: Any) -> Any:
    """Validation callback: loss, accuracy, AUC and rejections on the validation source.

    Args:
        cfg: run config.
        classes: class names.
        val: validation data (path or in-memory chunk), or None.

    Returns:
        ``module -> metrics`` or None when there is no validation set.
    """
    if val is None:
        return None

    def validate(model: nn.Module) -> dict[str, float]:
        labels, probs = predict(
            model,
            val,
            batch_size=512,
            max_particles=cfg.data.max_particles,
            feature_set=cfg.data.features,
        )
        m = classifier_metrics(labels, probs, classes, cfg.finetune.signal_class)
        p_true = probs[np.arange(len(labels)), labels]
        out = {
            "val_loss": float(-np.log(np.clip(p_true, 1e-12, None)).mean()),
            "val_auc": float(m["auc"]),
            "val_acc": float(m["accuracy"]),
        }
        for wp, r in m["rejection"].items():
            if r is not None:
                out[f"val_rej{wp}"] = float(r)
        return out

    return validate


def run_finetune(
    cfg: Config, out: str | Path, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Train a classifier (from scratch with ``finetune.init = none``, else from a checkpoint).

    Args:
        cfg: resolved config (``data.train`` required; ``data.val``/``data.test`` optional).
        out: run directory (best model in ``out``, resumable state in ``out/last``).
        resume: continue an interrupted run in ``out``.
        progress: show a progress bar.

    Returns:
        Summary: fit result, and test metrics when ``data.test`` is set.
    """
    with Runner(
        cfg,
        out,
        resume,
        progress,
        need_train=not (cfg.finetune.cwola and cfg.finetune.cwola_samples),
    ) as run:
        out = run.out
        ft = cfg.finetune
        mode = ft.mode
        if ft.init == "none" and mode in ("frozen", "linear"):
            log.info(
                "mode %s with --init none trains a head on a random frozen backbone "
                "(the random-backbone control)",
                mode,
            )
        run.seed()
        cw = prepare_cwola(cfg) if ft.cwola else None  # weak supervision: mixture ids as labels
        classes = cw.classes if cw is not None else data_classes(cfg.data.train)
        if len(classes) < 2:
            raise ConfigError(
                f"{cfg.data.train}: needs at least 2 classes to train a classifier, found {classes}"
            )
        in_dim = n_features(cfg.data.features)
        spec = (
            pretrained_backbone_spec(ft.init, cfg, in_dim)
            if ft.init != "none"
            else backbone_spec(cfg, in_dim)
        )
        model_spec = ModelSpec(
            task="classifier",
            n_classes=len(classes),
            classes=classes,
            head_hidden=head_hidden_for(mode, HEAD_HIDDEN),
            feature_set=cfg.data.features,
            **spec,
        )
        model = build_classifier(model_spec)
        if ft.init != "none":
            load_pretrained_backbone(model.backbone, ft.init)
            log.info("initialised backbone from %s", ft.init)
        source, n_jets = (cw.chunk, len(cw.chunk)) if cw is not None else _train_source(cfg)
        loader, spe = run.loader(source, n_jets)
        log.info(
            "%s: %d training jets, classes %s, %d steps/epoch, %d params",
            out,
            n_jets,
            classes,
            spe,
            sum(p.numel() for p in model.parameters()),
        )
        if cw is not None:
            log.info("CWoLa mixtures: %s", cw.info)
        meta = run.meta(
            model_spec,
            n_jets,
            sources=list(ft.cwola_samples) if cw is not None and ft.cwola_samples else None,
            subset=_subset_info(cfg, cw is not None),
            cwola=cw.info if cw is not None else None,
        )
        validate = make_validate(cfg, classes, run.val_source(cfg.train.val_max))
        if mode == "lp-ft":
            # phase 1: linear probe on the frozen backbone (out/lp); phase 2: everything, from there
            total = cfg.train.max_steps or cfg.train.epochs * spe
            if total < 2:
                raise ConfigError("finetune.mode=lp-ft needs at least 2 training steps")
            n_lp = max(1, min(total - 1, round(ft.lp_fraction * total)))
            cfg_lp = replace(cfg, train=replace(cfg.train, max_steps=n_lp, early_stopping=None))
            run.train(
                model,
                classification_loss,
                loader,
                spe,
                meta,
                validate=validate,
                lr_mults=apply_mode(model, "linear", ft),
                cfg=cfg_lp,
                out=out / "lp",
                resume=resume and (out / "lp" / "last").exists(),
            )
            load_weights(model, out / "lp" / "last")
            cfg = replace(cfg, train=replace(cfg.train, max_steps=total - n_lp))
            resume = resume and (out / "last").exists()
            mode = "full"
        result: FitResult = run.train(
            model,
            classification_loss,
            loader,
            spe,
            meta,
            validate=validate,
            lr_mults=apply_mode(model, mode, ft),
            cfg=cfg,
            resume=resume,
        )
        summary: dict[str, Any] = {**run.summary(result), "best": result.best, "n_train": n_jets}
        if cw is not None:
            summary["cwola"] = cw.info
        if cfg.data.test is not None and run.main:
            from colliderfm.evaluate.run import evaluate_checkpoint

            summary["test"] = evaluate_checkpoint(
                out, cfg.data.test, out / "test_metrics.json", device=str(run.device)
            )
        return summary


def _subset_info(cfg: Config, cwola: bool) -> dict[str, Any] | None:
    """How the training examples were drawn from the sources (part of the data fingerprint)."""
    ft = cfg.finetune
    if cwola:
        return {
            "cwola_fractions": list(ft.cwola_fractions or []),
            "n_train": ft.n_train,
            "seed": cfg.train.seed,
        }
    if ft.n_train:
        return {"n_train": ft.n_train, "seed": cfg.train.seed}
    return None
