"""The recipe runner: the setup every recipe shares, and the one caller of the training loop.

A recipe (pretraining, fine-tuning incl. CWoLa, tokenizer training; a study point is a
fine-tuning or pretraining recipe) is a short function in the shape of torchtune's recipes:

1. **setup** with a :class:`Runner` (a context manager holding the run directory's
   :class:`RunLock`): checks on the run directory and the training data, the device and
   precision (``train.device``, ``train.precision``: resolved once, refused before any work when
   this machine lacks them), seeds,
   the training loader and its steps per epoch, the validation source, the checkpoint metadata
   with the data fingerprint;
2. **train**: :meth:`Runner.train` calls :func:`colliderfm.train.loop.fit` (nothing else does);
3. **save**: the loop writes the best model to ``out`` and the resumable state to ``out/last``;
   :meth:`Runner.summary` turns the result into the summary the CLI prints. A recipe that fits
   its module without the loop (``finetune.mode: linear``, the L-BFGS probe) saves it with
   :meth:`Runner.save_finished`: the same two checkpoints, ``out/last`` marked finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from colliderfm.config import Config
from colliderfm.data.readers.dispatch import iter_chunks
from colliderfm.data.schema import ConstituentChunk
from colliderfm.data.stream import examples_per_pass, training_loader
from colliderfm.errors import ConfigError, DataError
from colliderfm.runtime import check_precision, rank_world, resolve_device, seed_everything
from colliderfm.train.checkpoint import STATE, load_state, save_checkpoint
from colliderfm.train.loop import FitResult, LossFn, StepCallback, ValidateFn, fit
from colliderfm.train.meta import CheckpointMeta, DataInfo, ModelSpec, data_fingerprint


def first_examples(path: str | Path, limit: int) -> ConstituentChunk:
    """The first ``limit`` jets or events of any readable input, loaded into memory.

    Args:
        path: input path.
        limit: how many.

    Returns:
        The chunk (fewer when the input is smaller).
    """
    parts, n = [], 0
    for c in iter_chunks(path):
        parts.append(c)
        n += len(c)
        if n >= limit:
            break
    chunk = ConstituentChunk.concat(parts)
    return chunk.take(np.arange(min(len(chunk), limit)))


def own_loss(module: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
    """The loop's loss function for modules that compute their own (``module.loss(batch)``).

    Pretraining modules (backbone + objective) and tokenizers are such modules.

    Args:
        module: the trained module.
        batch: a batch (labels ignored).

    Returns:
        (loss, logs).
    """
    return module.loss(batch)


class RunLock:
    """One writer per run directory: ``OUT/.colliderfm.lock`` holds the writer's pid.

    A second run into a directory that a live run holds is refused; a lock left by a process
    that no longer exists (killed, machine restarted) is taken over. Creating the lock file is
    atomic (``O_EXCL``), so two runs started at the same moment cannot both win.

    Args:
        out: the run directory (created when missing).
    """

    NAME = ".colliderfm.lock"

    def __init__(self, out: Path) -> None:
        self.out, self.path = out, out / self.NAME
        self.created_dir = not out.exists()
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(
                out, f"cannot create the run directory ({exc.strerror or exc})"
            ) from exc
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and holder != os.getpid() and _alive(holder):
                    raise ConfigError(
                        f"{out}: another colliderfm run (pid {holder}) is writing there; wait "
                        "for it to finish or choose another --out"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            except OSError as exc:
                raise DataError(
                    out, f"cannot lock the run directory ({exc.strerror or exc})"
                ) from exc
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            return
        raise ConfigError(f"{out}: cannot take the run lock {self.path} (another run keeps it)")

    def _holder(self) -> int | None:
        try:
            return int(self.path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None  # unreadable or half-written: treated as stale

    def release(self) -> None:
        """Remove the lock (and the run directory when this run created it and left it empty)."""
        if self._holder() == os.getpid():
            self.path.unlink(missing_ok=True)
        if self.created_dir:
            with contextlib.suppress(OSError):
                self.out.rmdir()  # only succeeds when empty


def _has_checkpoint(out: Path) -> bool:
    """Whether a run directory holds any checkpoint (weights or resumable state), at any depth."""
    return any(out.rglob("model.safetensors")) or any(out.rglob("state.pt"))


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class Runner:
    """Setup, training and summary of one recipe run.

    Args:
        cfg: the resolved config.
        out: run directory (best model in ``out``, resumable state in ``out/last``).
        resume: continue an interrupted run in ``out``.
        progress: show progress bars.
        need_train: ``data.train`` must be set.

    Attributes:
        device: the training device, resolved once from ``train.device``; the loop moves the
            module there and copies every batch there.
    """

    def __init__(
        self,
        cfg: Config,
        out: str | Path,
        resume: bool = False,
        progress: bool = True,
        need_train: bool = True,
    ) -> None:
        if need_train and cfg.data.train is None:
            raise ConfigError("data.train is not set (give --set data.train=DIR)")
        self.device = resolve_device(cfg.train.device)  # before any work: one error line
        check_precision(cfg.train.precision, self.device)
        self.cfg, self.out, self.resume, self.progress = cfg, Path(out), resume, progress
        self.rank, self.world = rank_world()
        self.main = self.rank == 0
        # the lock first: a directory a live run holds is refused naming that run's pid, even
        # when the run has written its first checkpoint already
        self._lock = RunLock(self.out) if self.main else None
        if not resume and (self.out / "last").exists():
            self.close()
            raise ConfigError(
                f"{self.out}: a run already exists there (use --resume to continue it, or "
                "choose another --out)"
            )

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: object, tb: object) -> None:
        failed = kind is not None and not issubclass(kind, KeyboardInterrupt)
        self.close(discard=failed)

    def close(self, discard: bool = False) -> None:
        """Release the run directory: its lock, and what a failed run leaves behind.

        Args:
            discard: the run failed (not interrupted). When this run created the directory and
                no checkpoint was ever written into it, its logs (``metrics.csv``, ``tb/``) are
                removed with it: nothing half-written stays. A directory with a checkpoint is
                kept, so ``--resume`` can continue.
        """
        if self._lock is None:
            return
        if discard and self._lock.created_dir and not _has_checkpoint(self.out):
            shutil.rmtree(self.out, ignore_errors=True)
        else:
            self._lock.release()
        self._lock = None

    def seed(self) -> None:
        """Seed every generator from ``train.seed`` (before building modules)."""
        seed_everything(self.cfg.train.seed)

    def shard_count(self) -> int:
        """Examples per pass of ``data.train``, in any readable format.

        Shards give their count from metadata; JetClass ROOT and Top Tagging HDF5 their stored
        entries; NanoAOD (read unlabelled, selection applied while reading) is counted by one
        streaming pass (:func:`~colliderfm.data.stream.examples_per_pass`).

        Returns:
            The count.
        """
        source = self.cfg.data.train
        assert source is not None
        return examples_per_pass(source)

    def loader(self, source: str | Path | ConstituentChunk, n: int) -> tuple[DataLoader, int]:
        """The endless shuffled training loader and its steps per epoch.

        Args:
            source: training data (path or in-memory chunk).
            n: examples per pass.

        Returns:
            (loader, steps per epoch); on CUDA the loader pins its batches.
        """
        if self.device.type == "cuda":
            return training_loader(source, n, self.cfg, device=self.device)
        return training_loader(source, n, self.cfg)  # the CPU loader, unchanged

    def val_source(self, limit: int | None) -> str | Path | ConstituentChunk | None:
        """The validation data: ``data.val``, or its first ``limit`` examples held in memory.

        Args:
            limit: keep this many (loaded once, so every validation sees the same examples);
                None streams the whole of ``data.val`` each time.

        Returns:
            The source, or None without ``data.val``.
        """
        val = self.cfg.data.val
        if val is None or limit is None:
            return val
        return first_examples(val, limit)

    def meta(
        self,
        model: ModelSpec,
        n_train: int,
        sources: list[str | Path] | None = None,
        subset: dict[str, Any] | None = None,
        cwola: dict[str, Any] | None = None,
    ) -> CheckpointMeta:
        """Checkpoint metadata with the data fingerprint (the loop adds the config).

        Args:
            model: how to rebuild the module.
            n_train: examples per pass.
            sources: training sources (default: ``data.train``).
            subset: how examples were taken from the sources (``n_train``, ``seed``, ...).
            cwola: CWoLa mixture information.

        Returns:
            The metadata.
        """
        if sources is None:
            sources = [self.cfg.data.train] if self.cfg.data.train is not None else []
        fp, src = data_fingerprint(list(sources), subset)
        return CheckpointMeta(
            model=model,
            data=DataInfo(n_train=n_train, fingerprint=fp, sources=src, subset=subset, cwola=cwola),
        )

    def train(
        self,
        module: nn.Module,
        loss_fn: LossFn,
        loader: Any,
        steps_per_epoch: int,
        meta: CheckpointMeta,
        validate: ValidateFn | None = None,
        lr_mults: dict[str, float] | None = None,
        step_callback: StepCallback | None = None,
        cfg: Config | None = None,
        out: str | Path | None = None,
        resume: bool | None = None,
    ) -> FitResult:
        """Run the training loop (the only call of :func:`~colliderfm.train.loop.fit`).

        Args:
            module: everything trainable.
            loss_fn: ``(module, batch) -> (loss, logs)``.
            loader: endless iterable of batches.
            steps_per_epoch: validation cadence.
            meta: checkpoint metadata.
            validate: ``module -> metrics`` at the end of each epoch.
            lr_mults: learning-rate multipliers by parameter-name prefix.
            step_callback: ``(step, module) -> metrics or None`` after every step.
            cfg: config of this stage (default: the run's).
            out: directory of this stage (default: the run's).
            resume: resume this stage (default: the run's ``resume``).

        Returns:
            The loop's result.
        """
        return fit(
            module,
            loss_fn,
            loader,
            cfg or self.cfg,
            out if out is not None else self.out,
            steps_per_epoch,
            meta,
            validate=validate,
            lr_mults=lr_mults,
            resume=self.resume if resume is None else resume,
            progress=self.progress,
            step_callback=step_callback,
            device=self.device,
        )

    def save_finished(self, module: nn.Module, meta: CheckpointMeta, state: dict[str, Any]) -> None:
        """Save a module fitted without the training loop as a finished run (rank 0 only).

        Writes what the loop leaves behind a finished run: the model (weights and metadata with
        the run's config) in ``out``, and the same checkpoint in ``out/last`` with ``state``
        marked ``finished`` (so a new run into ``out`` is refused, and ``--resume`` finds it
        done: :meth:`finished_state`).

        Args:
            module: the fitted module.
            meta: checkpoint metadata (the run's config is added here).
            state: what ``--resume`` reports back (e.g. the fit's summary); ``step`` defaults to 0.
        """
        if not self.main:
            return
        full = dataclasses.replace(meta, config=self.cfg.to_dict())
        save_checkpoint(self.out, module, full, inplace=True)
        save_checkpoint(self.out / "last", module, full, {"step": 0, **state, "finished": True})

    def finished_state(self) -> dict[str, Any] | None:
        """The state :meth:`save_finished` left in ``out/last``, when resuming a finished run.

        Returns:
            The state, or None (not resuming, or no finished state there).
        """
        last = self.out / "last"
        if not self.resume or not (last / STATE).is_file():
            return None
        state = load_state(last)
        return state if state.get("finished") else None

    @staticmethod
    def summary(result: FitResult) -> dict[str, Any]:
        """The part of a recipe's summary every recipe reports.

        Args:
            result: the loop's result.

        Returns:
            ``steps``, ``epochs``, ``wall_s`` and ``examples_per_s`` (examples per second), and
            ``paused: true`` when the run stopped at ``train.stop_at_step``.
        """
        return {
            "steps": result.steps,
            "epochs": result.epochs,
            "wall_s": round(result.wall_s, 1),
            "examples_per_s": round(result.examples_per_s, 1),
            **({"paused": True} if result.paused else {}),
        }
