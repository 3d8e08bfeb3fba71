"""User-facing errors: the CLI prints them as one line and exits with code 2."""

from __future__ import annotations

from pathlib import Path


class ColliderFMError(Exception):
    """An error caused by the user's input (file, config, arguments), not by a bug.

    The message is one line that names the file or key and says what is wrong.
    """


class DataError(ColliderFMError):
    """A data file is missing, unreadable, of the wrong format, or holds bad values."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class ConfigError(ColliderFMError):
    """A configuration key is unknown, of the wrong type, or out of range."""


class CheckpointError(ColliderFMError):
    """A checkpoint is missing, incomplete, or does not match what was asked for."""


def require(module: str, extra: str) -> object:
    """Import an optional heavy dependency lazily, or fail with a message naming the extra.

    Args:
        module: module name to import (e.g. ``"uproot"``).
        extra: the pip extra that provides it (e.g. ``"root"``).

    Returns:
        The imported module.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ColliderFMError(
            f"this needs the optional package '{module}': pip install 'colliderfm[{extra}]'"
        ) from exc
