"""Checkpoints: ``model.safetensors`` + ``config.yaml`` (+ ``state.pt`` for resume), atomic.

A checkpoint directory is written as a whole into a hidden sibling, then swapped into place:
``target`` -> ``target.old`` (kept until the swap is done), ``new`` -> ``target``. A crash at any
moment leaves either the previous or the new checkpoint loadable (:func:`resolve` falls back to
``.old``); hidden temporary directories left by a killed write are removed by the next write.

``config.yaml`` is a :class:`~colliderfm.train.meta.CheckpointMeta`: everything needed to
rebuild the model without the original config file. This module only writes and reads files;
rebuilding a module from them is :mod:`colliderfm.checkpoints`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from colliderfm.errors import CheckpointError
from colliderfm.train.meta import CHECKPOINT_SCHEMA, CheckpointMeta
from colliderfm.version import __version__

WEIGHTS, META, STATE = "model.safetensors", "config.yaml", "state.pt"


def _swap_into_place(tmp: Path, target: Path) -> None:
    old = target.with_name(target.name + ".old")
    if target.exists():
        # target is complete (only ever renamed into place), so a leftover .old is stale
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
    # without target, a leftover .old is the only loadable copy: keep it until tmp is in place
    os.replace(tmp, target)
    if old.exists():
        shutil.rmtree(old)


def _remove_stale_temps(target: Path, inplace: bool) -> None:
    """Delete temporary directories of earlier writes of ``target`` that were killed midway."""
    where = target if inplace else target.parent
    for stale in where.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def save_checkpoint(
    target: str | Path,
    module: nn.Module,
    meta: CheckpointMeta | dict[str, Any],
    state: dict[str, Any] | None = None,
    inplace: bool = False,
) -> Path:
    """Write a checkpoint directory atomically.

    Args:
        target: checkpoint directory.
        module: module whose ``state_dict`` is saved.
        meta: the checkpoint's metadata (a plain dict is written as given, with the package
            version and schema added).
        state: optional resume state (optimizer, scheduler, RNG, step).
        inplace: ``target`` also holds other files (a run directory): replace the checkpoint
            files one by one (each atomically; weights last) instead of swapping the directory.

    Returns:
        The checkpoint path.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if inplace:
            target.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(target, inplace)  # one writer per checkpoint (rank 0)
        tmp = Path(
            tempfile.mkdtemp(
                prefix=f".{target.name}.tmp-", dir=target if inplace else target.parent
            )
        )
    except OSError as exc:
        raise CheckpointError(f"{target}: cannot write checkpoint ({exc.strerror or exc})") from exc
    try:
        tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
        save_file(tensors, str(tmp / WEIGHTS))
        if isinstance(meta, CheckpointMeta):
            full = meta.to_dict()
        else:
            full = {"colliderfm_version": __version__, "checkpoint_schema": CHECKPOINT_SCHEMA}
            full.update(meta)
        (tmp / META).write_text(yaml.safe_dump(full, sort_keys=False))
        if state is not None:
            torch.save(state, tmp / STATE)
        if inplace:
            for name in (META, STATE, WEIGHTS):
                if (tmp / name).exists():
                    os.replace(tmp / name, target / name)
            shutil.rmtree(tmp)
        else:
            _swap_into_place(tmp, target)
    except (OSError, SafetensorError) as exc:  # disk full, permissions: safetensors has its own
        shutil.rmtree(tmp, ignore_errors=True)
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else _first_line(exc)
        raise CheckpointError(f"{target}: cannot write checkpoint ({why})") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def resolve(path: str | Path) -> Path:
    """Find the loadable checkpoint directory at ``path`` (falls back to ``path.old``).

    Args:
        path: checkpoint directory.

    Returns:
        A directory containing weights and metadata.
    """
    p = Path(path)
    for cand in (p, p.with_name(p.name + ".old")):
        if (cand / WEIGHTS).is_file() and (cand / META).is_file():
            return cand
    if not p.exists():
        raise CheckpointError(f"{p}: checkpoint not found")
    raise CheckpointError(f"{p}: not a checkpoint (needs {WEIGHTS} and {META})")


def read_meta(path: str | Path) -> dict[str, Any]:
    """Read and check a checkpoint's ``config.yaml`` as a plain dict.

    Args:
        path: checkpoint directory.

    Returns:
        The metadata dict (see :func:`read_checkpoint_meta` for the typed form).
    """
    p = resolve(path)
    try:
        meta = yaml.safe_load((p / META).read_text())
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{p / META}: not valid YAML") from exc
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{p / META}: not UTF-8 text") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict):
        raise CheckpointError(f"{p / META}: no 'model' section")
    CheckpointMeta.from_dict(meta, str(p))  # schema and keys checked here
    return meta


def read_checkpoint_meta(path: str | Path) -> CheckpointMeta:
    """Read a checkpoint's metadata, typed.

    Args:
        path: checkpoint directory.

    Returns:
        The :class:`~colliderfm.train.meta.CheckpointMeta`.
    """
    return CheckpointMeta.from_dict(read_meta(path), str(resolve(path)))


def load_weights(
    module: nn.Module,
    path: str | Path,
    prefix: str = "",
    strict: bool = True,
    drop: tuple[str, ...] = (),
) -> None:
    """Load saved weights into ``module``.

    Args:
        module: target module.
        path: checkpoint directory.
        prefix: only keys starting with this prefix are loaded (with the prefix removed).
        strict: require an exact key match.
        drop: saved keys starting with one of these (after ``prefix`` is removed) are not
            loaded (parts the target module does not have).
    """
    p = resolve(path)
    try:
        tensors = load_file(str(p / WEIGHTS))
    except Exception as exc:  # SafetensorError, OSError: a truncated or corrupt weights file
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{p / WEIGHTS}: unreadable weights ({detail})") from exc
    if prefix:
        tensors = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    if drop:
        tensors = {k: v for k, v in tensors.items() if not k.startswith(drop)}
    try:
        missing, unexpected = module.load_state_dict(tensors, strict=strict)
    except RuntimeError as exc:
        detail = _mismatch(module.state_dict(), tensors) or str(exc).strip().splitlines()[0]
        raise CheckpointError(
            f"{p}: weights do not match the model ({detail}; was it written with another "
            "model config?)"
        ) from exc
    if strict and (missing or unexpected):  # pragma: no cover - load_state_dict raises first
        raise CheckpointError(f"{p}: weights do not match the model")


def _mismatch(want: dict[str, torch.Tensor], have: dict[str, torch.Tensor]) -> str:
    """One line saying how saved tensors differ from a model's (counts and a first example)."""
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    shape = [k for k in want if k in have and tuple(want[k].shape) != tuple(have[k].shape)]
    parts = []
    if shape:
        k = shape[0]
        parts.append(
            f"{len(shape)} tensor(s) of another shape, e.g. {k}: saved "
            f"{list(have[k].shape)}, model {list(want[k].shape)}"
        )
    if missing:
        parts.append(f"{len(missing)} missing, e.g. {missing[0]}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected, e.g. {unexpected[0]}")
    return "; ".join(parts)


def load_state(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint's resume state.

    Args:
        path: checkpoint directory.

    Returns:
        The state dict saved with the checkpoint.
    """
    p = resolve(path) / STATE
    if not p.is_file():
        raise CheckpointError(f"{p.parent}: no {STATE}; this checkpoint cannot be resumed")
    try:
        return torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated or corrupt pickle/zip
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{p}: unreadable resume state ({detail})") from exc
