"""Contrastive pretraining (JetCLR-style): two physics-augmented views per jet or event.

Each jet is augmented twice (:mod:`colliderfm.physics.augment`), both views go through the
backbone in one pass, a projection head maps the pooled embeddings to ``proj_dim`` and the loss
pulls the two views of a jet together:

* ``ntxent`` (SimCLR/JetCLR): cross-entropy over cosine similarities / temperature, each view's
  positive is the other view of the same jet, the 2B-2 other views are negatives (under
  ``torchrun`` the views of every rank: the negatives come from the global batch);
* ``vicreg``: invariance (MSE) + variance (hinge on per-dimension std) + covariance penalties.

Events (``data.features: event``, or ``views: event``) are augmented with the event-level
Lorentz augmentations of :mod:`colliderfm.physics.augment_events` (rotation in phi, longitudinal
and small transverse boosts, eta reflection, resolution smearing), so the backbone learns
embeddings that are invariant under them -- invariant masses and transverse momenta survive
every augmentation, rapidities and azimuths do not. ``augment: null`` (the default) takes the
default augmentations of the kind of view.

Logged: the loss, positive-pair retrieval accuracy, and the alignment and uniformity of the
normalised projections (Wang & Isola 2020): ``align = E||z1 - z2||^2`` (lower is better),
``uniform = log E exp(-2 ||z_i - z_j||^2)`` (lower is more uniform).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from colliderfm.data.schema import Batch
from colliderfm.errors import ConfigError
from colliderfm.pretrain.base import Objective, register_objective
from colliderfm.runtime import rank_world


def _default_augment(kind: str = "jet") -> dict[str, Any]:
    if kind == "event":
        from colliderfm.physics.augment_events import EVENT_DEFAULT as default
    else:
        from colliderfm.physics.augment import JETCLR_DEFAULT as default
    return {k: dict(v) for k, v in default.items()}


@dataclass
class ContrastiveParams:
    """Settings of the contrastive recipe."""

    loss: str = "ntxent"
    temperature: float = 0.1
    proj_dim: int = field(default=128, metadata={"range": (1, None)})
    proj_hidden: int = field(default=256, metadata={"range": (1, None)})
    views: str = "auto"
    augment: dict[str, Any] | None = None
    vicreg_sim: float = field(default=25.0, metadata={"range": (0.0, None)})
    vicreg_var: float = field(default=25.0, metadata={"range": (0.0, None)})
    vicreg_cov: float = field(default=1.0, metadata={"range": (0.0, None)})


def pad_to(b: Batch, p: int) -> Batch:
    """Pad a batch's particle axis to ``p`` with masked zeros.

    Args:
        b: batch with ``P <= p``.
        p: target particle count.

    Returns:
        The padded batch.
    """
    extra = p - b.mask.shape[1]
    if extra == 0:
        return b

    def pad(t: torch.Tensor | None) -> torch.Tensor | None:
        if t is None:
            return None
        shape = (t.shape[0], extra, *t.shape[2:])
        return torch.cat((t, t.new_zeros(shape)), dim=1)

    return Batch(
        features=pad(b.features),
        mask=pad(b.mask),
        labels=b.labels,  # type: ignore[arg-type]
        weights=b.weights,
        vectors=pad(b.vectors),
        charge=pad(b.charge),
        type_id=pad(b.type_id),
    )


def concat_batches(a: Batch, b: Batch) -> Batch:
    """Stack two batches along the batch axis (padding the particle axis to match).

    Args:
        a: first batch.
        b: second batch.

    Returns:
        ``[Ba + Bb, max(Pa, Pb), ...]`` batch.
    """
    p = max(a.mask.shape[1], b.mask.shape[1])
    a, b = pad_to(a, p), pad_to(b, p)

    def cat(x: torch.Tensor | None, y: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None or y is None else torch.cat((x, y), 0)

    return Batch(
        features=cat(a.features, b.features),
        mask=cat(a.mask, b.mask),  # type: ignore[arg-type]
        labels=cat(a.labels, b.labels),
        weights=cat(a.weights, b.weights),  # type: ignore[arg-type]
        vectors=cat(a.vectors, b.vectors),
        charge=cat(a.charge, b.charge),
        type_id=cat(a.type_id, b.type_id),
    )


def nt_xent(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float, gather: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """NT-Xent loss of two views.

    With ``gather`` under torch.distributed, the negatives are the views of the global batch:
    every rank's projections are gathered with their gradient
    (:func:`~colliderfm.train.distributed.gather_with_grad`) and each rank scores its own views
    against all ``2N`` of them. The returned loss is this rank's share, scaled so that its mean
    over ranks (what DistributedDataParallel's gradient averaging optimises) is the loss of one
    process on the concatenated batch; with equal batches on every rank the scale is 1 and the
    share is the mean over this rank's rows.

    Args:
        z1: ``[B, K]`` projections of view 1 (this rank's).
        z2: ``[B, K]`` projections of view 2.
        temperature: softmax temperature.
        gather: take the negatives from every rank (no-op for a single process).

    Returns:
        (loss, retrieval accuracy of this rank's views: the positive among all 2N-1 candidates).
    """
    from colliderfm.train.distributed import gather_with_grad

    n = z1.shape[0]
    q = F.normalize(torch.cat((z1, z2), 0), dim=-1)  # [2B, K]
    if not gather or rank_world()[1] == 1:
        sim = q @ q.T / temperature  # [2B, 2B]
        sim.fill_diagonal_(float("-inf"))
        idx = torch.arange(2 * n, device=q.device)  # [2B]
        target = torch.cat((idx[n:], idx[:n]))  # [2B]: view 1's positive is in view 2 and back
        loss = F.cross_entropy(sim, target)
        acc = (sim.argmax(-1) == target).float().mean()
        return loss, acc
    world = rank_world()[1]
    k1, off, sizes = gather_with_grad(q[:n])  # [N, K]: view 1 of the global batch
    k2, _, _ = gather_with_grad(q[n:])  # [N, K]
    big_n = sum(sizes)
    keys = torch.cat((k1, k2), 0)  # [2N, K]
    sim = q @ keys.T / temperature  # [2B, 2N]
    own = torch.arange(n, device=q.device) + off  # [B]: this rank's rows in k1 (and k2)
    self_col = torch.cat((own, own + big_n))  # [2B]
    sim[torch.arange(2 * n, device=q.device), self_col] = float("-inf")
    target = torch.cat((own + big_n, own))  # [2B]
    loss = F.cross_entropy(sim, target) * (world * n / big_n)
    acc = (sim.argmax(-1) == target).float().mean()
    return loss, acc


def vicreg(
    z1: torch.Tensor, z2: torch.Tensor, w_sim: float, w_var: float, w_cov: float
) -> torch.Tensor:
    """VICReg loss (Bardes et al. 2022).

    Args:
        z1: ``[B, K]`` projections of view 1.
        z2: ``[B, K]`` projections of view 2.
        w_sim: invariance weight.
        w_var: variance weight.
        w_cov: covariance weight.

    Returns:
        Scalar loss.
    """
    sim = F.mse_loss(z1, z2)
    loss = w_sim * sim
    for z in (z1, z2):
        z = z - z.mean(0)  # [B, K]
        std = torch.sqrt(z.var(0) + 1e-4)  # [K]
        loss = loss + w_var * F.relu(1 - std).mean() / 2
        cov = (z.T @ z) / max(z.shape[0] - 1, 1)  # [K, K]
        off = cov - torch.diag(torch.diag(cov))
        loss = loss + w_cov * (off**2).sum() / z.shape[1] / 2
    return loss


def alignment_uniformity(z1: torch.Tensor, z2: torch.Tensor) -> tuple[float, float]:
    """Alignment and uniformity of normalised projections.

    Args:
        z1: ``[B, K]`` view-1 projections.
        z2: ``[B, K]`` view-2 projections.

    Returns:
        (alignment, uniformity).
    """
    a, b = F.normalize(z1.detach().float(), dim=-1), F.normalize(z2.detach().float(), dim=-1)
    align = (a - b).pow(2).sum(-1).mean().item()
    uniform = torch.pdist(a).pow(2).mul(-2).exp().mean().log().item() if len(a) > 1 else 0.0
    return align, uniform


@register_objective("contrastive", ContrastiveParams)
class Contrastive(Objective):
    """JetCLR-style contrastive objective with a projection head."""

    def __init__(self, params: ContrastiveParams, backbone_dim: int, in_dim: int) -> None:
        super().__init__(params, backbone_dim, in_dim)
        if params.loss not in ("ntxent", "vicreg"):
            raise ConfigError(
                f"config key 'objective.params.loss' = {params.loss!r} is not one of ntxent, vicreg"
            )
        if params.temperature <= 0:
            raise ConfigError("config key 'objective.params.temperature' must be > 0")
        from colliderfm.data.features import EVENT_FEATURES
        from colliderfm.models.heads import ProjectorHead

        kind = params.views
        if kind == "auto":
            kind = "event" if in_dim == len(EVENT_FEATURES) else "jet"
        if kind not in ("jet", "event"):
            raise ConfigError(
                f"config key 'objective.params.views' = {params.views!r} is not one of "
                "auto, jet, event"
            )
        if kind == "event" and in_dim != len(EVENT_FEATURES):
            raise ConfigError(
                f"objective.params.views=event needs the event features ({len(EVENT_FEATURES)} "
                f"per object, data.features=event), got {in_dim}"
            )
        self.views = kind
        augment = params.augment if params.augment is not None else _default_augment(kind)
        params.views, params.augment = kind, augment  # checkpoints record what ran
        if kind == "event":
            from colliderfm.physics.augment_events import EventAugmenter

            self.augmenter: Any = EventAugmenter(augment)
        else:
            from colliderfm.physics.augment import Augmenter

            self.augmenter = Augmenter(augment)
        self.projector = ProjectorHead(backbone_dim, params.proj_dim, params.proj_hidden)

    def loss(self, backbone: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Contrastive loss of two augmented views of each jet.

        Args:
            backbone: the backbone.
            batch: input batch (labels ignored).

        Returns:
            (loss, logs).
        """
        with torch.no_grad():
            v1 = self.augmenter(batch)
            v2 = self.augmenter(batch)
        both = concat_batches(v1, v2)
        h = backbone.embed(both.features, both.mask, both.vectors)  # [2B, D]
        z = self.projector(h).float()  # [2B, K]
        z1, z2 = z.chunk(2, 0)  # [B, K] each
        p = self.params
        if p.loss == "ntxent":
            loss, acc = nt_xent(z1, z2, p.temperature, gather=True)
            logs = {"pos_acc": acc.item()}
        else:
            loss = vicreg(z1, z2, p.vicreg_sim, p.vicreg_var, p.vicreg_cov)
            logs = {}
        align, uniform = alignment_uniformity(z1, z2)
        logs.update({"align": align, "uniform": uniform})
        return loss, logs
