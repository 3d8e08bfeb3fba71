"""The recipe runner: the setup every recipe shares, and the one caller of the training loop.

A recipe (pretraining, fine-tuning incl. CWoLa, tokenizer training; a study point is a
fine-tuning or pretraining recipe) is a short function in the shape of torchtune's recipes:

1. **setup** with a :class:`Runner`: checks on the run directory and the training data, seeds,
   the training loader and its steps per epoch, the validation source, the checkpoint metadata
   with the data fingerprint;
2. **train**: :meth:`Runner.train` calls :func:`colliderfm.train.loop.fit` (nothing else does);
3. **save**: the loop writes the best model to ``out`` and the resumable state to ``out/last``;
   :meth:`Runner.summary` turns the result into the summary the CLI prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from colliderfm.config import Config
from colliderfm.data.readers.dispatch import iter_chunks
from colliderfm.data.schema import ConstituentChunk
from colliderfm.data.stream import count_examples, training_loader
from colliderfm.errors import ConfigError
from colliderfm.runtime import rank_world, seed_everything
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


class Runner:
    """Setup, training and summary of one recipe run.

    Args:
        cfg: the resolved config.
        out: run directory (best model in ``out``, resumable state in ``out/last``).
        resume: continue an interrupted run in ``out``.
        progress: show progress bars.
        need_train: ``data.train`` must be set.
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
        self.cfg, self.out, self.resume, self.progress = cfg, Path(out), resume, progress
        if not resume and (self.out / "last").exists():
            raise ConfigError(
                f"{self.out}: a run already exists there (use --resume to continue it, or "
                "choose another --out)"
            )
        self.rank, self.world = rank_world()
        self.main = self.rank == 0

    def seed(self) -> None:
        """Seed every generator from ``train.seed`` (before building modules)."""
        seed_everything(self.cfg.train.seed)

    def shard_count(self, what: str) -> int:
        """Examples per pass of ``data.train``, which must be canonical shards.

        Args:
            what: the recipe, for the error message (e.g. ``"pretraining"``).

        Returns:
            The count from the manifest or Parquet metadata.
        """
        n = count_examples(self.cfg.data.train)  # type: ignore[arg-type]
        if n is None:
            raise ConfigError(
                f"{self.cfg.data.train}: {what} reads shard directories; convert it "
                "first with `colliderfm convert`"
            )
        return n

    def loader(self, source: str | Path | ConstituentChunk, n: int) -> tuple[DataLoader, int]:
        """The endless shuffled training loader and its steps per epoch.

        Args:
            source: training data (path or in-memory chunk).
            n: examples per pass.

        Returns:
            (loader, steps per epoch).
        """
        return training_loader(source, n, self.cfg)

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
        )

    @staticmethod
    def summary(result: FitResult) -> dict[str, Any]:
        """The part of a recipe's summary every recipe reports.

        Args:
            result: the loop's result.

        Returns:
            ``steps``, ``epochs``, ``wall_s`` and ``examples_per_s`` (examples per second).
        """
        return {
            "steps": result.steps,
            "epochs": result.epochs,
            "wall_s": round(result.wall_s, 1),
            "examples_per_s": round(result.examples_per_s, 1),
        }
