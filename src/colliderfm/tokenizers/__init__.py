"""Particle tokenizers (VQ-VAE) that turn each particle of a jet into a discrete code.

Importing this package registers every tokenizer in :data:`TOKENIZERS` (and its checkpoint
builder).
"""

from __future__ import annotations

from colliderfm.tokenizers.base import TOKENIZERS, tokenizer_params
from colliderfm.tokenizers.vqvae import VQVAE, VQVAEParams

__all__ = ["TOKENIZERS", "VQVAE", "VQVAEParams", "tokenizer_params"]
