"""Linear probes: L2-regularised logistic regression on frozen embeddings, fitted with L-BFGS.

Shared by the periodic probe of pretraining (:mod:`colliderfm.pretrain.probe`, one fixed
strength, AUC on a held-out half) and ``finetune.mode: linear`` (:mod:`colliderfm.finetune.probe`,
a grid of strengths chosen on validation AUC, the fit saved as the classifier's linear head).

The fit (:func:`fit_logistic`):

* features are standardised with the mean and standard deviation (``+ 1e-6``) of the training
  embeddings; the weights are fitted on the standardised features and then folded back
  (:attr:`LogisticFit.weight`, :attr:`LogisticFit.bias`), so the result applies to raw
  embeddings: ``W_raw = W / sd``, ``b_raw = b - W_raw @ mu``;
* two classes: binary logistic regression (one logit ``z`` for class 1, sigmoid); more:
  multinomial (softmax over ``C`` logits);
* loss: mean cross-entropy ``+ l2 * ||W||^2`` (the biases are not penalised), in float64, from
  zero weights, with :class:`torch.optim.LBFGS` (strong-Wolfe line search) run until its
  tolerances stop it (gradient max-norm ``tolerance_grad``, loss or step change
  ``tolerance_change``) or ``max_iter`` iterations are spent; :attr:`LogisticFit.converged`
  says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from colliderfm.data.schema import ConstituentChunk
from colliderfm.data.stream import evaluation_stream
from colliderfm.evaluate.metrics import auc
from colliderfm.runtime import module_device


@torch.no_grad()
def embed_source(
    backbone: nn.Module,
    source: str | Path | ConstituentChunk,
    feature_set: str = "part",
    max_particles: int = 128,
    batch_size: int = 512,
    pooling: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled embeddings of every jet of a source (computed on the backbone's device).

    The backbone runs in eval mode (dropout off; its previous mode is restored), in float32,
    one batch of ``batch_size`` at a time, over the source in its stored order.

    Args:
        backbone: backbone with ``embed(x, mask, vectors)``.
        source: jets (path or in-memory chunk).
        feature_set: input features.
        max_particles: particle slots.
        batch_size: jets per pass.
        pooling: ``"mean"`` pools by the masked token mean (``backbone.embed(..., pooling=)``);
            None: the backbone's own pooling.

    Returns:
        (embeddings ``[N, D]`` float32, labels ``[N]``).
    """
    was = backbone.training
    backbone.eval()
    device = module_device(backbone)
    xs, ys = [], []
    kw = {} if pooling is None else {"pooling": pooling}  # backbones without the option too
    for cpu_b in evaluation_stream(source, batch_size, max_particles, feature_set, quiet=True):
        b = cpu_b.to(device, non_blocking=True)
        xs.append(
            backbone.embed(b.features, b.mask, b.vectors, **kw).float().cpu().numpy()
        )  # [B, D]
        ys.append(cpu_b.labels.numpy())
    backbone.train(was)
    if not xs:
        return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return np.concatenate(xs), np.concatenate(ys)


@dataclass
class LogisticFit:
    """A fitted logistic regression, in both the standardised and the raw-embedding form.

    Attributes:
        mean: ``[D]`` training-embedding mean used for standardisation.
        std: ``[D]`` training-embedding standard deviation (``+ 1e-6``).
        w_std: weights on standardised features, ``[D]`` (binary) or ``[C, D]``.
        b_std: bias, ``[1]`` (binary) or ``[C]``.
        n_classes: number of classes ``C`` (2 = binary).
        l2: the L2 strength.
        iters: L-BFGS iterations run.
        func_evals: loss evaluations (line search included).
        converged: stopped by a tolerance, not by ``max_iter`` (or the evaluation limit).
        loss: final training objective (mean cross-entropy + penalty).
        grad_max: largest absolute gradient component at the end.
    """

    mean: np.ndarray
    std: np.ndarray
    w_std: np.ndarray
    b_std: np.ndarray
    n_classes: int
    l2: float
    iters: int
    func_evals: int
    converged: bool
    loss: float
    grad_max: float

    @property
    def weight(self) -> np.ndarray:
        """Weights on raw embeddings, ``[D]`` (binary) or ``[C, D]`` (standardisation folded)."""
        return self.w_std / self.std

    @property
    def bias(self) -> np.ndarray:
        """Bias on raw embeddings, ``[1]`` (binary) or ``[C]``."""
        return self.b_std - self.weight @ self.mean

    def decision(self, x: np.ndarray) -> np.ndarray:
        """Logits computed as fitted, on standardised features (float64).

        Args:
            x: ``[N, D]`` raw embeddings.

        Returns:
            ``[N]`` (binary: the class-1 logit) or ``[N, C]``.
        """
        xs = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        w = self.w_std.T if self.w_std.ndim == 2 else self.w_std
        return xs @ w + self.b_std

    def class_logits(self, x: np.ndarray) -> np.ndarray:
        """``[N, C]`` class logits (binary: ``[0, z]``, whose softmax gives ``sigmoid(z)``).

        Args:
            x: ``[N, D]`` raw embeddings.

        Returns:
            ``[N, C]`` float64.
        """
        z = self.decision(x)
        return np.stack([np.zeros_like(z), z], 1) if z.ndim == 1 else z

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """``[N, C]`` class probabilities (softmax of :meth:`class_logits`).

        Args:
            x: ``[N, D]`` raw embeddings.

        Returns:
            ``[N, C]`` float64.
        """
        z = self.class_logits(x)
        z = z - z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    def head_parameters(self) -> tuple[np.ndarray, np.ndarray]:
        """The weights of a ``Linear(D, C)`` head computing :meth:`class_logits` on raw inputs.

        Returns:
            (weight ``[C, D]``, bias ``[C]``), float64; binary: row 0 is zero, row 1 ``w``.
        """
        w, b = self.weight, self.bias
        if w.ndim == 1:
            return np.stack([np.zeros_like(w), w]), np.array([0.0, float(b[0])])
        return w, b


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int = 2,
    l2: float = 1e-3,
    max_iter: int = 200,
    tolerance_grad: float = 1e-7,
    tolerance_change: float = 1e-9,
    device: torch.device | str | None = None,
) -> LogisticFit:
    """Fit an L2-regularised logistic regression with L-BFGS on standardised features.

    Args:
        x: ``[N, D]`` training embeddings.
        y: ``[N]`` labels in ``0 .. n_classes - 1`` (binary: 0/1).
        n_classes: 2 for binary logistic regression, more for multinomial.
        l2: penalty ``l2 * ||W||^2`` added to the mean cross-entropy.
        max_iter: L-BFGS iteration limit (one ``step`` call, as many iterations as needed).
        tolerance_grad: stop when the gradient's max-norm falls below this.
        tolerance_change: stop when the loss or the step changes less than this.
        device: where to fit (None: the CPU); float64 throughout (MPS: float32, which lacks
            float64).

    Returns:
        The fit.
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    dtype = torch.float32 if dev.type == "mps" else torch.float64
    x64 = np.asarray(x, dtype=np.float64)
    mu, sd = x64.mean(0), x64.std(0) + 1e-6
    xt = torch.from_numpy((x64 - mu) / sd).to(dev, dtype)
    binary = n_classes == 2
    if binary:
        yt = torch.from_numpy(np.asarray(y).astype(np.float64)).to(dev, dtype)
        w = torch.zeros(xt.shape[1], dtype=dtype, device=dev, requires_grad=True)
        b = torch.zeros(1, dtype=dtype, device=dev, requires_grad=True)
    else:
        yt = torch.from_numpy(np.asarray(y).astype(np.int64)).to(dev)
        w = torch.zeros(n_classes, xt.shape[1], dtype=dtype, device=dev, requires_grad=True)
        b = torch.zeros(n_classes, dtype=dtype, device=dev, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b],
        max_iter=max_iter,
        tolerance_grad=tolerance_grad,
        tolerance_change=tolerance_change,
        line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        if binary:
            data = nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt)
        else:
            data = nn.functional.cross_entropy(xt @ w.T + b, yt)
        return data + l2 * (w * w).sum()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
        final = closure()  # the objective and gradient where L-BFGS stopped
    state = opt.state[w]
    iters, evals = int(state.get("n_iter", 0)), int(state.get("func_evals", 0))
    max_eval = opt.param_groups[0]["max_eval"]
    grads = [g.abs().max() for g in (w.grad, b.grad) if g is not None and g.numel()]
    return LogisticFit(
        mean=mu,
        std=sd,
        w_std=w.detach().cpu().double().numpy(),
        b_std=b.detach().cpu().double().numpy(),
        n_classes=n_classes,
        l2=float(l2),
        iters=iters,
        func_evals=evals,
        converged=iters < max_iter and evals < max_eval,
        loss=float(final.detach()),
        grad_max=float(max(grads).item()) if grads else 0.0,
    )


def logistic_auc(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    l2: float = 1e-3,
    iters: int = 200,
) -> float:
    """Fit a binary logistic regression (:func:`fit_logistic`) and return its test AUC.

    Args:
        x_train: ``[N, D]`` features.
        y_train: ``[N]`` 0/1 labels.
        x_test: ``[M, D]`` features.
        y_test: ``[M]`` 0/1 labels.
        l2: L2 penalty on the weights.
        iters: L-BFGS iteration limit.

    Returns:
        Test AUC.
    """
    fit = fit_logistic(x_train, y_train, 2, l2=l2, max_iter=iters)
    return auc(y_test, fit.decision(x_test))
