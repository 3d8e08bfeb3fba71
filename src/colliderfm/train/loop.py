"""The one training loop every recipe uses (supervised, fine-tuning and pretraining).

A recipe provides a module holding every trainable part and ``loss_fn(module, batch) ->
(loss, logs)``. The loop adds: AdamW (or SGD with momentum) with per-group learning-rate
multipliers, linear warm-up + cosine decay to ``train.min_lr``, gradient clipping, the device
(the module is moved there once, every batch after the loader) and precision (bf16 autocast on
CPU and CUDA, fp16 autocast with a gradient scaler on CUDA, TF32 matmuls for fp32 on CUDA), seed
control, validation every epoch, early stopping, a progress bar,
CSV/TensorBoard logs, atomic checkpoints (``out/`` holds the best model, ``out/last/`` the
resumable latest state) and bit-for-bit resume.

Under ``torchrun`` (torch.distributed initialised) the loss runs through
:class:`~torch.nn.parallel.DistributedDataParallel` (a :class:`LossModule` wrapping the module
and the recipe's loss), which averages gradients across ranks while backward runs; only rank 0
logs and writes checkpoints, of the unwrapped module. A single process never wraps.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from colliderfm.config import Config, TrainConfig
from colliderfm.data.schema import Batch
from colliderfm.errors import ColliderFMError, ConfigError
from colliderfm.runtime import (
    check_precision,
    cpu_has_fast_bf16,
    rank_world,
    resolve_device,
    seed_everything,
)
from colliderfm.train.checkpoint import load_state, load_weights, read_meta, save_checkpoint
from colliderfm.train.logging import RunLogger, log
from colliderfm.train.meta import CheckpointMeta

LossFn = Callable[[nn.Module, Batch], tuple[torch.Tensor, dict[str, float]]]
ValidateFn = Callable[[nn.Module], dict[str, float]]
StepCallback = Callable[[int, nn.Module], "dict[str, float] | None"]


class TrainingError(ColliderFMError):
    """Training cannot continue (e.g. a non-finite loss)."""


@dataclass
class FitResult:
    """What a finished run reports."""

    steps: int
    epochs: int
    best: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    examples_per_s: float = 0.0
    stopped_early: bool = False
    paused: bool = False


def param_groups(
    module: nn.Module, weight_decay: float, lr_mults: dict[str, float] | None = None
) -> list[dict[str, Any]]:
    """AdamW parameter groups: no weight decay on biases/norms; per-prefix lr multipliers.

    Args:
        module: the trained module.
        weight_decay: decay for matrices.
        lr_mults: ``{"backbone.": 0.1, "head.": 1.0}``; the longest matching prefix wins;
            unmatched parameters get 1.0. Parameters with ``requires_grad=False`` are skipped.

    Returns:
        Groups with ``params``, ``weight_decay``, ``lr_mult`` and ``name``.
    """
    lr_mults = lr_mults or {}
    groups: dict[tuple[float, bool], dict[str, Any]] = {}
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        prefix = max((k for k in lr_mults if name.startswith(k)), key=len, default=None)
        mult = lr_mults[prefix] if prefix is not None else 1.0
        decay = p.ndim >= 2
        g = groups.setdefault(
            (mult, decay),
            {
                "params": [],
                "weight_decay": weight_decay if decay else 0.0,
                "lr_mult": mult,
                "name": f"{prefix or 'all'}{'' if decay else ':no_decay'}",
            },
        )
        g["params"].append(p)
    return list(groups.values())


def lr_lambda(total: int, warmup: int, floor: float = 0.0) -> Callable[[int], float]:
    """Linear warm-up to 1 over ``warmup`` steps, then cosine decay to ``floor`` at ``total``.

    Args:
        total: total optimizer steps.
        warmup: warm-up steps.
        floor: final multiplier (``min_lr / lr``; 0 decays to zero).

    Returns:
        Multiplier as a function of the step.
    """

    def f(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def make_optimizer(groups: list[dict[str, Any]], tc: TrainConfig) -> torch.optim.Optimizer:
    """The run's optimizer over prepared parameter groups (each with its own ``lr``).

    Args:
        groups: groups from :func:`param_groups` with ``lr`` set.
        tc: train config (``optimizer``, ``lr``, ``momentum``, ``weight_decay``).

    Returns:
        ``AdamW`` (``optimizer: adamw``) or ``SGD`` with momentum (``optimizer: sgd``; weight
        decay is then the classic L2 penalty).
    """
    if tc.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay)
    if tc.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=tc.lr, weight_decay=tc.weight_decay)
    raise ConfigError(f"config key 'train.optimizer' = {tc.optimizer!r} is not one of adamw, sgd")


class LossModule(nn.Module):
    """``module`` whose ``forward(batch)`` is the recipe's loss: what DDP wraps.

    DistributedDataParallel synchronises gradients only for the computation that runs inside
    its ``forward``; recipes compute losses through ``loss_fn(module, batch)`` (which calls
    ``module.loss(batch)`` or ``module(features, ...)``), so the loop wraps this module instead
    of ``module``. Parameters keep their identity: checkpoints of ``module`` are unchanged.

    Args:
        module: everything trainable.
        loss_fn: ``(module, batch) -> (loss, logs)``.
    """

    def __init__(self, module: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.module = module
        self.loss_fn = loss_fn

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of ``module`` on ``batch``.

        Args:
            batch: a batch on the module's device.

        Returns:
            (scalar loss, logs).
        """
        return self.loss_fn(self.module, batch)


def _has_unused_params(
    wrapper: LossModule, batch: Batch, autocast: Any, device: torch.device
) -> bool:
    """Whether some trainable parameter gets no gradient from the loss on ``batch``.

    One forward and backward pass on a copy of the state: the module's weights and buffers
    (e.g. running statistics, codebook EMAs), its gradients and the RNG state are restored, so
    the run is unchanged by it.

    Args:
        wrapper: the loss module.
        batch: a batch on ``device``.
        autocast: the loop's autocast context.
        device: the training device.

    Returns:
        True when a parameter with ``requires_grad`` ends with no gradient.
    """
    rng = _rng_state(device)
    saved = {k: v.detach().clone() for k, v in wrapper.module.state_dict().items()}
    params = [p for p in wrapper.parameters() if p.requires_grad]
    try:
        with autocast:
            loss, _ = wrapper(batch)
        loss.backward()
        return any(p.grad is None for p in params)
    finally:
        for p in params:
            p.grad = None
        wrapper.module.load_state_dict(saved)
        _set_rng_state(rng, device)


def _wrap_ddp(
    module: nn.Module, loss_fn: LossFn, batch: Batch, device: torch.device, autocast: Any
) -> torch.nn.parallel.DistributedDataParallel:
    """Wrap the loss module in DistributedDataParallel (gradient all-reduce during backward).

    DDP broadcasts rank 0's parameters and buffers at construction, so every rank starts from
    the same weights. ``find_unused_parameters`` (a graph traversal every step) is switched on
    only when a trainable parameter gets no gradient on some rank's first batch (e.g. a
    backbone's class-attention blocks under MPM, or its final norm under contrastive
    pretraining); all ranks agree on the decision.

    Args:
        module: everything trainable (on ``device``).
        loss_fn: the recipe's loss.
        batch: this rank's first batch (on ``device``) for the unused-parameter check.
        device: the training device (``device_ids=[device.index]`` on CUDA).
        autocast: the loop's autocast context.

    Returns:
        The wrapped loss module: ``ddp(batch) -> (loss, logs)``.
    """
    wrapper = LossModule(module, loss_fn)
    flag = torch.tensor([float(_has_unused_params(wrapper, batch, autocast, device))])
    if device.type == "cuda":
        flag = flag.to(device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    unused = bool(flag.item())
    log.info("DistributedDataParallel (find_unused_parameters=%s)", unused)
    return torch.nn.parallel.DistributedDataParallel(
        wrapper,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=unused,
        forward_sync_buffers=False,  # buffers are synced once at construction, as the weights
    )


def _from_rank0(obj: Any) -> Any:
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _rng_state(device: torch.device | None = None) -> dict[str, Any]:
    s = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if device is not None and device.type == "cuda":  # augmentation/dropout draws on the GPU
        s["cuda"] = torch.cuda.get_rng_state(device)
    return s


def _set_rng_state(s: dict[str, Any], device: torch.device | None = None) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])
    if "cuda" in s and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(s["cuda"], device)


def _amp_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of ``train.precision`` (None: fp32, no autocast)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def _save_interrupted(
    save: Callable[[], None], main: bool, updating: bool, step: int, saved: int, last: Path
) -> str:
    """Save a resumable state when a run is interrupted, and say where it can resume.

    The state is consistent between optimizer updates: an interrupt during a step's forward or
    backward pass saves the state before that step (with the RNG as it was then), so the resumed
    run redoes it. An interrupt while the update itself is applied saves nothing (the weights may
    be half-updated): the run resumes from the last regular checkpoint.

    Args:
        save: writes ``out/last`` for the current step.
        main: this rank writes checkpoints.
        updating: the interrupt came while the optimizer was applying an update.
        step: optimizer steps done.
        saved: step of the state already in ``out/last`` (-1: none).
        last: the resumable checkpoint directory.

    Returns:
        What ``--resume`` will do, for the CLI's one-line message.
    """
    if main and not updating and step != saved:
        try:
            save()
            saved = step
        except Exception as exc:  # noqa: BLE001 - the interrupt, not this, is what to report
            log.debug("could not save the interrupted state: %s", exc)
    if saved < 0:
        return "nothing to resume yet (no checkpoint was written)"
    return f"{last.parent}: continue with --resume (from step {saved})"


def fit(
    module: nn.Module,
    loss_fn: LossFn,
    data: Iterable[Batch],
    cfg: Config,
    out: str | Path,
    steps_per_epoch: int,
    meta: CheckpointMeta | dict[str, Any],
    validate: ValidateFn | None = None,
    lr_mults: dict[str, float] | None = None,
    resume: bool = False,
    progress: bool = True,
    step_callback: StepCallback | None = None,
    device: torch.device | str | None = None,
) -> FitResult:
    """Train ``module`` on ``data`` (an endless iterable of batches) and write checkpoints.

    Args:
        module: everything trainable (backbone + heads).
        loss_fn: ``(module, batch) -> (scalar loss, logs)``.
        data: endless iterable of :class:`Batch` (deterministic for the config's seed).
        cfg: the resolved config (saved into every checkpoint).
        out: run directory.
        steps_per_epoch: optimizer steps per epoch (validation cadence).
        meta: checkpoint metadata describing how to rebuild ``module`` (the resolved config is
            added to it here).
        validate: ``module -> metrics`` run at the end of each epoch (names like ``val_auc``);
            under torch.distributed only on rank 0, its metrics are sent to every rank.
        lr_mults: learning-rate multipliers by parameter-name prefix.
        resume: continue from ``out/last``.
        progress: show a progress bar.
        step_callback: ``(step, module) -> metrics or None`` called after every optimizer step
            (e.g. a periodic linear probe); returned metrics are logged.
        device: where to train (the runner resolves ``train.device`` once and passes it; None
            resolves it here). The module is moved there once; every batch is copied there
            (``non_blocking``) after the loader, so the loss, augmentations and features run
            there; ``validate`` and ``step_callback`` get the module on it.

    Returns:
        A :class:`FitResult`.

    Raises:
        ConfigError: ``train.early_stopping`` is set but there is no ``validate``.
    """
    tc = cfg.train
    if tc.early_stopping and validate is None:
        raise ConfigError(
            f"train.early_stopping={tc.early_stopping} needs validation data, and this run has "
            "none (data.val is null, or the recipe does not validate): give data.val, or set "
            "train.early_stopping=null"
        )
    out = Path(out)
    rank, world = rank_world()
    main = rank == 0
    if tc.threads:
        torch.set_num_threads(tc.threads)
    seed_everything(tc.seed)
    device = resolve_device(tc.device if device is None else device)
    check_precision(tc.precision, device)
    module.to(device)  # in place: parameters keep their identity (names, checkpoints unchanged)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls and convolutions in TF32
        torch.backends.cudnn.allow_tf32 = True
    amp_dtype = _amp_dtype(tc.precision)
    scaler = torch.amp.GradScaler(device.type) if tc.precision == "fp16" else None
    if tc.compile:
        target = getattr(module, "backbone", module)
        target.compile(dynamic=True)  # in place: parameter names and checkpoints unchanged
        log.info("torch.compile(dynamic=True) on %s", type(target).__name__)
    total = tc.max_steps or tc.epochs * steps_per_epoch
    n_epochs = math.ceil(total / steps_per_epoch)
    warmup = int(tc.warmup * total) if tc.warmup < 1 else int(tc.warmup)
    groups = param_groups(module, tc.weight_decay, lr_mults)
    for g in groups:
        g["lr"] = tc.lr * g["lr_mult"]
    trainable = [p for g in groups for p in g["params"]]
    if not trainable:
        raise TrainingError("nothing to train: every parameter is frozen")
    if tc.min_lr > tc.lr:
        raise ConfigError(f"train.min_lr = {tc.min_lr} is larger than train.lr = {tc.lr}")
    opt = make_optimizer(groups, tc)
    floor = tc.min_lr / tc.lr if tc.lr > 0 else 0.0
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total, warmup, floor))
    if isinstance(meta, CheckpointMeta):
        meta = dataclasses.replace(meta, config=cfg.to_dict())
    else:
        meta = {**meta, "config": cfg.to_dict()}
    monitor = tc.early_stopping
    sign = 1.0 if monitor == "val_auc" else -1.0
    step, best_score, bad_epochs, history = 0, -math.inf, 0, []
    data_from = 0  # the step at which the run started on its current data
    best: dict[str, float] = {}
    if resume:
        state = load_state(out / "last")
        load_weights(module, out / "last")
        opt.load_state_dict(state["optimizer"])  # its state follows the parameters' device
        sched.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler") is not None:
            scaler.load_state_dict(state["scaler"])
        step, best_score, bad_epochs = state["step"], state["best_score"], state["bad_epochs"]
        best, history = state.get("best", {}), state.get("history", [])
        data_from = state.get("data_from", 0)
        if state.get("finished"):
            log.info("run in %s already finished at step %d", out, step)
            return FitResult(
                steps=step,
                epochs=step // steps_per_epoch,
                best=best,
                last=history[-1] if history else {},
            )
        log.info("resuming %s at step %d", out, step)
    if world > 1:  # identical weights (DDP, below), independent augmentation/dropout draws
        torch.manual_seed(tc.seed + 1_000_003 * rank)
    logger = RunLogger(out, enabled=main)
    it: Iterator[Batch] = iter(data)
    if resume and _same_data(meta, out / "last"):
        for _ in range(step - data_from):  # replay this data's order up to the resume point
            next(it)
    elif resume:
        data_from = step  # an interrupted run on this data replays from here
        log.info("resuming on other data than the saved state's: its stream starts afresh")
    autocast = torch.autocast(
        device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None
    )
    if resume:
        _set_rng_state(state["rng"], device)
        if world > 1 and rank > 0:  # out/last holds rank 0's RNG: keep the ranks' draws apart
            torch.manual_seed(tc.seed + 1_000_003 * rank + 7_919 * step)
    ddp: torch.nn.parallel.DistributedDataParallel | None = None
    if world > 1 and step < total:
        first = next(it).to(device, non_blocking=True)
        ddp = _wrap_ddp(module, loss_fn, first, device, autocast)
        it = itertools.chain([first], it)
    if tc.precision == "bf16" and device.type == "cpu" and main and not cpu_has_fast_bf16():
        log.warning(
            "train.precision=bf16 on a CPU without native bf16 (no AVX512-BF16/AMX): torch "
            "emulates it, about 9x slower than fp32 on such a CPU; set train.precision=fp32"
        )
    bar = tqdm(
        total=total,
        initial=step,
        disable=not (progress and main),
        unit="step",
        dynamic_ncols=True,
        leave=True,
    )
    t0, n_seen, stopped, paused, last = time.perf_counter(), 0, False, False, {}
    module.train()
    saved_step = step if resume else -1  # the step of the state in out/last
    # RNG state at the start of the step in progress (None once its update is applied), and
    # whether an update is being applied: what an interrupted run can save consistently
    step_rng: dict[str, Any] | None = None
    updating = False

    def save(finished: bool = False, rng: dict[str, Any] | None = None) -> None:
        nonlocal saved_step
        if not main:
            return
        state = {
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "step": step,
            "best_score": best_score,
            "bad_epochs": bad_epochs,
            "best": best,
            "history": history,
            "rng": rng if rng is not None else _rng_state(device),
            "finished": finished,
            "data_from": data_from,
        }
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
        save_checkpoint(out / "last", module, meta, state)
        saved_step = step

    try:
        while step < total:
            step_rng = _rng_state(device)
            batch = next(it).to(device, non_blocking=True)  # no copy when already there (CPU)
            with autocast:  # under DDP its forward is the loss: gradients sync in backward
                loss, logs = loss_fn(module, batch) if ddp is None else ddp(batch)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"non-finite loss ({loss.item()}) at step {step} (epoch "
                    f"{step // steps_per_epoch}, batch {step % steps_per_epoch}); the last good "
                    f"checkpoint is in {out / 'last'}"
                )
            opt.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
            else:
                scaler.scale(loss).backward()
            if scaler is not None:
                scaler.unscale_(opt)  # clip (and log) the true gradient norm
            if tc.grad_clip:
                logs["grad_norm"] = float(nn.utils.clip_grad_norm_(trainable, tc.grad_clip))
            updating = True
            if scaler is None:
                opt.step()
            else:
                scaler.step(opt)  # skipped when the scaled gradients overflowed
                scaler.update()
            sched.step()
            step += 1
            updating, step_rng = False, None
            n_seen += len(batch)
            bar.update(1)
            if step_callback is not None:
                extra = step_callback(step, module)
                if extra:
                    module.train()
                    logger.log(step, (step - 1) // steps_per_epoch, extra)
                    if main:
                        bar.write(
                            "[colliderfm] step {}: {}".format(
                                step, ", ".join(f"{k}={v:.4f}" for k, v in extra.items())
                            ),
                            file=sys.stderr,
                        )
            if step % tc.log_every == 0 or step == total:
                logs = {"train_loss": loss.detach().item(), "lr": sched.get_last_lr()[0], **logs}
                logger.log(step, (step - 1) // steps_per_epoch, logs)
                bar.set_postfix(loss=f"{logs['train_loss']:.4f}")
            if step % steps_per_epoch == 0 or step == total:
                epoch = (step - 1) // steps_per_epoch
                # rank 0 validates; the others wait here and get the same metrics, so every
                # rank takes the same early-stopping decision
                last = validate(module) if validate is not None and main else {}
                if world > 1:
                    last = _from_rank0(last)
                module.train()
                last = {"epoch": epoch, "step": step, **last}
                history.append(last)
                logger.log(
                    step, epoch, {k: v for k, v in last.items() if k not in ("epoch", "step")}
                )
                score = sign * last[monitor] if monitor else float(step)
                if score > best_score:
                    best_score, bad_epochs, best = score, 0, dict(last)
                    if main:
                        save_checkpoint(out, module, meta, inplace=True)
                else:
                    bad_epochs += 1
                shown = ", ".join(
                    f"{k}={v:.4f}" for k, v in last.items() if k not in ("epoch", "step")
                )
                if shown and main:  # an epoch without validation metrics prints nothing
                    bar.write(
                        f"[colliderfm] epoch {epoch + 1}/{n_epochs} step {step}: {shown}",
                        file=sys.stderr,
                    )
                if monitor and bad_epochs >= tc.patience:
                    stopped = True
                    log.info(
                        "early stopping at epoch %d (%s did not improve for %d epochs)",
                        epoch + 1,
                        monitor,
                        bad_epochs,
                    )
                    break
                save()
            elif tc.checkpoint_every and step % tc.checkpoint_every == 0:
                save()
            if tc.stop_at_step and step >= tc.stop_at_step and step < total:
                paused = True
                if main and not monitor:  # no validation: the model in out is the latest one
                    save_checkpoint(out, module, meta, inplace=True)
                save()
                log.info("paused at step %d of %d (train.stop_at_step)", step, total)
                break
        if not paused:
            save(finished=True)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (colliderfm.runtime)
        exc.resumable = _save_interrupted(  # type: ignore[attr-defined]
            lambda: save(rng=step_rng), main, updating, step, saved_step, out / "last"
        )
        raise
    finally:
        bar.close()
        logger.close()
    wall = time.perf_counter() - t0
    return FitResult(
        steps=step,
        epochs=math.ceil(step / steps_per_epoch),
        best=best,
        last=last,
        wall_s=wall,
        examples_per_s=n_seen * world / max(wall, 1e-9),
        stopped_early=stopped,
        paused=paused,
    )


def _same_data(meta: CheckpointMeta | dict[str, Any], last: Path) -> bool:
    """Whether a run resumes on the data its saved state was trained on (same fingerprint)."""
    now = meta.data.fingerprint if isinstance(meta, CheckpointMeta) else meta.get("data", {})
    if isinstance(now, dict):
        now = now.get("fingerprint")
    saved = (read_meta(last).get("data") or {}).get("fingerprint")
    return now is None or saved is None or now == saved
