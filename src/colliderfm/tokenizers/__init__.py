"""Particle tokenizers (VQ-VAE) that turn each particle of a jet into a discrete code."""

from __future__ import annotations

from colliderfm.tokenizers.vqvae import VQVAE, VQVAEParams

__all__ = ["VQVAE", "VQVAEParams"]
