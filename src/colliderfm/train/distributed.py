"""Process-group setup and teardown for multi-process training under ``torchrun``.

``torchrun`` (or ``srun torchrun`` on SLURM) starts one process per rank and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. The CLI verbs that train
(``pretrain``, ``finetune``) wrap their work in :func:`distributed`, which then initialises
``torch.distributed`` (gloo for CPU tensors; ``cpu:gloo,cuda:nccl`` when CUDA is available, so
CUDA tensors go through NCCL) and tears it down at the end. Without those variables it does
nothing and the run is a plain single process.

The training loop (:func:`colliderfm.train.loop.fit`) does the rest: it broadcasts rank 0's
initial weights and averages gradients during backward (DistributedDataParallel), validates on
rank 0 and shares the metrics, and only rank 0 writes logs and checkpoints. Non-zero ranks log
warnings only.

Environment overrides: ``COLLIDERFM_DIST_BACKEND`` (e.g. ``gloo``) and
``COLLIDERFM_DIST_TIMEOUT_MIN`` (collective timeout in minutes, default 60: ranks wait this long
for rank 0's validation and final evaluation).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from colliderfm.errors import ConfigError
from colliderfm.runtime import rank_world

DEFAULT_TIMEOUT_MIN = 60.0

#: ``{"log_level": previous console level}`` while this module owns the process group
_owned: dict[str, int] = {}


def launched_by_torchrun() -> bool:
    """Whether the process was started by ``torchrun`` (``RANK`` and ``WORLD_SIZE`` are set).

    Returns:
        True under torchrun (or any launcher setting the same variables).
    """
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def default_backend() -> str:
    """The backend for this machine: gloo on CPU, gloo for CPU plus NCCL for CUDA tensors.

    Returns:
        A backend string for :func:`torch.distributed.init_process_group`.
    """
    env = os.environ.get("COLLIDERFM_DIST_BACKEND")
    if env:
        return env
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def is_main_process() -> bool:
    """Whether this process is rank 0 (True without torch.distributed).

    Returns:
        True on rank 0.
    """
    return rank_world()[0] == 0


def init_distributed(
    backend: str | None = None, timeout_min: float | None = None
) -> tuple[int, int]:
    """Initialise ``torch.distributed`` when launched by torchrun; otherwise do nothing.

    An already initialised process group is left alone (and not torn down by
    :func:`teardown_distributed`).

    Args:
        backend: process-group backend (default :func:`default_backend`).
        timeout_min: collective timeout in minutes (default ``COLLIDERFM_DIST_TIMEOUT_MIN`` or
            60).

    Returns:
        (rank, world size); (0, 1) for a single process.
    """
    if not launched_by_torchrun() or not dist.is_available():
        return 0, 1
    if dist.is_initialized():
        return rank_world()
    if timeout_min is None:
        raw = os.environ.get("COLLIDERFM_DIST_TIMEOUT_MIN", str(DEFAULT_TIMEOUT_MIN))
        try:
            timeout_min = float(raw)
        except ValueError as exc:
            raise ConfigError(f"COLLIDERFM_DIST_TIMEOUT_MIN={raw!r} is not a number") from exc
    backend = backend or default_backend()
    if "nccl" in backend and torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local % torch.cuda.device_count())
    dist.init_process_group(backend, timeout=timedelta(minutes=timeout_min))
    rank, world = rank_world()
    logger = logging.getLogger("colliderfm")
    _owned["log_level"] = logger.level
    if rank != 0:  # one console for the whole job
        logger.setLevel(logging.WARNING)
    return rank, world


def teardown_distributed(wait: bool = True) -> None:
    """Destroy the process group created by :func:`init_distributed` (no-op otherwise).

    Args:
        wait: meet at a barrier first, so every rank exits after rank 0 has finished its final
            work (test evaluation, last checkpoint). Pass False after an error: a failing rank
            must not wait for ranks that are still training.
    """
    if "log_level" not in _owned:
        return
    level = _owned.pop("log_level")
    try:
        if wait and dist.is_initialized():
            dist.barrier()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        logging.getLogger("colliderfm").setLevel(level)


@contextlib.contextmanager
def distributed(backend: str | None = None) -> Iterator[tuple[int, int]]:
    """``with distributed() as (rank, world): ...`` around a training verb.

    Args:
        backend: process-group backend (default :func:`default_backend`).

    Yields:
        (rank, world size); (0, 1) when not launched by torchrun.
    """
    rank, world = init_distributed(backend)
    ok = False
    try:
        yield rank, world
        ok = True
    finally:
        teardown_distributed(wait=ok)


class _GatherWithGrad(torch.autograd.Function):
    """``all_gather`` along dim 0 whose backward returns this rank's slice of the summed grads."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:  # noqa: D102
        rank = dist.get_rank()
        n_max = max(sizes)
        pad = x.new_zeros((n_max - x.shape[0], *x.shape[1:]))
        parts = [x.new_empty((n_max, *x.shape[1:])) for _ in sizes]
        dist.all_gather(parts, torch.cat((x, pad), 0).contiguous())
        ctx.rank, ctx.sizes = rank, sizes
        return torch.cat([p[:n] for p, n in zip(parts, sizes, strict=True)], 0)  # [sum n, ...]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        grad = grad.contiguous().clone()  # [sum n, ...]
        dist.all_reduce(grad)  # every rank's loss depends on every rank's rows
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int, list[int]]:
    """Concatenate ``x`` from every rank along dim 0, keeping the gradient to this rank's rows.

    Ranks may hold different numbers of rows. The backward pass sums, over ranks, the gradient
    of each rank's loss with respect to this rank's rows, so a loss computed on the gathered
    tensor (e.g. contrastive negatives from the global batch) trains as if one process held the
    whole batch once :class:`~torch.nn.parallel.DistributedDataParallel` averages the parameter
    gradients. Without an initialised process group (or with one rank) ``x`` is returned as is.

    Args:
        x: ``[n, ...]`` this rank's rows (same trailing shape on every rank).

    Returns:
        (``[N, ...]`` the rows of all ranks in rank order, offset of this rank's first row in
        them, rows per rank).
    """
    rank, world = rank_world()
    if world == 1:
        return x, 0, [x.shape[0]]
    n = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    sizes_t = [torch.empty_like(n) for _ in range(world)]
    dist.all_gather(sizes_t, n)
    sizes = [int(s.item()) for s in sizes_t]
    return _GatherWithGrad.apply(x, sizes), sum(sizes[:rank]), sizes
