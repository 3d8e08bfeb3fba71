"""Linear-probe quality signal: logistic regression on frozen backbone embeddings.

The probe takes a small, class-balanced labelled set (e.g. top vs QCD), embeds it with the
frozen backbone, fits an L2-regularised logistic regression on one half (standardised
features, L-BFGS) and reports the AUC on the other half. A probe set with fewer labelled jets of
the two classes than asked for (``objective.probe_n``) is used whole, with a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from colliderfm.data.readers.dispatch import data_classes
from colliderfm.data.schema import ConstituentChunk
from colliderfm.data.stream import evaluation_stream
from colliderfm.data.subset import read_labels, select_balanced, take_jets
from colliderfm.errors import DataError
from colliderfm.evaluate.metrics import auc
from colliderfm.runtime import module_device

log = logging.getLogger(__name__)


@torch.no_grad()
def embed_source(
    backbone: nn.Module,
    source: str | Path | ConstituentChunk,
    feature_set: str = "part",
    max_particles: int = 128,
    batch_size: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled embeddings of every jet of a source (computed on the backbone's device).

    Args:
        backbone: backbone with ``embed(x, mask, vectors)``.
        source: jets (path or in-memory chunk).
        feature_set: input features.
        max_particles: particle slots.
        batch_size: jets per pass.

    Returns:
        (embeddings ``[N, D]``, labels ``[N]``).
    """
    was = backbone.training
    backbone.eval()
    device = module_device(backbone)
    xs, ys = [], []
    for cpu_b in evaluation_stream(source, batch_size, max_particles, feature_set, quiet=True):
        b = cpu_b.to(device, non_blocking=True)
        xs.append(backbone.embed(b.features, b.mask, b.vectors).float().cpu().numpy())  # [B, D]
        ys.append(cpu_b.labels.numpy())
    backbone.train(was)
    return np.concatenate(xs), np.concatenate(ys)


def logistic_auc(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    l2: float = 1e-3,
    iters: int = 200,
) -> float:
    """Fit a logistic regression and return its test AUC.

    Args:
        x_train: ``[N, D]`` features.
        y_train: ``[N]`` 0/1 labels.
        x_test: ``[M, D]`` features.
        y_test: ``[M]`` 0/1 labels.
        l2: L2 penalty on the weights.
        iters: L-BFGS iterations.

    Returns:
        Test AUC.
    """
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    xt = torch.from_numpy((x_train - mu) / sd).double()
    yt = torch.from_numpy(y_train.astype(np.float64))
    w = torch.zeros(xt.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=iters, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logits = xt @ w + b
        loss = nn.functional.binary_cross_entropy_with_logits(logits, yt) + l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    scores = (torch.from_numpy((x_test - mu) / sd).double() @ w + b).detach().numpy()
    return auc(y_test, scores)


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
    """

    def __init__(
        self,
        data: str | Path,
        n: int = 4000,
        feature_set: str = "part",
        max_particles: int = 128,
        signal: str = "Tbqq",
        seed: int = 0,
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

    def __call__(self, backbone: nn.Module) -> float:
        """Probe AUC of a backbone.

        Args:
            backbone: backbone to probe (left unchanged).

        Returns:
            AUC on the held-out half.
        """
        xa, ya = embed_source(backbone, self.fit_set, self.feature_set, self.max_particles)
        xb, yb = embed_source(backbone, self.test_set, self.feature_set, self.max_particles)
        return logistic_auc(xa, ya, xb, yb)
