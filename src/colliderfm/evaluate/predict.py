"""Run a classifier over any readable jet input and collect labels and class probabilities."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn

from colliderfm.data.schema import ConstituentChunk
from colliderfm.data.stream import evaluation_stream
from colliderfm.runtime import module_device


@torch.no_grad()
def predict(
    module: nn.Module,
    source: str | Path | ConstituentChunk,
    batch_size: int = 512,
    max_particles: int = 128,
    feature_set: str = "part",
    max_jets: int | None = None,
    label_map: np.ndarray | None = None,
    dropped: Counter[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax outputs of a classifier on a data source, in file order.

    The model runs where its weights are (each batch is copied there); the outputs come back
    to the CPU as NumPy arrays.

    Args:
        module: classifier with ``forward(x, mask, vectors) -> logits``.
        source: shard directory, ``.parquet``, JetClass ROOT, Top Tagging HDF5, or a chunk.
        batch_size: jets per forward pass.
        max_particles: particle slots per jet.
        feature_set: feature set the model was trained with.
        max_jets: stop after this many jets (None: all).
        label_map: ``[n_source_classes]`` mapping source labels to model labels (-1 = drop);
            source labels that are -1 or outside the map are dropped too.
        dropped: counter updated in place with the source labels of the dropped jets.

    Returns:
        (labels ``[N]``, probabilities ``[N, C]``).
    """
    was_training = module.training
    module.eval()
    labels, probs = [], []
    n = 0
    device = module_device(module)
    stream = evaluation_stream(source, batch_size, max_particles, feature_set)
    for cpu_batch in stream:
        y = cpu_batch.labels.numpy()
        batch = cpu_batch.to(device, non_blocking=True)
        logits = module(batch.features, batch.mask, batch.vectors)  # [B, C]
        p = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        if label_map is not None:
            raw, top = y, len(label_map) - 1
            mapped = label_map[np.clip(y, 0, top)] if top >= 0 else np.full_like(y, -1)
            y = np.where((y >= 0) & (y <= top), mapped, -1)
            keep = y >= 0
            if dropped is not None and not keep.all():
                values, n_each = np.unique(raw[~keep], return_counts=True)
                dropped.update(dict(zip(values.tolist(), n_each.tolist(), strict=True)))
            y, p = y[keep], p[keep]
        labels.append(y)
        probs.append(p)
        n += len(y)
        if max_jets is not None and n >= max_jets:
            break
    module.train(was_training)
    if not labels:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    lab, pr = np.concatenate(labels), np.concatenate(probs)
    if max_jets is not None:
        lab, pr = lab[:max_jets], pr[:max_jets]
    return lab.astype(np.int64), pr
