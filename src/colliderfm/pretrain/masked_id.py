"""Masked object identification: hide the type of some objects of an event, predict it.

For every event (after the event augmentations of :mod:`colliderfm.physics.augment_events`),
``mask_rate`` of its real objects (rounded, at least one; never padding) are chosen at random.
Their type one-hot (:data:`~colliderfm.data.features.EVENT_TYPE_SLICE`) is zeroed and their
``masked`` flag (:data:`~colliderfm.data.features.EVENT_MASKED_COLUMN`) set to 1; their
kinematics stay visible. An :class:`~colliderfm.models.heads.ObjectIdHead` on the backbone tokens
of the hidden objects predicts the type (electron, muon, b-jet, light jet, MET) with a
cross-entropy loss, so the backbone has to learn which kinematic configurations -- the object's
own (mass, pT, direction) and its context in the event (W and top candidates, the lepton-MET
pair) -- go with which object type.

The type is hidden from everything the backbone sees: the features, and the
:class:`~colliderfm.models.objects.ObjectTransformer` pair bias (computed from four-vectors only).
Some types stay easy from kinematics alone (MET is transverse, ``pz = 0``); the per-type
accuracies show which.

Optional masked kinematics (``kinematics_rate > 0``): a further share of the objects (chosen
among those whose type stays visible) have their kinematic features (log pT, eta, sin/cos phi,
log E) and four-vector zeroed -- the type stays, the ``masked`` flag is set -- and a second head
regresses the hidden (augmented, standardised) kinematics with a squared error, weighted by
``kinematics_weight``. Predicting a hidden object from the rest of the event asks for momentum
balance (MET against the visible objects) and the W and top mass constraints. With
``kinematics_from: pooled`` the second head sees only the pooled event embedding and the hidden
object's type (a bottleneck: the event summary itself has to carry the kinematics), instead of
the hidden object's own token (``token``, the default).

Logged: ``acc`` (all hidden objects) and ``acc_electron``, ``acc_muon``, ``acc_bjet``, ``acc_jet``,
``acc_met`` for the types present among the hidden objects of the batch; with masked
kinematics also ``kin_mse`` and ``kin_mse_<feature>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from colliderfm.data.features import EVENT_FEATURES, EVENT_MASKED_COLUMN, EVENT_TYPE_SLICE
from colliderfm.data.schema import Batch, ObjectType
from colliderfm.errors import ConfigError
from colliderfm.models.heads import ObjectIdHead
from colliderfm.pretrain.base import Objective, register_objective
from colliderfm.pretrain.mpm import choose_masked

#: Columns of the per-object kinematics inside :data:`EVENT_FEATURES` (log pT, eta, sin phi,
#: cos phi, log E): the regression targets of ``kinematics_rate``.
EVENT_KINEMATIC_SLICE = slice(0, 5)
KINEMATIC_NAMES: tuple[str, ...] = EVENT_FEATURES[EVENT_KINEMATIC_SLICE]

#: Log names of the object types, logit/target index ``k`` = ObjectType ``k + 1``.
TYPE_NAMES: tuple[str, ...] = tuple(t.name.lower() for t in ObjectType)
N_TYPES = len(TYPE_NAMES)


def _default_augment() -> dict[str, Any]:
    from colliderfm.physics.augment_events import EVENT_DEFAULT

    return {k: dict(v) for k, v in EVENT_DEFAULT.items()}


@dataclass
class MaskedIdParams:
    """Settings of masked object identification (``objective.params``)."""

    mask_rate: float = field(default=0.3, metadata={"range": (0.0, 1.0)})
    augment: dict[str, Any] = field(default_factory=_default_augment)
    head_hidden: int | None = field(default=None, metadata={"range": (1, None)})
    kinematics_rate: float = field(default=0.0, metadata={"range": (0.0, 1.0)})
    kinematics_weight: float = field(default=1.0, metadata={"range": (0.0, None)})
    kinematics_from: str = "token"


def hide_types(features: torch.Tensor, hide: torch.Tensor) -> torch.Tensor:
    """Hide the type of the chosen objects: zero their one-hot, set their ``masked`` flag.

    Args:
        features: ``[B, N, 11]`` event features (:data:`EVENT_FEATURES`).
        hide: ``[B, N]`` bool, objects whose type is hidden.

    Returns:
        ``[B, N, 11]`` new features (the input is not modified).
    """
    x = features.clone()  # [B, N, F]
    keep = (~hide).unsqueeze(-1).to(x.dtype)  # [B, N, 1]
    x[..., EVENT_TYPE_SLICE] = x[..., EVENT_TYPE_SLICE] * keep
    x[..., EVENT_MASKED_COLUMN] = hide.to(x.dtype)
    return x


def hide_kinematics(
    features: torch.Tensor, vectors: torch.Tensor, hide: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide the kinematics of the chosen objects, keep their type; set their ``masked`` flag.

    Args:
        features: ``[B, N, 11]`` event features (:data:`EVENT_FEATURES`).
        vectors: ``[B, N, 4]`` four-vectors (they feed the pair bias).
        hide: ``[B, N]`` bool, objects whose kinematics are hidden.

    Returns:
        ``([B, N, 11], [B, N, 4])`` new features and four-vectors (inputs not modified): the
        kinematic columns (:data:`EVENT_KINEMATIC_SLICE`) and the four-vector are zero.
    """
    keep = (~hide).unsqueeze(-1)  # [B, N, 1]
    x = features.clone()  # [B, N, F]
    x[..., EVENT_KINEMATIC_SLICE] = x[..., EVENT_KINEMATIC_SLICE] * keep.to(x.dtype)
    x[..., EVENT_MASKED_COLUMN] = torch.maximum(x[..., EVENT_MASKED_COLUMN], hide.to(x.dtype))
    return x, vectors * keep.to(vectors.dtype)


def type_accuracy(logits: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Overall and per-type accuracy of object-type predictions.

    Args:
        logits: ``[M, 5]`` type logits.
        target: ``[M]`` int64 type index (ObjectType - 1).

    Returns:
        ``{"acc": ..., "acc_<type>": ...}`` for the types present in ``target``.
    """
    if target.numel() == 0:
        return {}
    correct = (logits.argmax(-1) == target).float()  # [M]
    counts = torch.bincount(target, minlength=N_TYPES)  # [5]
    hits = torch.bincount(target, weights=correct, minlength=N_TYPES)  # [5]
    logs = {"acc": correct.mean().item()}
    for name, n, h in zip(TYPE_NAMES, counts.tolist(), hits.tolist(), strict=True):
        if n:
            logs[f"acc_{name}"] = h / n
    return logs


@register_objective("masked_id", MaskedIdParams)
class MaskedObjectId(Objective):
    """Masked object-id pretraining for event-level backbones.

    Args:
        params: validated :class:`MaskedIdParams`.
        backbone_dim: backbone token width ``D``.
        in_dim: per-object input features (must be the 11 event features).
    """

    @classmethod
    def trains_pooling(cls, params: Any) -> bool:
        """Only with masked kinematics regressed from the pooled embedding (``kinematics_rate >
        0``, ``kinematics_from: pooled``); see :meth:`Objective.trains_pooling`."""
        return params.kinematics_rate > 0 and params.kinematics_from == "pooled"

    def __init__(self, params: MaskedIdParams, backbone_dim: int, in_dim: int) -> None:
        super().__init__(params, backbone_dim, in_dim)
        if in_dim != len(EVENT_FEATURES):
            raise ConfigError(
                f"objective masked_id needs the event features ({len(EVENT_FEATURES)} per "
                f"object, data.features=event), got {in_dim}"
            )
        if params.mask_rate <= 0:
            raise ConfigError("config key 'objective.params.mask_rate' must be > 0")
        from colliderfm.physics.augment_events import EventAugmenter

        self.augmenter = EventAugmenter(params.augment)
        self.head = ObjectIdHead(backbone_dim, N_TYPES, params.head_hidden)
        if params.kinematics_from not in ("token", "pooled"):
            raise ConfigError(
                f"config key 'objective.params.kinematics_from' = {params.kinematics_from!r} "
                "is not one of token, pooled"
            )
        self.kin_head: nn.Module | None = None
        if params.kinematics_rate > 0:
            width = params.head_hidden or backbone_dim
            n_in = backbone_dim + (N_TYPES if params.kinematics_from == "pooled" else 0)
            self.kin_head = nn.Sequential(
                nn.Linear(n_in, width), nn.GELU(), nn.Linear(width, len(KINEMATIC_NAMES))
            )

    def loss(self, backbone: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Cross-entropy of the hidden objects' types (plus the masked-kinematics error).

        Args:
            backbone: the backbone (``forward`` -> tokens ``[B, N, D]``; ``forward_both`` ->
                tokens and pooled ``[B, D]`` for ``kinematics_from: pooled``).
            batch: an event batch (``type_id`` = object types; labels ignored).

        Returns:
            (loss, logs with overall and per-type accuracy, and ``kin_mse*`` with masked
            kinematics).
        """
        if batch.type_id is None:
            raise ValueError("masked_id needs the object types in batch.type_id")
        p = self.params
        with torch.no_grad():
            view = self.augmenter(batch)
            known = view.mask & (view.type_id >= 1) & (view.type_id <= N_TYPES)  # [B, N]
            hide = choose_masked(known, p.mask_rate)  # [B, N]
            x = hide_types(view.features, hide)  # [B, N, F]
            vectors = view.vectors
            target = view.type_id[hide] - 1  # [M]
            regress = torch.zeros_like(hide)  # [B, N]
            if self.kin_head is not None:
                regress = choose_masked(known & ~hide, p.kinematics_rate)  # [B, N]
                x, vectors = hide_kinematics(x, vectors, regress)
                kin_target = view.features[regress][:, EVENT_KINEMATIC_SLICE].float()  # [K, 5]
        pooled = None
        if p.kinematics_from == "pooled" and self.kin_head is not None:
            tokens, pooled = backbone.forward_both(x, view.mask, vectors)  # [B, N, D], [B, D]
        else:
            tokens = backbone(x, view.mask, vectors)  # [B, N, D]
        logits = self.head(tokens[hide]).float()  # [M, 5]
        if target.numel() == 0:  # only empty events: nothing to predict
            return logits.sum() * 0.0, {}
        loss = F.cross_entropy(logits, target)
        logs = type_accuracy(logits.detach(), target)
        if self.kin_head is not None and bool(regress.any()):
            if pooled is None:
                source = tokens[regress]  # [K, D]
            else:  # through the event embedding: pooled vector + the hidden object's type
                row = regress.nonzero()[:, 0]  # [K] event of each hidden object
                kind = F.one_hot(view.type_id[regress] - 1, N_TYPES).to(pooled.dtype)  # [K, 5]
                source = torch.cat((pooled[row], kind), -1)  # [K, D + 5]
            pred = self.kin_head(source).float()  # [K, 5]
            err = (pred - kin_target).pow(2)  # [K, 5]
            kin = err.mean()
            loss = loss + p.kinematics_weight * kin
            logs["kin_mse"] = kin.item()
            for name, e in zip(KINEMATIC_NAMES, err.mean(0).tolist(), strict=True):
                logs[f"kin_mse_{name}"] = e
        return loss, logs
