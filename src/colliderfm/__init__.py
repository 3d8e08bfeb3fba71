"""colliderfm: foundation models for collider physics.

Pretrain one set-transformer backbone on unlabelled jets or events, then fine-tune it on a small
labelled task. Everything the CLI does is one call into this library.
"""

from __future__ import annotations

import os

# OpenMP's default busy-waiting makes torch 5-10x slower on shared or small CPUs (measured on
# 2 cores: a training step went from ~2 s to 10-21 s). Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from typing import Any

from colliderfm.version import __version__

__all__ = ["__version__", "load"]


def load(path: str, device: str = "cpu") -> Any:
    """Rebuild a model from a checkpoint directory alone, or from a shipped one.

    Args:
        path: checkpoint directory holding ``model.safetensors`` and ``config.yaml``, or
            ``zoo:NAME``: a pretrained checkpoint shipped with the package (checksums are
            verified first; ``colliderfm models --pretrained`` lists them).
        device: where the model's weights go (``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``,
            or ``"auto"``: CUDA when available). Checkpoints hold CPU copies, so one written
            on a GPU loads on a CPU-only machine and the other way round.

    Returns:
        The model (backbone with its head) in eval mode, weights loaded.
    """
    from colliderfm.checkpoints import load_model
    from colliderfm.zoo import checkpoint_path

    return load_model(checkpoint_path(path), device=device)
