"""One-variable baselines: how well a single physics quantity separates the classes, no training.

Studies print these beside the trained arms, so a reader sees what a network adds over the
obvious cut. Jets: the jet mass (of the summed constituents) and the constituent multiplicity.
Events: ``HT`` (the scalar sum of the jets' pT, b-jets included) and ``m_all`` (the invariant
mass of every reconstructed object summed, MET included with pz = 0). Each variable is used as
the score as it is, larger = class 1 (top over QCD, h2hdm over ttbar: the heavier signal has the
larger mass and HT), a direction fixed by the physics and not fitted on any data, so the test
set stays untouched by any choice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from colliderfm.data.schema import Batch, ConstituentChunk, ObjectType
from colliderfm.data.stream import evaluation_stream
from colliderfm.evaluate.metrics import binary_metrics

#: the baselines per data kind, in report order, with a one-line description each
BASELINES: dict[str, dict[str, str]] = {
    "jets": {
        "m_jet": "jet mass of the summed constituents",
        "n_particles": "constituent multiplicity",
    },
    "events": {
        "HT": "scalar sum of jet pT (b-jets included)",
        "m_all": "invariant mass of all objects (MET with pz = 0)",
    },
}

_JET_TYPES = (int(ObjectType.JET), int(ObjectType.BJET))


def _mass(p4: torch.Tensor) -> torch.Tensor:
    """Invariant mass of ``[..., 4]`` (px, py, pz, E) vectors (0 where m^2 < 0)."""
    m2 = p4[..., 3] ** 2 - (p4[..., :3] ** 2).sum(-1)
    return m2.clamp(min=0.0).sqrt()


def baseline_scores(batch: Batch, kind: str) -> dict[str, torch.Tensor]:
    """The baseline variables of one batch.

    Args:
        batch: a batch with ``vectors`` (and, for events, ``type_id``).
        kind: ``"jets"`` or ``"events"``.

    Returns:
        ``{name: [B] float64}`` in the order of :data:`BASELINES`.
    """
    if batch.vectors is None:
        raise ValueError("one-variable baselines need the batch's four-vectors")
    mask = batch.mask.bool()  # [B, P]
    vec = torch.where(mask.unsqueeze(-1), batch.vectors.double(), 0.0)  # [B, P, 4]
    if kind == "jets":
        return {"m_jet": _mass(vec.sum(1)), "n_particles": mask.sum(1).double()}
    if kind != "events":
        raise ValueError(f"kind must be 'jets' or 'events', got {kind!r}")
    if batch.type_id is None:
        raise ValueError("event baselines need the objects' types")
    is_jet = mask & torch.isin(batch.type_id, torch.tensor(_JET_TYPES))  # [B, P]
    pt = vec[..., :2].norm(dim=-1)  # [B, P]
    return {"HT": (pt * is_jet).sum(1), "m_all": _mass(vec.sum(1))}


def simple_baselines(
    source: str | Path | ConstituentChunk,
    kind: str,
    max_particles: int,
    feature_set: str,
    max_examples: int | None = None,
    batch_size: int = 2048,
) -> dict[str, dict[str, Any]]:
    """AUC, rejections and SIC of each one-variable baseline on a labelled source.

    Args:
        source: labelled jets or events (e.g. a study's test set).
        kind: ``"jets"`` or ``"events"``.
        max_particles: constituent (object) slots, as the models see them.
        feature_set: the feature set the stream builds (only its kinematics are used).
        max_examples: read at most this many (the first ones, as a study's ``test_max``).
        batch_size: examples per batch while reading.

    Returns:
        ``{name: {"description", "auc", "rejection", "sic", "n"}}`` for binary sources
        (rejection and SIC keyed by signal efficiency, as :func:`binary_metrics`); ``{}`` when
        the source is not binary (more than two classes).
    """
    names = BASELINES.get(kind)
    if names is None:
        raise ValueError(f"kind must be 'jets' or 'events', got {kind!r}")
    scores: dict[str, list[np.ndarray]] = {n: [] for n in names}
    labels: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    seen = 0
    for batch in evaluation_stream(source, batch_size, max_particles, feature_set, quiet=True):
        take = (
            len(batch.labels)
            if max_examples is None
            else min(len(batch.labels), max_examples - seen)
        )
        for name, s in baseline_scores(batch, kind).items():
            scores[name].append(s[:take].numpy())
        labels.append(batch.labels[:take].numpy())
        weights.append(batch.weights[:take].double().numpy())
        seen += take
        if max_examples is not None and seen >= max_examples:
            break
    y = np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)
    if y.size == 0 or not set(np.unique(y).tolist()) <= {0, 1}:
        return {}
    w = np.concatenate(weights)
    out: dict[str, dict[str, Any]] = {}
    for name, s in scores.items():
        m = binary_metrics(y, np.concatenate(s), w)
        m.pop("accuracy")  # a cut at 0.5 means nothing for a raw variable
        out[name] = {"description": names[name], **m}
    return out
