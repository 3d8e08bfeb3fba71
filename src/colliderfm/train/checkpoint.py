"""Checkpoints: ``model.safetensors`` + ``config.yaml`` (+ ``state.pt`` for resume), atomic.

A checkpoint directory is written as a whole into a hidden sibling, then swapped into place:
``target`` -> ``target.old`` (kept until the swap is done), ``new`` -> ``target``. A crash at any
moment leaves either the previous or the new checkpoint loadable (:func:`resolve` falls back to
``.old``); hidden temporary directories left by a killed write are removed by the next write.

``config.yaml`` holds everything needed to rebuild the model without the original config file:
``model`` (builder name and arguments), ``config`` (the full resolved run config), the package
version, a schema number and a fingerprint of the training data.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from colliderfm import __version__
from colliderfm.errors import CheckpointError

CHECKPOINT_SCHEMA = 1
WEIGHTS, META, STATE = "model.safetensors", "config.yaml", "state.pt"

#: builders that rebuild a module from ``meta["model"]`` (registered by each task)
_BUILDERS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {}


def register_builder(
    task: str,
) -> Callable[[Callable[[dict[str, Any]], nn.Module]], Callable[[dict[str, Any]], nn.Module]]:
    """Register a function that rebuilds a module of kind ``task`` from checkpoint metadata.

    Args:
        task: task name stored in ``config.yaml`` under ``model.task``.

    Returns:
        Decorator.
    """

    def deco(fn: Callable[[dict[str, Any]], nn.Module]) -> Callable[[dict[str, Any]], nn.Module]:
        _BUILDERS[task] = fn
        return fn

    return deco


def data_fingerprint(path: str | Path | None) -> dict[str, Any] | None:
    """A short fingerprint of a data source (manifest checksums, or file size and name).

    Args:
        path: data path or None.

    Returns:
        Dict with ``path`` and ``sha256`` (of the shard checksums or file stats), or None.
    """
    if path is None:
        return None
    p = Path(path)
    h = hashlib.sha256()
    if (p / "manifest.json").is_file():
        import json

        manifest = json.loads((p / "manifest.json").read_text())
        for s in manifest.get("shards", []):
            h.update(str(s.get("sha256", s.get("file"))).encode())
        return {"path": str(p), "n": manifest.get("n"), "sha256": h.hexdigest()[:16]}
    if p.exists():
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}".encode())
    return {"path": str(p), "sha256": h.hexdigest()[:16]}


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
    meta: dict[str, Any],
    state: dict[str, Any] | None = None,
    inplace: bool = False,
) -> Path:
    """Write a checkpoint directory atomically.

    Args:
        target: checkpoint directory.
        module: module whose ``state_dict`` is saved.
        meta: ``{"model": {...builder args...}, "config": {...}, ...}``.
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
        full = {"colliderfm_version": __version__, "checkpoint_schema": CHECKPOINT_SCHEMA, **meta}
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
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"{target}: cannot write checkpoint ({exc.strerror or exc})") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


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
    """Read and check a checkpoint's ``config.yaml``.

    Args:
        path: checkpoint directory.

    Returns:
        The metadata dict.
    """
    p = resolve(path)
    try:
        meta = yaml.safe_load((p / META).read_text())
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{p / META}: not valid YAML") from exc
    if not isinstance(meta, dict) or "model" not in meta:
        raise CheckpointError(f"{p / META}: no 'model' section")
    schema = meta.get("checkpoint_schema")
    if not isinstance(schema, int) or schema > CHECKPOINT_SCHEMA:
        raise CheckpointError(
            f"{p}: checkpoint schema {schema!r} is newer than this colliderfm supports "
            f"({CHECKPOINT_SCHEMA}); upgrade colliderfm (checkpoint written by "
            f"{meta.get('colliderfm_version')})"
        )
    return meta


def load_weights(
    module: nn.Module, path: str | Path, prefix: str = "", strict: bool = True
) -> None:
    """Load saved weights into ``module``.

    Args:
        module: target module.
        path: checkpoint directory.
        prefix: only keys starting with this prefix are loaded (with the prefix removed).
        strict: require an exact key match.
    """
    p = resolve(path)
    try:
        tensors = load_file(str(p / WEIGHTS))
    except Exception as exc:  # SafetensorError, OSError: a truncated or corrupt weights file
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{p / WEIGHTS}: unreadable weights ({detail})") from exc
    if prefix:
        tensors = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
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


def build_model(meta: dict[str, Any]) -> nn.Module:
    """Rebuild a module from checkpoint metadata (no weights).

    Args:
        meta: checkpoint metadata.

    Returns:
        The freshly initialised module.
    """
    import colliderfm.finetune.classifier  # noqa: F401  (registers builders)
    import colliderfm.pretrain.run  # noqa: F401
    import colliderfm.tokenizers.vqvae  # noqa: F401

    task = meta["model"].get("task", "classifier")
    if task not in _BUILDERS:
        raise CheckpointError(f"unknown checkpoint task {task!r} (known: {sorted(_BUILDERS)})")
    return _BUILDERS[task](meta["model"])


def load_model(path: str | Path) -> nn.Module:
    """Rebuild a model from a checkpoint directory alone, in eval mode.

    Args:
        path: checkpoint directory.

    Returns:
        The module with its weights.
    """
    meta = read_meta(path)
    module = build_model(meta)
    load_weights(module, path)
    return module.eval()


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
