"""Heads on top of a backbone, and the :class:`Classifier` wrapper used for fine-tuning.

Heads only see what the backbone gives (pooled ``[B, D]`` or tokens ``[..., D]``), so they can be
swapped or reset without touching the backbone.
"""

from __future__ import annotations

import torch
from torch import nn


class ClassifierHead(nn.Module):
    """Linear layer (``hidden=None``) or one-hidden-layer GELU MLP on the pooled vector."""

    def __init__(
        self, dim: int, n_classes: int, hidden: int | None = None, dropout: float = 0.0
    ) -> None:
        """Build the head.

        Args:
            dim: input width ``D``.
            n_classes: number of logits.
            hidden: hidden width, or None for a linear head.
            dropout: dropout before the last linear layer.
        """
        super().__init__()
        layers: list[nn.Module] = []
        width = dim
        if hidden:
            layers += [nn.Linear(dim, hidden), nn.GELU()]
            width = hidden
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)
        self.n_classes = n_classes

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits.

        Args:
            z: ``[B, D]`` pooled vectors.

        Returns:
            ``[B, n_classes]`` logits.
        """
        return self.net(z)  # [B, C]


class ProjectorHead(nn.Module):
    """SimCLR-style projector ``D -> hidden -> LayerNorm, GELU -> out_dim`` (contrastive)."""

    def __init__(self, dim: int, out_dim: int, hidden: int) -> None:
        """Build the projector.

        Args:
            dim: input width ``D``.
            out_dim: projection width.
            hidden: hidden width.
        """
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.LayerNorm(hidden),
            nn.GELU(),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Project.

        Args:
            z: ``[B, D]`` pooled vectors.

        Returns:
            ``[B, out_dim]`` projections (not normalised).
        """
        return self.net(z)  # [B, out_dim]


class TokenHead(nn.Module):
    """Per-particle predictions (e.g. masked-particle targets): ``D -> D -> GELU -> n_out``."""

    def __init__(self, dim: int, n_out: int) -> None:
        """Build the head.

        Args:
            dim: token width ``D``.
            n_out: outputs per particle.
        """
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, n_out))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Predict per particle.

        Args:
            tokens: ``[..., D]`` tokens (e.g. ``[B, P, D]`` or flat ``[N, D]``).

        Returns:
            ``[..., n_out]``.
        """
        return self.net(tokens)  # [..., n_out]


class ObjectIdHead(nn.Module):
    """Object-type logits per event object (masked object-id pretraining).

    ``D -> hidden -> GELU -> n_types`` on each token; logit ``k`` is
    :class:`~colliderfm.data.schema.ObjectType` ``k + 1`` (electron, muon, b-jet, jet, MET).
    """

    def __init__(self, dim: int, n_types: int = 5, hidden: int | None = None) -> None:
        """Build the head.

        Args:
            dim: token width ``D``.
            n_types: number of object types (logits).
            hidden: hidden width (default ``D``).
        """
        super().__init__()
        width = hidden or dim
        self.n_types = n_types
        self.net = nn.Sequential(nn.Linear(dim, width), nn.GELU(), nn.Linear(width, n_types))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Type logits.

        Args:
            tokens: ``[..., D]`` object tokens (e.g. ``[B, N, D]`` or the masked ones ``[M, D]``).

        Returns:
            ``[..., n_types]`` logits.
        """
        return self.net(tokens)  # [..., n_types]


class Classifier(nn.Module):
    """Backbone + :class:`ClassifierHead`; ``backbone`` and ``head`` are separate attributes so
    fine-tuning can freeze one or give them different learning rates."""

    def __init__(
        self,
        backbone: nn.Module,
        n_classes: int,
        head_hidden: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        """Wrap a backbone.

        Args:
            backbone: module with ``embed(x, mask, vectors) -> [B, D]`` and attribute ``dim``.
            n_classes: number of classes.
            head_hidden: hidden width of the head, or None for a linear head.
            dropout: head dropout.
        """
        super().__init__()
        self.backbone = backbone
        self.head_hidden = head_hidden
        self.head_dropout = dropout
        self.head = ClassifierHead(backbone.dim, n_classes, head_hidden, dropout)

    @property
    def dim(self) -> int:
        """Width of the pooled representation."""
        return int(self.backbone.dim)

    @property
    def n_classes(self) -> int:
        """Number of logits."""
        return self.head.n_classes

    def embed(
        self, x: torch.Tensor, mask: torch.Tensor, vectors: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Pooled backbone representation.

        Args:
            x: ``[B, P, F]`` particle features.
            mask: ``[B, P]`` bool, True for real particles.
            vectors: ``[B, P, 4]`` (px, py, pz, E) in GeV, or None.

        Returns:
            ``[B, D]``.
        """
        return self.backbone.embed(x, mask, vectors)  # [B, D]

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, vectors: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Class logits.

        Args:
            x: ``[B, P, F]`` particle features.
            mask: ``[B, P]`` bool, True for real particles.
            vectors: ``[B, P, 4]`` (px, py, pz, E) in GeV, or None.

        Returns:
            ``[B, n_classes]`` logits.
        """
        return self.head(self.backbone.embed(x, mask, vectors))  # [B, C]

    def reset_head(self, n_classes: int, hidden: int | None = None) -> None:
        """Replace the head with a freshly initialised one; the backbone is untouched.

        Args:
            n_classes: number of classes of the new head.
            hidden: hidden width (default: keep the current head's).
        """
        if hidden is not None:
            self.head_hidden = hidden
        ref = next(self.backbone.parameters(), None)
        head = ClassifierHead(self.dim, n_classes, self.head_hidden, self.head_dropout)
        if ref is not None:
            head = head.to(device=ref.device, dtype=ref.dtype)
        self.head = head
