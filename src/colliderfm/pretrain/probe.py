"""Linear-probe quality signal: logistic regression on frozen backbone embeddings.

The probe takes a small, class-balanced labelled set (e.g. top vs QCD), embeds it with the
frozen backbone, fits an L2-regularised logistic regression on one half (standardised
features, L-BFGS, ``l2 = 1e-3``, at most 200 iterations: :mod:`colliderfm.evaluate.probe`, the
fit ``finetune.mode: linear`` uses too) and reports the AUC on the other half. A probe set with
fewer labelled jets of the two classes than asked for (``objective.probe_n``) is used whole,
with a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from torch import nn

from colliderfm.data.readers.dispatch import data_classes
from colliderfm.data.subset import read_labels, select_balanced, take_jets
from colliderfm.errors import DataError
from colliderfm.evaluate.probe import embed_source, logistic_auc

__all__ = ["LinearProbe", "embed_source", "logistic_auc"]

log = logging.getLogger(__name__)


class LinearProbe:
    """A fixed labelled set and the logistic-regression probe on a backbone's embeddings.

    Args:
        data: labelled jets (any readable input) containing a background (class 0) and the
            signal class.
        n: jets used in total (half to fit, half to score), class-balanced and seeded; when
            ``data`` holds fewer labelled jets of the two classes, all of them (with a warning).
        feature_set: input features of the backbone.
        max_particles: particle slots.
        signal: signal class name (``Tbqq`` by default; class 1 when absent).
        seed: subset seed.
        pooling: ``"mean"`` probes the masked token mean (for objectives that do not train the
            backbone's pooling, e.g. MPM); None: the backbone's own pooling.
    """

    def __init__(
        self,
        data: str | Path,
        n: int = 4000,
        feature_set: str = "part",
        max_particles: int = 128,
        signal: str = "Tbqq",
        seed: int = 0,
        pooling: str | None = None,
    ) -> None:
        classes = data_classes(data)
        sig = classes.index(signal) if signal in classes else 1
        labels = read_labels(data)
        two = np.where((labels == 0) | (labels == sig), labels, -1)  # other classes: not drawn
        names = [classes[i] if i < len(classes) else f"class {i}" for i in (0, sig)]
        counts = [int((two == 0).sum()), int((two == sig).sum())]
        if min(counts) < 2:
            raise DataError(
                data,
                f"the linear probe needs labelled jets of {names[0]} and {names[1]}; this input "
                f"holds {counts[0]} and {counts[1]}",
            )
        if sum(counts) < n:
            log.warning(
                "linear probe: %s holds %d labelled jets of %s and %s, fewer than the %d asked "
                "for (objective.probe_n); probing on all %d",
                data,
                sum(counts),
                names[0],
                names[1],
                n,
                sum(counts),
            )
            n = sum(counts)
        chunk = take_jets(data, select_balanced(two, n, seed))
        chunk.label = (chunk.label == sig).astype(np.int64)
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(chunk))
        half = len(chunk) // 2
        self.fit_set, self.test_set = chunk.take(perm[:half]), chunk.take(perm[half:])
        self.feature_set, self.max_particles = feature_set, max_particles
        self.pooling = pooling

    def __call__(self, backbone: nn.Module) -> float:
        """Probe AUC of a backbone.

        Args:
            backbone: backbone to probe (left unchanged).

        Returns:
            AUC on the held-out half.
        """
        kw = {"pooling": self.pooling}
        xa, ya = embed_source(backbone, self.fit_set, self.feature_set, self.max_particles, **kw)
        xb, yb = embed_source(backbone, self.test_set, self.feature_set, self.max_particles, **kw)
        return logistic_auc(xa, ya, xb, yb)
