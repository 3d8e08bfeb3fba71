"""Checkpoint metadata: a typed, versioned dataclass written as ``config.yaml`` in a checkpoint.

Like nanoGPT's ``GPTConfig`` saved inside its checkpoint, :class:`CheckpointMeta` holds
everything needed to rebuild the module without the original config file:

* ``model`` (:class:`ModelSpec`): the builder's ``task`` and its arguments (backbone name, preset,
  sizes, input width and feature set; classes for classifiers; the objective and its resolved
  settings for pretraining runs; the tokenizer settings for tokenizers);
* ``config``: the full resolved run config;
* ``data`` (:class:`DataInfo`): the number of training examples per pass and a fingerprint of
  the training data (hash of the manifests' shard checksums, the subset and the seed);
* the package version and :data:`CHECKPOINT_SCHEMA`.

Schema history: 1 = the first layout (no data fingerprint); 2 = ``data.fingerprint`` and
``data.sources``. Schema-1 files read unchanged (the new fields are empty).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from colliderfm.errors import CheckpointError
from colliderfm.version import __version__

CHECKPOINT_SCHEMA = 2

_BACKBONE_KEYS = ("name", "preset", "in_dim", "kwargs")


@dataclass
class ModelSpec:
    """How to rebuild a checkpoint's module: the builder ``task`` and its arguments.

    Fields a task does not use stay None (a classifier has no ``objective``, a tokenizer no
    backbone ``name``).
    """

    task: str = "classifier"
    feature_set: str = "part"
    in_dim: int | None = None
    name: str | None = None
    preset: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    n_classes: int | None = None
    classes: list[str] | None = None
    head_hidden: int | None = None
    objective: str | None = None
    tokenizer: str | None = None
    params: dict[str, Any] | None = None

    def backbone(self) -> dict[str, Any]:
        """The backbone part: ``{"name", "preset", "in_dim", "kwargs"}``.

        Returns:
            The backbone spec (for :func:`colliderfm.models.registry.create_model`).
        """
        return {"name": self.name, "preset": self.preset, "in_dim": self.in_dim,
                "kwargs": dict(self.kwargs)}  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Plain dict without the unused (None) fields.

        Returns:
            The ``model`` section of ``config.yaml``.
        """
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "checkpoint") -> ModelSpec:
        """Read a ``model`` section.

        Args:
            d: the mapping.
            where: file named in errors.

        Returns:
            The spec.
        """
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise CheckpointError(f"{where}: unknown key(s) {bad} in the 'model' section")
        return cls(**{k: v for k, v in d.items() if not (k == "kwargs" and v is None)})


@dataclass
class DataInfo:
    """What the module was trained on."""

    n_train: int | None = None
    fingerprint: str | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    subset: dict[str, Any] | None = None
    cwola: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict without the empty fields.

        Returns:
            The ``data`` section of ``config.yaml``.
        """
        return {k: v for k, v in asdict(self).items() if v not in (None, [])}


@dataclass
class CheckpointMeta:
    """Everything in a checkpoint's ``config.yaml``."""

    model: ModelSpec
    config: dict[str, Any] | None = None
    data: DataInfo = field(default_factory=DataInfo)
    colliderfm_version: str = __version__
    checkpoint_schema: int = CHECKPOINT_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        """The YAML layout (version and schema first).

        Returns:
            Plain dict.
        """
        out: dict[str, Any] = {
            "colliderfm_version": self.colliderfm_version,
            "checkpoint_schema": self.checkpoint_schema,
            "model": self.model.to_dict(),
            "data": self.data.to_dict(),
        }
        if self.config is not None:
            out["config"] = self.config
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "checkpoint") -> CheckpointMeta:
        """Read a checkpoint's metadata (any schema up to :data:`CHECKPOINT_SCHEMA`).

        Args:
            d: the parsed ``config.yaml``.
            where: file named in errors.

        Returns:
            The metadata.
        """
        if not isinstance(d, dict) or not isinstance(d.get("model"), dict):
            raise CheckpointError(f"{where}: no 'model' section")
        schema = d.get("checkpoint_schema")
        if not isinstance(schema, int) or schema > CHECKPOINT_SCHEMA:
            raise CheckpointError(
                f"{where}: checkpoint schema {schema!r} is newer than this colliderfm supports "
                f"({CHECKPOINT_SCHEMA}); upgrade colliderfm (checkpoint written by "
                f"{d.get('colliderfm_version')})"
            )
        data = d.get("data") or {}
        known = {f.name for f in fields(DataInfo)}
        return cls(
            model=ModelSpec.from_dict(d["model"], where),
            config=d.get("config"),
            data=DataInfo(**{k: v for k, v in data.items() if k in known}),
            colliderfm_version=str(d.get("colliderfm_version", "?")),
            checkpoint_schema=schema,
        )


def source_fingerprint(path: str | Path) -> dict[str, Any]:
    """Fingerprint of one data source: its manifest's shard checksums, else name and size.

    Args:
        path: shard directory or data file.

    Returns:
        ``{"path", "n" (when known), "sha256"}`` (16 hex digits).
    """
    p = Path(path)
    h = hashlib.sha256()
    info: dict[str, Any] = {"path": str(p)}
    manifest = p / "manifest.json"
    if manifest.is_file():
        try:
            m = json.loads(manifest.read_text())
        except (OSError, ValueError):
            m = {}
        for s in m.get("shards", []):
            h.update(str(s.get("sha256", s.get("file"))).encode())
        info["n"] = m.get("n")
    elif p.exists():
        h.update(f"{p.name}:{p.stat().st_size}".encode())
    info["sha256"] = h.hexdigest()[:16]
    return info


def data_fingerprint(
    paths: list[str | Path], subset: dict[str, Any] | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Fingerprint of a run's training data: its sources, the subset taken and the seed.

    Two runs with the same fingerprint saw the same examples (the same shards, the same
    ``--n-train`` subset drawn with the same seed).

    Args:
        paths: the training sources (manifest directories or files).
        subset: how examples were taken from them (e.g. ``{"n_train": 1000, "seed": 0}``), or
            None for all of them.

    Returns:
        (16-hex-digit fingerprint, per-source fingerprints).
    """
    sources = [source_fingerprint(p) for p in paths]
    h = hashlib.sha256()
    for s in sources:
        h.update(s["sha256"].encode())
    h.update(json.dumps(subset or {}, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16], sources
