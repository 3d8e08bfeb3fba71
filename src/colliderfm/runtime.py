"""Process-level facts every layer may ask for: the distributed rank and world size, seeding."""

from __future__ import annotations

import contextlib
import random
import signal

import numpy as np
import torch


def rank_world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without an initialised torch.distributed.

    Returns:
        Rank and world size.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch.

    Args:
        seed: the seed.
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system ending the job, ``kill``): handled like Ctrl-C.

    A subclass of :class:`KeyboardInterrupt`, so every cleanup that runs on Ctrl-C (temporary
    outputs removed, the training loop's resumable state saved) runs on SIGTERM too.
    """

    signum = signal.SIGTERM


def raise_on_sigterm() -> None:
    """Turn SIGTERM into :class:`Terminated` in this process (main thread only; else no-op)."""

    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    with contextlib.suppress(ValueError):  # not the main thread: leave the default
        signal.signal(signal.SIGTERM, handler)


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere torch emulates it.

    Measured on an AVX2-only AMD EPYC (2 cores): a ``small`` contrastive pretraining step took
    18 s with bf16 autocast against 1.95 s in fp32.

    Returns:
        True when bf16 autocast can be expected to pay on this CPU.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - a torch without the check
        return True
