"""colliderfm: foundation models for collider physics.

Pretrain one set-transformer backbone on unlabelled jets or events, then fine-tune it on a small
labelled task. Everything the CLI does is one call into this library.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import Any

__all__ = ["__version__", "load"]


def load(path: str) -> Any:
    """Rebuild a model from a checkpoint directory alone.

    Args:
        path: checkpoint directory holding ``model.safetensors`` and ``config.yaml``.

    Returns:
        The model (backbone with its head) in eval mode, weights loaded.
    """
    from colliderfm.train.checkpoint import load_model

    return load_model(path)
