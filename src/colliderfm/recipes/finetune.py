"""Fine-tuning recipe: a classifier from scratch or from a pretrained backbone (and CWoLa).

Modes: ``full``, ``frozen``, ``linear`` and ``lp-ft`` (a linear-probe stage into ``out/lp``, then
everything from there). With ``finetune.cwola`` the labels are the mixture ids of two mixed
samples; validation and test use the true labels.

``linear`` runs no training loop (:func:`run_linear_probe`): a converged L-BFGS logistic
regression on the frozen backbone's embeddings, its L2 strength chosen on validation AUC
(:mod:`colliderfm.finetune.probe`), saved as a normal fine-tuned checkpoint. Its summary's
``steps`` and ``epochs`` are 0 (no optimizer step of the training loop); the L-BFGS iterations
are ``lbfgs_iters`` (the chosen strength's fit) and, per strength, in ``probe.grid``.
``lp-ft``'s probe stage trains the linear head with the training loop for
``finetune.lp_fraction`` of the step budget (no early stopping), then the full stage trains
everything for the rest of it (with early stopping when configured). Its summary counts both
stages: ``steps``, ``epochs`` and ``wall_s`` are their sums, and ``phases`` holds each stage's
own counts.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from colliderfm.config import Config, signal_index
from colliderfm.data.features import n_features
from colliderfm.data.readers import reader_for
from colliderfm.data.readers.dispatch import data_classes
from colliderfm.data.schema import Batch, ConstituentChunk
from colliderfm.data.stream import examples_per_pass
from colliderfm.data.subset import load_subset
from colliderfm.errors import ConfigError
from colliderfm.evaluate.metrics import validation_metrics
from colliderfm.evaluate.predict import predict
from colliderfm.finetune.classifier import (
    build_classifier,
    frozen_pooling,
    load_pretrained_backbone,
    pretrained_backbone_spec,
)
from colliderfm.finetune.cwola import prepare_cwola
from colliderfm.finetune.modes import apply_mode, freeze, head_hidden_for
from colliderfm.finetune.probe import ProbeResult, probe_head
from colliderfm.models.factory import backbone_spec
from colliderfm.recipes.runner import Runner
from colliderfm.train.checkpoint import load_weights
from colliderfm.train.logging import RunLogger, log
from colliderfm.train.loop import FitResult
from colliderfm.train.meta import CheckpointMeta, ModelSpec

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
    return path, examples_per_pass(path)


def check_signal_jets(cfg: Config, classes: list[str], val: Any) -> int:
    """The signal class's index; an error when the validation jets held in memory have none.

    Without a signal jet the validation AUC and rejections would measure nothing (e.g. a
    JetClass file's ten classes with the index 1, ``Hbb``, on top-vs-QCD data).

    Args:
        cfg: run config (``finetune.signal_class``, ``data.val``).
        classes: class names.
        val: validation data (path or in-memory chunk), or None.

    Returns:
        The index of the signal class in ``classes``.
    """
    sig = signal_index(cfg.finetune.signal_class, classes)
    if isinstance(val, ConstituentChunk) and not np.any(val.label == sig):
        present = sorted({classes[i] for i in np.unique(val.label) if 0 <= i < len(classes)})
        raise ConfigError(
            f"{cfg.data.val}: no validation jets of the signal class {classes[sig]!r} "
            f"(finetune.signal_class = {cfg.finetune.signal_class!r}; the jets are {present}; "
            "set finetune.signal_class to a class name, e.g. Tbqq)"
        )
    return sig


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
    sig = check_signal_jets(cfg, classes, val)

    def validate(model: nn.Module) -> dict[str, float]:
        labels, probs = predict(
            model,
            val,
            batch_size=512,
            max_particles=cfg.data.max_particles,
            feature_set=cfg.data.features,
        )
        return validation_metrics(labels, probs, classes, sig)

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
        Summary: fit result (``steps``, ``epochs``, ``wall_s``, ``examples_per_s``, ``best``
        validation metrics, ``n_train``), and test metrics when ``data.test`` is set.
        ``mode: linear`` adds ``lbfgs_iters``, ``probe_l2`` and the ``probe`` section
        (:func:`run_linear_probe`); its ``steps`` and ``epochs`` are 0.
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
        signal_index(ft.signal_class, classes)  # a bad signal class stops before any work
        in_dim = n_features(cfg.data.features)
        spec = (
            pretrained_backbone_spec(ft.init, cfg, in_dim)
            if ft.init != "none"
            else backbone_spec(cfg, in_dim)
        )
        pooling, why = frozen_pooling(ft.frozen_pooling, ft.init, mode, spec)
        if pooling != spec["kwargs"].get("pooling", "cls"):
            spec = {**spec, "kwargs": {**spec["kwargs"], "pooling": pooling}}
            log.info("the frozen backbone pools its tokens by their mean: %s", why)
        source, n_jets = (cw.chunk, len(cw.chunk)) if cw is not None else _train_source(cfg)
        own = str(spec["kwargs"].get("pooling", "cls"))

        def make(pool: str) -> tuple[nn.Module, CheckpointMeta]:
            """The classifier whose backbone pools by ``pool``, and its checkpoint metadata."""
            kw = spec["kwargs"] if pool == own else {**spec["kwargs"], "pooling": pool}
            model_spec = ModelSpec(
                task="classifier",
                n_classes=len(classes),
                classes=classes,
                head_hidden=head_hidden_for(mode, HEAD_HIDDEN),
                feature_set=cfg.data.features,
                **{**spec, "kwargs": kw},
            )
            model = build_classifier(model_spec)
            if ft.init != "none":
                load_pretrained_backbone(model.backbone, ft.init)
                log.info("initialised backbone from %s", ft.init)
            meta = run.meta(
                model_spec,
                n_jets,
                sources=list(ft.cwola_samples) if cw is not None and ft.cwola_samples else None,
                subset=_subset_info(cfg, cw is not None),
                cwola=cw.info if cw is not None else None,
            )
            return model, meta

        model, meta = make(own)
        if cw is not None:
            log.info("CWoLa mixtures: %s", cw.info)
        if mode == "linear":  # no training loop: the converged L-BFGS probe
            log.info(
                "%s: %d training %s, classes %s, linear probe (L-BFGS) on %d-dim embeddings",
                out,
                n_jets,
                cfg.data.unit,
                classes,
                model.dim,
            )
            alt = make if ft.frozen_pooling == "best" and own == "cls" else None
            probed = run_linear_probe(run, model, source, classes, meta, alt)
            if cw is not None:
                probed["cwola"] = cw.info
            return _with_test(probed, run, cfg)
        loader, spe = run.loader(source, n_jets)
        log.info(
            "%s: %d training %s, classes %s, %d steps/epoch, %d params",
            out,
            n_jets,
            cfg.data.unit,
            classes,
            spe,
            sum(p.numel() for p in model.parameters()),
        )
        validate = make_validate(cfg, classes, run.val_source(cfg.train.val_max))
        lp_result: FitResult | None = None
        if mode == "lp-ft":
            # phase 1: linear probe on the frozen backbone (out/lp); phase 2: everything, from there
            total = cfg.train.max_steps or cfg.train.epochs * spe
            if total < 2:
                raise ConfigError("finetune.mode=lp-ft needs at least 2 training steps")
            n_lp = max(1, min(total - 1, round(ft.lp_fraction * total)))
            cfg_lp = replace(cfg, train=replace(cfg.train, max_steps=n_lp, early_stopping=None))
            lp_result = run.train(
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
        if lp_result is not None:  # the budget is both phases: steps and time add up
            summary.update(_lp_ft_totals(run.summary(lp_result), run.summary(result)))
        if cw is not None:
            summary["cwola"] = cw.info
        return _with_test(summary, run, cfg)


def _lp_ft_totals(lp: dict[str, Any], ft: dict[str, Any]) -> dict[str, Any]:
    """An lp-ft run's summary counts: both phases together, and each phase on its own.

    Args:
        lp: :meth:`Runner.summary` of the linear-probe phase.
        ft: :meth:`Runner.summary` of the full phase.

    Returns:
        ``steps``, ``epochs`` and ``wall_s`` summed over the phases, ``examples_per_s`` over
        their total time, and ``phases``: ``{"lp": lp, "ft": ft}``.
    """
    wall = lp["wall_s"] + ft["wall_s"]
    seen = lp["examples_per_s"] * lp["wall_s"] + ft["examples_per_s"] * ft["wall_s"]
    return {
        "steps": lp["steps"] + ft["steps"],
        "epochs": lp["epochs"] + ft["epochs"],
        "wall_s": round(wall, 1),
        "examples_per_s": round(seen / wall, 1) if wall > 0 else 0.0,
        "phases": {"lp": lp, "ft": ft},
    }


def _with_test(summary: dict[str, Any], run: Runner, cfg: Config) -> dict[str, Any]:
    """Add the test metrics of the saved model (``data.test``, rank 0) to a summary."""
    if cfg.data.test is not None and run.main:
        from colliderfm.evaluate.run import evaluate_checkpoint

        summary["test"] = evaluate_checkpoint(
            run.out, cfg.data.test, run.out / "test_metrics.json", device=str(run.device)
        )
    return summary


def run_linear_probe(
    run: Runner,
    model: nn.Module,
    source: str | Path | ConstituentChunk,
    classes: list[str],
    meta: CheckpointMeta,
    make: Callable[[str], tuple[nn.Module, CheckpointMeta]] | None = None,
) -> dict[str, Any]:
    """``mode: linear``: fit the classifier's linear head as a converged L-BFGS probe, save it.

    The backbone is frozen; the training examples and the validation set (``data.val``, its
    first ``train.val_max`` examples) are embedded once on the run's device; one logistic
    regression per strength of ``finetune.probe_l2`` is fitted (on the run's device when it is
    CUDA, else on the CPU) and the best on validation AUC kept
    (:func:`colliderfm.finetune.probe.probe_head`). The test set is not read here. The model
    is saved like a finished training run (``out`` and ``out/last``); the validation metrics of
    the chosen fit are logged to ``metrics.csv`` at step 0. Every rank fits the same probe
    (deterministic), rank 0 writes. ``--resume`` on a finished probe run returns its summary.

    Args:
        run: the runner (device, config, run directory).
        model: the classifier (linear head).
        source: training examples (path or in-memory chunk).
        classes: class names.
        meta: checkpoint metadata.
        make: with ``finetune.frozen_pooling: best`` (a class-attention backbone), the builder
            of the same classifier with another pooling (``make("mean") -> (model, meta)``):
            the token-mean probe is fitted too, and whichever pooling has the better
            validation AUC is kept (ties and no validation set: the backbone's own).

    Returns:
        Summary: ``steps`` 0, ``epochs`` 0 (no training-loop steps), ``wall_s`` (embedding and
        fits), ``examples_per_s`` (training examples embedded per second of ``wall_s``),
        ``lbfgs_iters`` (iterations of the chosen fit), ``probe_l2`` (the chosen strength),
        ``best`` (its validation metrics, ``step`` 0), ``n_train``, and ``probe``: ``l2``,
        ``chosen_by`` (``val_auc``, or the fallback and why), ``grid`` (per strength: its
        validation metrics, L-BFGS iterations, convergence, final loss), ``lbfgs_iters_total``,
        ``max_iter``, ``n_val``, ``embed_s``, ``fit_s``.
    """
    cfg, ft = run.cfg, run.cfg.finetune
    done = run.finished_state()
    if done is not None and "probe_summary" in done:
        log.info("linear probe in %s already finished (l2=%g)", run.out, done["probe"]["l2"])
        return dict(done["probe_summary"])
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    t0 = time.perf_counter()
    val = run.val_source(cfg.train.val_max)
    signal = check_signal_jets(cfg, classes, val)

    def fit(m: nn.Module) -> ProbeResult:
        freeze(m.backbone)
        m.to(run.device)
        return probe_head(
            m,
            source,
            val,
            classes,
            list(ft.probe_l2),
            signal_class=signal,
            max_iter=ft.probe_max_iter,
            feature_set=cfg.data.features,
            max_particles=cfg.data.max_particles,
            fit_device=run.device if run.device.type == "cuda" else None,
        )

    res = fit(model)
    choice: dict[str, Any] | None = None
    if make is not None:  # frozen_pooling=best: the token mean competes on validation
        own_auc = (res.val or {}).get("val_auc")
        model_m, meta_m = make("mean")
        # the same token weights (a random backbone's too): only the pooling differs
        missing, _ = model_m.backbone.load_state_dict(model.backbone.state_dict(), strict=False)
        if missing:
            raise RuntimeError(f"mean-pooled backbone has weights the other lacks: {missing}")
        res_m = fit(model_m)
        mean_auc = (res_m.val or {}).get("val_auc")
        better = own_auc is not None and mean_auc is not None and mean_auc > own_auc
        if better:
            model, meta, res = model_m, meta_m, res_m
        chosen = "mean" if better else "cls"
        choice = {"chosen": chosen, "val_auc": {"cls": own_auc, "mean": mean_auc}}
        log.info(
            "linear probe: pooling %s chosen on validation AUC (class attention %s, token mean %s)",
            chosen,
            "n/a" if own_auc is None else f"{own_auc:.4f}",
            "n/a" if mean_auc is None else f"{mean_auc:.4f}",
        )
    wall = time.perf_counter() - t0
    probe = res.summary(ft.probe_max_iter)
    if choice is not None:
        probe["pooling"] = choice
    best = {"epoch": 0, "step": 0, **(res.val or {})}
    summary: dict[str, Any] = {
        "steps": 0,
        "epochs": 0,
        "wall_s": round(wall, 1),
        "examples_per_s": round(res.n_train / max(wall, 1e-9), 1),
        "lbfgs_iters": res.fit.iters,
        "probe_l2": res.l2,
        "best": best if res.val is not None else {},
        "n_train": res.n_train,
        "probe": probe,
    }
    if not res.fit.converged:
        log.warning(
            "linear probe: the chosen fit (l2=%g) stopped at the iteration limit "
            "(finetune.probe_max_iter=%d) before converging",
            res.l2,
            ft.probe_max_iter,
        )
    if run.main:
        # a fresh log: what an interrupted probe, or a resumed run of the old step-trained
        # linear head, left there is not this fit's
        (run.out / "metrics.csv").unlink(missing_ok=True)
        shutil.rmtree(run.out / "tb", ignore_errors=True)
        logger = RunLogger(run.out)
        try:
            logger.log(0, 0, {**(res.val or {}), "probe_l2": res.l2, "lbfgs_iters": res.fit.iters})
        finally:
            logger.close()
    run.save_finished(
        model, meta, {"best": summary["best"], "probe": probe, "probe_summary": summary}
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
