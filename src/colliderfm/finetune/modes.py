"""Fine-tuning modes: which parameters train, with which learning-rate multipliers.

* ``full``: backbone and head train; the backbone's lr is ``lr * backbone_lr_mult`` and the
  head's ``lr * head_lr_mult`` (e.g. lr=1e-3, backbone_lr_mult=0.03 -> backbone 3e-5).
* ``frozen``: backbone fixed (no gradients, kept in eval mode so dropout is off), MLP head.
* ``linear``: backbone fixed, a single linear layer on the pooled embedding (a linear probe).
  The recipe fits it without the training loop, as a converged L-BFGS logistic regression
  with its L2 strength chosen on validation (:mod:`colliderfm.finetune.probe`); here it only
  freezes the backbone (as for ``lp-ft``'s probe stage, which does train the head by steps).
* ``lp-ft``: a linear probe for the first ``finetune.lp_fraction`` of the steps (in
  ``RUN/lp``), then everything from there with the probe's head (Kumar et al. 2022; handled by
  the runner, which calls :func:`apply_mode` with ``linear`` and then ``full``).
"""

from __future__ import annotations

from torch import nn

from colliderfm.config import FinetuneConfig

MODES = ("full", "frozen", "linear", "lp-ft")


def head_hidden_for(mode: str, default: int | None) -> int | None:
    """Hidden width of the classifier head for a mode (None = linear head).

    Args:
        mode: fine-tuning mode.
        default: hidden width used by the other modes.

    Returns:
        Hidden width or None.
    """
    return None if mode in ("linear", "lp-ft") else default


def freeze(module: nn.Module) -> None:
    """Stop gradients into ``module`` and keep it in eval mode from now on.

    Args:
        module: the module to freeze (typically the backbone).
    """
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()
    module.train = lambda mode=True: module  # type: ignore[method-assign,assignment]


def unfreeze(module: nn.Module) -> None:
    """Undo :func:`freeze`.

    Args:
        module: a module previously frozen.
    """
    for p in module.parameters():
        p.requires_grad_(True)
    if "train" in module.__dict__:
        del module.__dict__["train"]
    module.train()


def apply_mode(model: nn.Module, mode: str, ft: FinetuneConfig) -> dict[str, float]:
    """Configure a classifier for a fine-tuning mode.

    Args:
        model: classifier with ``backbone`` and ``head`` attributes.
        mode: ``full``, ``frozen`` or ``linear`` (lp-ft phases use ``linear`` then ``full``).
        ft: fine-tuning config (lr multipliers).

    Returns:
        Learning-rate multipliers by parameter-name prefix for the training loop.
    """
    if mode in ("frozen", "linear"):
        freeze(model.backbone)
        return {"head.": ft.head_lr_mult}
    if mode == "full":
        unfreeze(model.backbone)
        return {"backbone.": ft.backbone_lr_mult, "head.": ft.head_lr_mult}
    raise ValueError(f"unknown fine-tuning mode {mode!r}; choose from {MODES}")
