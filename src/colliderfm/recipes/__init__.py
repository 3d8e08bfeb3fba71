"""Recipes: setup -> train -> save, each a short function on the shared :class:`Runner`.

``run_pretrain`` (self-supervised objectives; a tokenizer config trains a tokenizer),
``run_finetune`` (classifiers, from scratch or pretrained, CWoLa) and ``train_tokenizer``. The
CLI verbs and the studies' points call these; only the runner calls the training loop.
"""

from __future__ import annotations

from colliderfm.recipes.finetune import run_finetune
from colliderfm.recipes.pretrain import run_pretrain
from colliderfm.recipes.runner import Runner
from colliderfm.recipes.tokenizer import train_tokenizer

__all__ = ["Runner", "run_finetune", "run_pretrain", "train_tokenizer"]
