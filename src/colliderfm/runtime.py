"""Process-level facts every layer may ask for: the distributed rank and world size, seeding."""

from __future__ import annotations

import random

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
