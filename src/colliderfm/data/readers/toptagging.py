"""Top Tagging reference dataset (HDF5 written by pandas) as :class:`ConstituentChunk` blocks.

Layout: one DataFrame under key ``table`` (pandas ``format="table"``; ``format="fixed"`` works
too), one row per jet, columns ``E_i, PX_i, PY_i, PZ_i`` (GeV) for particle slots ``i`` (200 in
the public files, zero-padded) and ``is_signal_new`` (1 = top, 0 = QCD). Other columns
(``truthE``, ``ttv``, ...) are ignored.

Mapping to the canonical schema:

* a slot is a particle when any of its four components is non-zero (real particles have E > 0;
  counting NaN/inf as present means such jets are skipped and counted, not silently shortened);
  particles keep the stored order (the public files are pT-ordered);
* charge 0 and pid 0 (the dataset has no particle identification);
* jet scalars are the sum of the constituents (``jet_mass`` is the constituent mass);
* ``label = is_signal_new`` (index into :data:`CLASSES`); without that column ``label = -1``.

Rows are read ``chunk_size`` at a time (``HDFStore.select(start=, stop=)``), so memory stays
bounded whatever the file size.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from colliderfm.data.readers.base import HDF5_MAGIC, Reader, file_head, register
from colliderfm.data.readers.common import sanitize_jets
from colliderfm.data.schema import ConstituentChunk, jet_scalars_from_particles
from colliderfm.errors import DataError, require

log = logging.getLogger(__name__)

#: Class names; ``label == i`` means ``CLASSES[i]``.
CLASSES: list[str] = ["QCD", "Tbqq"]

LABEL_COLUMN = "is_signal_new"
_SLOT = re.compile(r"^E_(\d+)$")


def _hdf5_reason(exc: BaseException) -> str:
    """The innermost line of an HDF5 error back trace (or the first line of any other error)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    reason = lines[0] if lines else type(exc).__name__
    if "HDF5 error back trace" in str(exc):
        body = [ln for ln in lines if not ln.startswith(("File ", "HDF5 error", "End of HDF5"))]
        end = [i for i, ln in enumerate(lines) if ln.startswith("End of HDF5")]
        inner = [ln for ln in lines[: end[0]] if ln in body] if end else body
        reason = inner[-1] if inner else reason
    if len(reason) > 200:
        reason = reason[:197] + "..."
    if "truncated file" in reason:
        return f"truncated HDF5 file ({reason})"
    return f"corrupt or unreadable HDF5 file ({type(exc).__name__}: {reason})"


@contextmanager
def _hdf_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except DataError:
        raise
    except Exception as exc:  # tables.HDF5ExtError, OSError, ValueError...: all mean a bad file
        raise DataError(path, _hdf5_reason(exc)) from exc


@contextmanager
def open_store(path: str | Path) -> Iterator[Any]:
    """Open a pandas HDFStore read-only with errors that name the file.

    Args:
        path: HDF5 file.

    Returns:
        A context manager yielding the ``pandas.HDFStore``.

    Raises:
        DataError: missing, empty, not HDF5, truncated or corrupt.
    """
    pd = require("pandas", "root")
    require("tables", "root")
    path = Path(path)
    if not path.exists():
        raise DataError(path, "no such file")
    if path.is_dir():
        raise DataError(path, "is a directory, not an HDF5 file")
    if path.stat().st_size == 0:
        raise DataError(path, "file is empty")
    with open(path, "rb") as fh:
        if fh.read(8) != HDF5_MAGIC:
            raise DataError(path, "not an HDF5 file")
    with _hdf_errors(path):
        store = pd.HDFStore(path, mode="r")
    try:
        yield store
    finally:
        store.close()


def _keys(store: Any) -> list[str]:
    keys: list[str] = store.keys()
    return [k.lstrip("/") for k in keys if k.strip("/")]


def _check_key(store: Any, path: Path, key: str) -> Any:
    """Return the empty frame for ``key`` (columns + dtypes) or raise naming the keys present."""
    pd = require("pandas", "root")
    keys = _keys(store)
    if key.strip("/") not in keys:
        if keys:
            hint = f"keys present: {', '.join(keys)}"
        else:
            with _hdf_errors(path):
                nodes = [n._v_pathname for n in store._handle.walk_nodes("/")][1:]
            hint = (
                "no pandas objects; HDF5 nodes: " + ", ".join(nodes[:8])
                if nodes
                else "the file holds no objects"
            )
        raise DataError(path, f"no key '{key}' ({hint})")
    with _hdf_errors(path):
        head = store.select(key, start=0, stop=0)
    if not isinstance(head, pd.DataFrame):
        raise DataError(path, f"key '{key}' holds a {type(head).__name__}, not a DataFrame")
    return head


def _layout(
    head: Any, path: Path, key: str
) -> tuple[list[str], list[str], list[str], list[str], bool]:
    """Particle-slot column names (E, PX, PY, PZ in slot order) and whether labels exist."""
    pd = require("pandas", "root")
    columns = [str(c) for c in head.columns]
    have = set(columns)
    slots = sorted(int(m.group(1)) for c in columns if (m := _SLOT.match(c)))
    if not slots:
        raise DataError(
            path,
            f"key '{key}' is missing columns E_0, PX_0, PY_0, PZ_0, ... "
            f"(no E_i columns; columns present: {', '.join(columns[:6])}"
            f"{', ...' if len(columns) > 6 else ''})",
        )
    names = [[f"{c}_{i}" for i in slots] for c in ("E", "PX", "PY", "PZ")]
    missing = [n for group in names for n in group if n not in have]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataError(path, f"key '{key}' is missing column(s) {', '.join(missing[:5])}{more}")
    for group in names:
        for n in group:
            if not pd.api.types.is_numeric_dtype(head.dtypes[n]):
                raise DataError(
                    path, f"column '{n}' in key '{key}' is not numeric (dtype {head.dtypes[n]})"
                )
    has_label = LABEL_COLUMN in have
    if has_label and not pd.api.types.is_numeric_dtype(head.dtypes[LABEL_COLUMN]):
        raise DataError(path, f"column '{LABEL_COLUMN}' in key '{key}' is not numeric")
    return names[0], names[1], names[2], names[3], has_label


def num_jets(path: str | Path, key: str = "table") -> int | None:
    """Number of rows (jets) under ``key`` without reading the data, when the store knows it.

    Args:
        path: Top Tagging HDF5 file.
        key: pandas key.

    Returns:
        Row count, or None if the storage format does not record it.
    """
    path = Path(path)
    with open_store(path) as store:
        _check_key(store, path, key)
        with _hdf_errors(path):
            storer = store.get_storer(key)
            nrows = getattr(storer, "nrows", None)
            if nrows is None:
                shape = getattr(storer, "shape", None)
                nrows = shape[0] if shape else None
    return None if nrows is None else int(nrows)


def iter_jets(
    path: str | Path,
    chunk_size: int = 8192,
    key: str = "table",
    skipped: Counter[str] | None = None,
) -> Iterator[ConstituentChunk]:
    """Stream a Top Tagging HDF5 file as jet chunks of at most ``chunk_size`` jets.

    Args:
        path: HDF5 file written by ``DataFrame.to_hdf``.
        chunk_size: rows read per step.
        key: pandas key of the DataFrame.
        skipped: counter updated in place with the skipped-jet counts (``zero_particles``,
            ``non_finite``).

    Returns:
        Iterator over chunks (bad jets removed; a chunk may be shorter than ``chunk_size``).

    Raises:
        DataError: missing/empty/non-HDF5/truncated file, missing key or columns, non-numeric
            columns, or labels other than 0/1.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    path = Path(path)
    total: Counter[str] = Counter()
    try:
        with open_store(path) as store:
            head = _check_key(store, path, key)
            e_cols, px_cols, py_cols, pz_cols, has_label = _layout(head, path, key)
            index = {n: head.columns.get_loc(n) for n in (*e_cols, *px_cols, *py_cols, *pz_cols)}
            pos = [
                np.array([index[n] for n in group]) for group in (e_cols, px_cols, py_cols, pz_cols)
            ]
            start = 0
            while True:
                with _hdf_errors(path):
                    df = store.select(key, start=start, stop=start + chunk_size)
                if len(df) == 0:
                    break
                chunk = _to_chunk(df, pos, has_label, path, key, start)
                start += len(df)
                chunk = sanitize_jets(chunk, total, skipped)
                if len(chunk):
                    chunk.jet = jet_scalars_from_particles(chunk)
                    yield chunk
                if len(df) < chunk_size:
                    break
    finally:
        if sum(total.values()):
            log.warning(
                "%s: skipped %s",
                path,
                ", ".join(f"{v} jets ({k})" for k, v in sorted(total.items()) if v),
            )


def _to_chunk(
    df: Any, pos: list[np.ndarray], has_label: bool, path: Path, key: str, start: int
) -> ConstituentChunk:
    """Convert one block of rows to a chunk, vectorised: [N, slots] arrays -> masked flatten."""
    e, px, py, pz = (df.iloc[:, p].to_numpy(dtype=np.float32) for p in pos)  # [N, S] each
    present = (e != 0) | (px != 0) | (py != 0) | (pz != 0)  # NaN != 0, so NaN slots count
    counts = present.sum(axis=1).astype(np.int64)
    n = len(df)
    if has_label:
        raw = df[LABEL_COLUMN].to_numpy()
        ok = (raw == 0) | (raw == 1)
        if not ok.all():
            bad = sorted({str(v) for v in raw[~ok][:5]})
            raise DataError(
                path,
                f"column '{LABEL_COLUMN}' in key '{key}' has values other "
                f"than 0/1 (rows from {start}: {', '.join(bad)})",
            )
        label = raw.astype(np.int64)
    else:
        label = np.full(n, -1, dtype=np.int64)
    n_part = int(counts.sum())
    return ConstituentChunk(
        counts=counts,
        px=px[present],
        py=py[present],
        pz=pz[present],
        energy=e[present],
        charge=np.zeros(n_part, dtype=np.int8),
        type_id=np.zeros(n_part, dtype=np.int32),
        label=label,
    )


def schema(path: str | Path, key: str = "table") -> dict[str, Any]:
    """Summary of the stored layout (for ``inspect``).

    Args:
        path: HDF5 file.
        key: pandas key.

    Returns:
        ``{"key", "storage" ("table"/"fixed"), "particle_slots", "columns" (the non-slot
        columns with dtypes)}``.
    """
    path = Path(path)
    with open_store(path) as store:
        head = _check_key(store, path, key)
        e_cols, px_cols, py_cols, pz_cols, _ = _layout(head, path, key)
        with _hdf_errors(path):
            storage = "table" if store.get_storer(key).is_table else "fixed"
    slot_cols = {*e_cols, *px_cols, *py_cols, *pz_cols}
    return {
        "key": key,
        "storage": storage,
        "particle_slots": len(e_cols),
        "columns": {str(c): str(t) for c, t in head.dtypes.items() if c not in slot_cols},
    }


@register
class TopTaggingReader(Reader):
    """Top Tagging reference dataset: an HDF5 file written by pandas."""

    name = "toptagging"
    particle_id = False

    def detect(self, path: Path) -> bool:
        """HDF5 magic bytes (see :meth:`Reader.detect`)."""
        return file_head(path).startswith(HDF5_MAGIC)

    def classes(self, path: Path) -> list[str]:
        """:data:`CLASSES` (see :meth:`Reader.classes`)."""
        return list(CLASSES)

    def count(self, path: Path) -> int | None:
        """:func:`num_jets` (see :meth:`Reader.count`)."""
        return num_jets(path)

    def iter_chunks(
        self, path: Path, chunk_size: int = 8192, skipped: Counter[str] | None = None
    ) -> Iterator[ConstituentChunk]:
        """:func:`iter_jets` (see :meth:`Reader.iter_chunks`)."""
        return iter_jets(path, chunk_size=chunk_size, skipped=skipped)

    def schema(self, path: Path) -> dict[str, Any]:
        """:func:`schema` (see :meth:`Reader.schema`)."""
        return schema(path)
