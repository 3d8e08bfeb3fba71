"""JetClass ROOT files (tree ``tree``) as :class:`ConstituentChunk` blocks, in bounded memory.

Mapping to the canonical schema:

* ``part_px/py/pz/energy`` (GeV) -> four-momenta. Required.
* ``part_charge`` -> charge (rounded to int8); missing -> 0.
* ``part_isChargedHadron/NeutralHadron/Photon/Electron/Muon`` -> representative PDG id via
  :func:`~colliderfm.data.readers.common.pid_from_flags`; a missing flag counts as 0, so with no
  flags at all pid is 0 (unknown).
* ``jet_pt/eta/phi/energy`` -> the same names; **``jet_sdmass`` -> ``jet_mass``** (JetClass stores
  the soft-drop mass, which is what taggers use). A missing jet branch is computed from the
  constituents instead (for ``jet_mass``: the constituent invariant mass).
* one-hot ``label_<class>`` for the names in :data:`CLASSES` -> ``label`` = index in
  :data:`CLASSES` of the set branch (argmax over the branches present, so a file with a subset of
  the label branches keeps JetClass indices). A jet with no label set, or a file without any label
  branch, gets ``label = -1`` (unlabelled).

``part_deta/dphi`` are not read: they are recomputed from the four-vectors downstream. Bad jets
(zero particles, NaN/inf) are skipped and counted per the policy in
:mod:`colliderfm.data.readers.common`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from colliderfm.data.readers import rootfile
from colliderfm.data.readers.base import ROOT_MAGIC, Reader, file_head, register
from colliderfm.data.readers.common import pid_from_flags, sanitize_jets
from colliderfm.data.schema import JETCLASS_CLASSES, ConstituentChunk, jet_scalars_from_particles
from colliderfm.errors import DataError, require

log = logging.getLogger(__name__)

#: Class names; ``label == i`` means ``CLASSES[i]``.
CLASSES: tuple[str, ...] = JETCLASS_CLASSES

REQUIRED: tuple[str, ...] = ("part_px", "part_py", "part_pz", "part_energy")
FLAGS: tuple[str, ...] = (
    "part_isChargedHadron",
    "part_isNeutralHadron",
    "part_isPhoton",
    "part_isElectron",
    "part_isMuon",
)
PARTICLE_BRANCHES: tuple[str, ...] = (*REQUIRED, "part_charge", *FLAGS)
#: JetClass jet branch -> canonical jet scalar.
JET_BRANCHES: dict[str, str] = {
    "jet_pt": "jet_pt",
    "jet_eta": "jet_eta",
    "jet_phi": "jet_phi",
    "jet_energy": "jet_energy",
    "jet_sdmass": "jet_mass",
}
LABEL_BRANCHES: tuple[str, ...] = tuple(f"label_{c}" for c in CLASSES)


def num_jets(path: str | Path, tree: str = "tree") -> int:
    """Number of entries (jets) in the tree, without reading any data.

    Args:
        path: JetClass ROOT file.
        tree: tree name.

    Returns:
        Entry count.
    """
    with rootfile.open_root(path) as f:
        t = rootfile.get_tree(f, path, tree)
        with rootfile.read_errors(path):
            return int(t.num_entries)


def iter_jets(
    path: str | Path,
    chunk_size: int = 8192,
    tree: str = "tree",
    skipped: Counter[str] | None = None,
) -> Iterator[ConstituentChunk]:
    """Stream a JetClass ROOT file as jet chunks of at most ``chunk_size`` jets.

    Only ``chunk_size`` entries (plus the ROOT baskets they live in) are in memory at a time.

    Args:
        path: JetClass ROOT file.
        chunk_size: entries read per step.
        tree: tree name.
        skipped: counter updated in place with the skipped-jet counts (``zero_particles``,
            ``non_finite``).

    Returns:
        Iterator over chunks (bad jets removed; a chunk may be shorter than ``chunk_size``).

    Raises:
        DataError: missing/empty/non-ROOT/truncated file, missing tree or required branches,
            non-numeric branches, or inconsistent particle counts.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    path = Path(path)
    ak = require("awkward", "root")
    total: Counter[str] = Counter()
    try:
        with rootfile.open_root(path) as f:
            t = rootfile.get_tree(f, path, tree)
            present = set(rootfile.branch_names(t, path))
            missing = [b for b in REQUIRED if b not in present]
            if missing:
                raise DataError(
                    path,
                    f"tree '{tree}' is missing branch(es) {', '.join(missing)} "
                    f"(JetClass needs {', '.join(REQUIRED)})",
                )
            scalars = [b for b in (*JET_BRANCHES, *LABEL_BRANCHES) if b in present]
            branches = [b for b in PARTICLE_BRANCHES if b in present] + scalars
            rootfile.check_numeric_branches(t, path, branches)
            with rootfile.read_errors(path):
                steps = t.iterate(branches, step_size=chunk_size, library="ak", how=dict)
            start = 0
            while True:
                with rootfile.read_errors(path):
                    try:
                        arrays = next(steps)
                    except StopIteration:
                        break
                chunk = _to_chunk(ak, arrays, path, tree, start)
                start += len(chunk)
                chunk = sanitize_jets(chunk, total, skipped)
                if len(chunk):
                    _fill_jet_scalars(chunk)
                    yield chunk
    finally:
        if sum(total.values()):
            log.warning(
                "%s: skipped %s",
                path,
                ", ".join(f"{v} jets ({k})" for k, v in sorted(total.items()) if v),
            )


def _to_chunk(
    ak: Any, arrays: dict[str, Any], path: Path, tree: str, start: int
) -> ConstituentChunk:
    """Convert one ``iterate`` step (dict of awkward arrays) to a chunk, without Python loops."""
    where = f"tree '{tree}' entries {start}-{start + len(arrays['part_px']) - 1}"
    counts, flat = None, {}
    for name in PARTICLE_BRANCHES:
        if name not in arrays:
            continue
        c, v = _jagged(ak, arrays[name], name, path, tree)
        if counts is None:
            counts = c
        elif not np.array_equal(c, counts):
            raise DataError(
                path, f"branches part_px and {name} have different particle counts in {where}"
            )
        flat[name] = v
    assert counts is not None
    n_part = int(counts.sum())
    zeros = np.zeros(n_part, dtype=np.float32)
    charge = np.nan_to_num(flat.get("part_charge", zeros), nan=0.0, posinf=0.0, neginf=0.0)
    flags = [flat.get(name, zeros) for name in FLAGS]
    return ConstituentChunk(
        counts=counts,
        px=flat["part_px"].astype(np.float32, copy=False),
        py=flat["part_py"].astype(np.float32, copy=False),
        pz=flat["part_pz"].astype(np.float32, copy=False),
        energy=flat["part_energy"].astype(np.float32, copy=False),
        charge=np.rint(charge).astype(np.int8),
        type_id=pid_from_flags(charge, *flags),
        label=_labels(ak, arrays, path, tree, len(counts)),
        jet={
            canon: _scalar(ak, arrays[b], b, path, tree).astype(np.float32, copy=False)
            for b, canon in JET_BRANCHES.items()
            if b in arrays
        },
    )


def _fill_jet_scalars(chunk: ConstituentChunk) -> None:
    """Compute jet scalars the file lacks from the constituents (chunk must have no empty jet)."""
    if len(chunk.jet) < len(JET_BRANCHES):
        computed = jet_scalars_from_particles(chunk)
        chunk.jet = {k: chunk.jet.get(k, computed[k]) for k in computed}


def _labels(ak: Any, arrays: dict[str, Any], path: Path, tree: str, n: int) -> np.ndarray:
    cols = [(i, b) for i, b in enumerate(LABEL_BRANCHES) if b in arrays]
    if not cols:
        return np.full(n, -1, dtype=np.int64)
    onehot = np.stack(
        [_scalar(ak, arrays[b], b, path, tree).astype(np.float32, copy=False) for _, b in cols],
        axis=1,
    )  # [N, L]
    index = np.array([i for i, _ in cols], dtype=np.int64)
    label = index[np.argmax(onehot, axis=1)]
    return np.where(onehot.max(axis=1) > 0, label, -1).astype(np.int64)


def _numeric_primitive(ak: Any, t: Any) -> bool:
    return (
        isinstance(t, ak.types.NumpyType)
        and t.parameter("__array__") is None
        and t.primitive not in ("datetime64", "timedelta64")
    )


def _jagged(ak: Any, arr: Any, name: str, path: Path, tree: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-particle branch -> (counts [N] int64, flat values)."""
    t = arr.type.content
    if not (
        isinstance(t, (ak.types.ListType, ak.types.RegularType))
        and t.parameter("__array__") is None
        and _numeric_primitive(ak, t.content)
    ):
        raise DataError(
            path,
            f"branch '{name}' in tree '{tree}' is not a per-particle list of numbers (type {t})",
        )
    counts = np.asarray(ak.to_numpy(ak.num(arr, axis=1)), dtype=np.int64)
    return counts, np.asarray(ak.to_numpy(ak.flatten(arr, axis=1)))


def _scalar(ak: Any, arr: Any, name: str, path: Path, tree: str) -> np.ndarray:
    """Per-jet branch -> [N] values."""
    t = arr.type.content
    if not _numeric_primitive(ak, t):
        raise DataError(
            path, f"branch '{name}' in tree '{tree}' is not one number per jet (type {t})"
        )
    return np.asarray(ak.to_numpy(arr))


def schema(path: str | Path, tree: str = "tree") -> dict[str, str]:
    """Branch names and C++ types of the tree (for ``inspect``).

    Args:
        path: ROOT file.
        tree: tree name.

    Returns:
        ``{branch: typename}`` in file order.
    """
    with rootfile.open_root(path) as f:
        t = rootfile.get_tree(f, path, tree)
        with rootfile.read_errors(path):
            return {k: str(t[k].typename) for k in t.keys(recursive=False)}


@register
class JetClassReader(Reader):
    """JetClass ROOT files: a ROOT file without an ``Events`` tree (that is NanoAOD)."""

    name = "jetclass"

    def detect(self, path: Path) -> bool:
        """ROOT magic bytes and no ``Events`` tree (see :meth:`Reader.detect`)."""
        return file_head(path).startswith(ROOT_MAGIC) and "Events" not in rootfile.tree_names(path)

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
