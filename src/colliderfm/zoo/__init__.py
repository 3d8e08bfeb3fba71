"""The model zoo: pretrained checkpoints shipped inside the package, named ``zoo:NAME``.

Each entry is one folder ``colliderfm/zoo/NAME/`` installed with the package (nothing is ever
downloaded)::

    model.safetensors   the weights (a checkpoint directory, as training writes it)
    config.yaml         the checkpoint metadata (rebuilds the model alone)
    SHA256SUMS          sha256 of model.safetensors and config.yaml, in ``sha256sum`` format
    MODEL_CARD.md       what it was trained on, how, and what it is good for
    meta.json           name (the folder's), recipe (e.g. contrastive, mpm), backbone, preset,
                        parameters (of the backbone), pretraining_data (one line), steps,
                        probe_auc (linear-probe AUC, null when not measured)

The folder itself is a checkpoint directory, so :func:`resolve` returns it and every loader
(:func:`colliderfm.load`, ``finetune --init``, study arms) takes it as it takes a run directory.
:func:`checkpoint_path` is the one place where a ``zoo:NAME`` reference becomes that path.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colliderfm.errors import CheckpointError
from colliderfm.fileio import sha256_file
from colliderfm.train.checkpoint import META, WEIGHTS

#: the folder holding the shipped entries (tests point it elsewhere with monkeypatch)
ZOO_ROOT = Path(__file__).resolve().parent
#: how a reference to a shipped checkpoint starts
PREFIX = "zoo:"
CHECKSUMS, CARD, INFO = "SHA256SUMS", "MODEL_CARD.md", "meta.json"
#: files every entry's SHA256SUMS covers
CHECKED = (WEIGHTS, META)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


#: what each meta.json value must be
_META_TYPES = {
    "name": lambda v: isinstance(v, str),
    "recipe": lambda v: isinstance(v, str),
    "backbone": lambda v: isinstance(v, str),
    "preset": lambda v: isinstance(v, str),
    "parameters": _is_int,
    "pretraining_data": lambda v: isinstance(v, str),
    "steps": _is_int,
    "probe_auc": lambda v: v is None or _is_int(v) or isinstance(v, float),
}
#: keys of meta.json
META_KEYS = tuple(_META_TYPES)
_SUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


@dataclass(frozen=True)
class ZooEntry:
    """One shipped checkpoint.

    Attributes:
        name: the name in ``zoo:NAME``.
        path: its folder (a checkpoint directory).
        meta: the contents of its ``meta.json``.
    """

    name: str
    path: Path
    meta: dict[str, Any]


def _root(root: str | Path | None) -> Path:
    return Path(root) if root is not None else ZOO_ROOT


def names(root: str | Path | None = None) -> list[str]:
    """The names of the entries in the zoo (folders under the root, hidden ones excluded).

    Args:
        root: zoo folder (default: :data:`ZOO_ROOT`, the one installed with the package).

    Returns:
        Sorted entry names; empty when nothing is shipped.
    """
    r = _root(root)
    if not r.is_dir():
        return []
    return sorted(p.name for p in r.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def _corrupted(name: str, path: Path, problem: str) -> CheckpointError:
    return CheckpointError(
        f"{PREFIX}{name}: {path} {problem}: the zoo entry is corrupted (reinstall colliderfm)"
    )


def _read_info(name: str, folder: Path) -> dict[str, Any]:
    path = folder / INFO
    if not path.is_file():
        raise _corrupted(name, path, "is missing")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _corrupted(name, path, "is not valid JSON") from exc
    if not isinstance(info, dict):
        raise _corrupted(name, path, "is not a JSON object")
    missing = [k for k in META_KEYS if k not in info]
    if missing:
        raise _corrupted(name, path, f"lacks {', '.join(missing)}")
    wrong = [k for k, ok in _META_TYPES.items() if not ok(info[k])]
    if wrong:
        raise _corrupted(name, path, f"has values of the wrong type for {', '.join(wrong)}")
    if info["name"] != name:
        raise _corrupted(name, path, f"names the entry {info['name']!r}, not {name!r}")
    return info


def list_entries(root: str | Path | None = None) -> list[ZooEntry]:
    """Every shipped checkpoint with its ``meta.json`` (weights are not read or verified).

    Args:
        root: zoo folder (default: :data:`ZOO_ROOT`).

    Returns:
        The entries sorted by name; an empty list when none is shipped.

    Raises:
        CheckpointError: an entry's ``meta.json`` is missing or malformed.
    """
    r = _root(root)
    return [ZooEntry(n, r / n, _read_info(n, r / n)) for n in names(r)]


def is_zoo_ref(s: str) -> bool:
    """Whether ``s`` names a shipped checkpoint (``zoo:NAME``) rather than a path.

    Args:
        s: a checkpoint argument (a path, ``none`` or ``zoo:NAME``).

    Returns:
        True for strings starting with ``zoo:``.
    """
    return isinstance(s, str) and s.startswith(PREFIX)


def _expected_sums(name: str, folder: Path) -> dict[str, str]:
    path = folder / CHECKSUMS
    if not path.is_file():
        raise _corrupted(name, path, "is missing")
    sums: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise _corrupted(name, path, "is not text") from exc
    for line in lines:
        if not line.strip():
            continue
        m = _SUM_LINE.match(line.strip())
        if m is None:
            raise _corrupted(name, path, f"has a line that is not `SHA256  FILE`: {line!r}")
        sums[m.group(2)] = m.group(1).lower()
    absent = [f for f in CHECKED if f not in sums]
    if absent:
        raise _corrupted(name, path, f"has no checksum of {', '.join(absent)}")
    return sums


def verify_entry(name: str, folder: Path) -> None:
    """Check that an entry's weights and metadata exist and match its ``SHA256SUMS``.

    Args:
        name: entry name (for messages).
        folder: the entry's folder.

    Raises:
        CheckpointError: a file is missing or its checksum differs (the entry is corrupted).
    """
    sums = _expected_sums(name, folder)
    for f in CHECKED:
        path = folder / f
        if not path.is_file():
            raise _corrupted(name, path, "is missing")
        got = sha256_file(path)
        if got != sums[f]:
            raise _corrupted(
                name, path, f"does not match its SHA256SUMS checksum (sha256 {got[:16]}...)"
            )


def resolve(ref: str, root: str | Path | None = None, verify: bool = True) -> Path:
    """The checkpoint directory of a ``zoo:NAME`` reference.

    Args:
        ref: ``zoo:NAME``.
        root: zoo folder (default: :data:`ZOO_ROOT`).
        verify: check the weights and metadata against ``SHA256SUMS`` first.

    Returns:
        The entry's folder, a checkpoint directory every loader accepts.

    Raises:
        CheckpointError: ``ref`` is not a zoo reference, names no shipped entry (the message
            lists the available names, or says the zoo is empty), or the entry is corrupted.
    """
    if not is_zoo_ref(ref):
        raise CheckpointError(f"{ref!r} is not a zoo reference (zoo:NAME)")
    name = ref[len(PREFIX) :]
    r = _root(root)
    available = names(r)
    if name not in available:
        have = (
            f"available: {', '.join(available)}"
            if available
            else "the zoo is empty: no pretrained checkpoints are shipped yet"
        )
        raise CheckpointError(
            f"{ref}: no such pretrained checkpoint ({have}; see `colliderfm models --pretrained`)"
        )
    folder = r / name
    if verify:
        verify_entry(name, folder)
    return folder


def checkpoint_path(path: str | Path, verify: bool = True) -> Path:
    """A checkpoint argument as a directory: ``zoo:NAME`` resolved, any other path as given.

    The one place where every checkpoint init (``finetune.init``, study arms, CWoLa,
    :func:`colliderfm.load`) turns a zoo reference into a path.

    Args:
        path: a checkpoint directory, or ``zoo:NAME`` (a string).
        verify: check a zoo entry's checksums.

    Returns:
        The checkpoint directory (not checked to exist when ``path`` is a path).
    """
    if isinstance(path, str) and is_zoo_ref(path):
        return resolve(path, verify=verify)
    return Path(path)
