"""Atomic file writes: write a hidden temporary sibling, then rename it into place.

A reader never sees a half-written file: a crash or Ctrl-C leaves either the previous file or
the new one, and the temporary file is removed. Failures of the environment (disk full,
permission denied) become one-line :class:`~colliderfm.errors.DataError` messages.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from colliderfm.errors import DataError


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path next to ``path`` that is renamed onto ``path`` when the block succeeds.

    Args:
        path: the final file.
        suffix: suffix of the temporary name (some writers pick the format from it, e.g.
            ``".png"``).

    Returns:
        Context manager yielding the temporary path; on any exception the temporary file is
        removed and ``path`` is left as it was (``OSError`` becomes :class:`DataError`).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", suffix=suffix, dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise DataError(path, f"cannot write ({exc.strerror or exc})") from exc
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(path, f"cannot write ({exc.strerror or exc})") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically (UTF-8).

    Args:
        path: target path.
        text: file contents.

    Returns:
        The path written.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def json_safe(x: Any) -> Any:
    """``x`` with non-finite floats replaced by None (JSON has no NaN or infinity).

    Args:
        x: nested dicts/lists of JSON values.

    Returns:
        The same structure, NaN and +-inf as None.
    """
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json(obj: Any, path: str | Path, indent: int | None = 2) -> Path:
    """Write JSON atomically; non-finite floats become null.

    Args:
        obj: JSON-serialisable value.
        path: target path.
        indent: indentation (None: one line).

    Returns:
        The path written.
    """
    return write_text(path, json.dumps(json_safe(obj), indent=indent, default=str) + "\n")


def sha256_file(path: Path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB blocks.

    Args:
        path: the file.

    Returns:
        Its hex digest.
    """
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
