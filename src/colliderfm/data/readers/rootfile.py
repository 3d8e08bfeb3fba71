"""ROOT files through uproot, with every failure turned into a one-line :class:`DataError`.

uproot raises many different exceptions for broken input (``ValueError`` for a wrong magic,
``OSError`` for a short read, ``zlib.error`` or ``DeserializationError`` for corrupt baskets...).
The helpers here catch them *only around uproot calls* and report "not a ROOT file" or
"truncated or corrupt ROOT file (<original error>)" naming the file, so a bug in our own code is
never disguised as a bad file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from colliderfm.errors import DataError, require

#: ROOT classes we can iterate like a tree (uproot gives both the same ``iterate`` API).
TREE_CLASSES: tuple[str, ...] = ("TTree", "TNtuple", "TNtupleD", "ROOT::RNTuple")

_NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float
ROOT_MAGIC = b"root"


def _uproot() -> Any:
    return require("uproot", "root")


def describe_error(exc: BaseException) -> str:
    """Turn an uproot exception into the problem half of a one-line error message.

    Args:
        exc: exception raised by uproot while opening or reading a file.

    Returns:
        ``"not a ROOT file"`` or ``"truncated or corrupt ROOT file (<Type>: <first line>)"``.
    """
    text = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
    if "not a ROOT file" in text:
        return "not a ROOT file"
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if len(detail) > 200:
        detail = detail[:197] + "..."
    return f"truncated or corrupt ROOT file ({detail})"


@contextmanager
def read_errors(path: str | Path) -> Iterator[None]:
    """Context manager converting exceptions from uproot calls into :class:`DataError`.

    Wrap only uproot calls with it (never our own processing or a ``yield``).

    Args:
        path: the file being read (named in the error).

    Returns:
        A context manager.
    """
    try:
        yield
    except DataError:
        raise
    except Exception as exc:  # uproot/zlib/lz4/struct errors: all mean a bad file
        raise DataError(path, describe_error(exc)) from exc


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(path, "no such file")
    if path.is_dir():
        raise DataError(path, "is a directory, not a ROOT file")
    if path.stat().st_size == 0:
        raise DataError(path, "file is empty")
    with open(path, "rb") as fh:
        if fh.read(4) != ROOT_MAGIC:
            raise DataError(path, "not a ROOT file")


@contextmanager
def open_root(path: str | Path) -> Iterator[Any]:
    """Open a ROOT file read-only; closed when the block exits.

    Args:
        path: ROOT file.

    Returns:
        A context manager yielding the uproot directory of the file.

    Raises:
        DataError: missing, empty, not ROOT, truncated or corrupt.
    """
    uproot = _uproot()
    path = Path(path)
    _check_file(path)
    with read_errors(path):
        f = uproot.open(path)
    try:
        yield f
    finally:
        f.close()


def _classnames(f: Any, path: Path) -> dict[str, str]:
    with read_errors(path):
        return dict(f.classnames(recursive=True, cycle=False))


def tree_names(path: str | Path) -> list[str]:
    """Names of the trees (TTree, TNtuple or RNTuple) in a ROOT file, including subdirectories.

    Args:
        path: ROOT file.

    Returns:
        Tree names (``"dir/name"`` for trees in subdirectories), in file order.

    Raises:
        DataError: the file is missing, empty, not ROOT, truncated or corrupt.
    """
    path = Path(path)
    with open_root(path) as f:
        return [k for k, cls in _classnames(f, path).items() if cls in TREE_CLASSES]


def get_tree(f: Any, path: str | Path, name: str) -> Any:
    """Look up a tree by name with an error that lists the trees present.

    Args:
        f: uproot directory from :func:`open_root`.
        path: the file (named in errors).
        name: tree name.

    Returns:
        The uproot TTree / RNTuple object.
    """
    path = Path(path)
    classes = _classnames(f, path)
    if name not in classes:
        trees = [k for k, cls in classes.items() if cls in TREE_CLASSES]
        raise DataError(path, f"no tree '{name}' (trees present: {', '.join(trees) or 'none'})")
    if classes[name] not in TREE_CLASSES:
        raise DataError(path, f"'{name}' is a {classes[name]}, not a TTree")
    with read_errors(path):
        return f[name]


def branch_names(tree: Any, path: str | Path) -> list[str]:
    """Top-level branch (or RNTuple field) names of a tree.

    Args:
        tree: uproot tree.
        path: the file (named in errors).

    Returns:
        Branch names.
    """
    with read_errors(path):
        return list(tree.keys(recursive=False))


def check_numeric_branches(tree: Any, path: str | Path, names: Sequence[str]) -> None:
    """Fail early if a TTree branch is not numbers or lists of numbers (strings, objects).

    RNTuple fields have no interpretation to look at; their types are checked on the data.

    Args:
        tree: uproot tree.
        path: the file (named in errors).
        names: branches to check.

    Raises:
        DataError: naming the first non-numeric branch and its C++ type.
    """
    interp_mod = _uproot().interpretation
    for name in names:
        with read_errors(path):
            branch = tree[name]
        interp = getattr(branch, "interpretation", None)
        if interp is None:  # RNTuple field
            continue
        if isinstance(interp, interp_mod.jagged.AsJagged):
            interp = interp.content
        dtype = getattr(interp, "from_dtype", None)
        if (
            not isinstance(interp, interp_mod.numerical.AsDtype)
            or dtype is None
            or dtype.kind not in _NUMERIC_KINDS
            or dtype.shape != ()
        ):
            raise DataError(
                path,
                f"branch '{name}' in tree '{tree.name}' is not numeric (type {branch.typename})",
            )
