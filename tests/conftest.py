"""Shared fixtures that write small files in the foreign schemas and in the canonical format.

Each fixture is a factory: call it with options, get a :class:`Written` with the path and the jets
that were written (in file order, bad jets included) so tests can compare exactly.
Heavy imports (uproot, pandas, torch via the schema) happen inside the factories.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

#: particle type index -> (flag branch, pid for charge +1, charged?)
_TYPES = (
    ("part_isChargedHadron", 211, True),
    ("part_isNeutralHadron", 130, False),
    ("part_isPhoton", 22, False),
    ("part_isElectron", -11, True),
    ("part_isMuon", -13, True),
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``gpu`` on a machine without CUDA (torch imported only then)."""
    gpu = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is false)")
    for item in gpu:
        item.add_marker(skip)


@dataclass
class Written:
    """A file written by a fixture and the jets it holds.

    Attributes:
        path: the file or shard directory.
        jets: everything written, in order, bad jets included, as a ``ConstituentChunk`` (for
            JetClass: ``jet['jet_mass']`` is the stored ``jet_sdmass``; type_id is the expected
            mapping).
        good: boolean ``[N]`` mask of the jets a reader should keep.
    """

    path: Path
    jets: Any
    good: np.ndarray

    @property
    def kept(self) -> Any:
        """The jets a reader should yield (bad ones removed)."""
        return self.jets.take(np.flatnonzero(self.good))


def _particles(
    rng: np.random.Generator,
    n: int,
    max_particles: int,
    empty: Iterable[int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    counts = rng.integers(1, max_particles + 1, size=n).astype(np.int64)
    counts[list(empty)] = 0
    tot = int(counts.sum())
    pt = rng.exponential(20.0, tot) + 0.5
    phi = rng.uniform(-np.pi, np.pi, tot)
    eta = rng.normal(0.0, 1.0, tot)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + 0.14**2)
    return (
        counts,
        px.astype(np.float32),
        py.astype(np.float32),
        pz.astype(np.float32),
        e.astype(np.float32),
    )


def _poison(
    counts: np.ndarray, arrays: list[np.ndarray], nan_jets: Iterable[int], inf_jets: Iterable[int]
) -> None:
    offsets = np.concatenate(([0], np.cumsum(counts)))
    for j in nan_jets:
        arrays[0][offsets[j]] = np.nan  # px of the first particle
    for j in inf_jets:
        arrays[3][offsets[j + 1] - 1] = np.inf  # energy of the last particle


@pytest.fixture
def jetclass_root(tmp_path: Path) -> Callable[..., Written]:
    """Factory writing a JetClass-schema ROOT file (a TTree) with uproot.

    Options: ``name``, ``n`` jets, ``seed``, ``tree`` name, ``nan_jets`` / ``inf_jets`` /
    ``empty_jets`` (indices to poison), ``drop`` (branch names not to write), ``labels`` (False:
    no label branches), ``basket`` (entries per ROOT basket), ``max_particles``.
    """

    def make(
        name: str = "jets.root",
        n: int = 40,
        seed: int = 0,
        *,
        tree: str = "tree",
        nan_jets: Iterable[int] = (),
        inf_jets: Iterable[int] = (),
        empty_jets: Iterable[int] = (),
        drop: Iterable[str] = (),
        labels: bool = True,
        basket: int = 64,
        max_particles: int = 30,
    ) -> Written:
        import awkward as ak
        import uproot

        from colliderfm.data.schema import JETCLASS_CLASSES, ConstituentChunk

        nan_jets, inf_jets, empty_jets = list(nan_jets), list(inf_jets), list(empty_jets)
        rng = np.random.default_rng(seed)
        counts, px, py, pz, e = _particles(rng, n, max_particles, empty_jets)
        _poison(counts, [px, py, pz, e], nan_jets, inf_jets)
        tot = int(counts.sum())
        kind = rng.integers(0, len(_TYPES), tot)
        charged = np.array([t[2] for t in _TYPES])[kind]
        charge = np.where(charged, rng.choice([-1, 1], tot), 0).astype(np.float32)
        pid = np.array([t[1] for t in _TYPES])[kind] * np.where(charged, charge, 1)
        label = rng.integers(0, len(JETCLASS_CLASSES), n) if labels else np.full(n, -1)
        jet = {
            k: rng.uniform(1.0, 500.0, n).astype(np.float32)
            for k in ("jet_pt", "jet_energy", "jet_sdmass")
        }
        jet["jet_eta"] = rng.uniform(-2, 2, n).astype(np.float32)
        jet["jet_phi"] = rng.uniform(-np.pi, np.pi, n).astype(np.float32)
        branches: dict[str, Any] = {
            "part_px": px,
            "part_py": py,
            "part_pz": pz,
            "part_energy": e,
            "part_deta": rng.normal(0, 0.3, tot).astype(np.float32),
            "part_dphi": rng.normal(0, 0.3, tot).astype(np.float32),
            "part_charge": charge,
        }
        for i, (flag, _, _) in enumerate(_TYPES):
            branches[flag] = (kind == i).astype(np.float32)
        branches = {k: ak.unflatten(v, counts) for k, v in branches.items()}
        branches.update(jet)
        if labels:
            for i, cls in enumerate(JETCLASS_CLASSES):
                branches[f"label_{cls}"] = label == i
        drop = set(drop)
        branches = {k: v for k, v in branches.items() if k not in drop}
        path = tmp_path / name
        with uproot.recreate(path) as f:
            f.mktree(
                tree,
                {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in branches.items()},
            )
            for s in range(0, n, basket):
                f[tree].extend({k: v[s : s + basket] for k, v in branches.items()})
        jets = ConstituentChunk(
            counts=counts,
            px=px,
            py=py,
            pz=pz,
            energy=e,
            charge=charge.astype(np.int8),
            type_id=pid.astype(np.int32),
            label=label.astype(np.int64),
            jet={
                "jet_pt": jet["jet_pt"],
                "jet_eta": jet["jet_eta"],
                "jet_phi": jet["jet_phi"],
                "jet_energy": jet["jet_energy"],
                "jet_mass": jet["jet_sdmass"],
            },
        )
        good = counts > 0
        good[nan_jets + inf_jets] = False
        return Written(path, jets, good)

    return make


@pytest.fixture
def toptagging_h5(tmp_path: Path) -> Callable[..., Written]:
    """Factory writing a Top Tagging-schema HDF5 file with ``DataFrame.to_hdf``.

    Options: ``name``, ``n`` jets, ``seed``, ``slots`` (particle slots, 200 in the real files),
    ``key``, ``fmt`` ("table" or "fixed"), ``nan_jets`` / ``inf_jets`` / ``empty_jets``, ``drop``
    (columns not to write), ``labels`` (False: no ``is_signal_new``), ``max_particles``.
    """

    def make(
        name: str = "jets.h5",
        n: int = 40,
        seed: int = 0,
        *,
        slots: int = 200,
        key: str = "table",
        fmt: str = "table",
        nan_jets: Iterable[int] = (),
        inf_jets: Iterable[int] = (),
        empty_jets: Iterable[int] = (),
        drop: Iterable[str] = (),
        labels: bool = True,
        max_particles: int = 30,
    ) -> Written:
        import pandas as pd

        from colliderfm.data.schema import ConstituentChunk

        nan_jets, inf_jets, empty_jets = list(nan_jets), list(inf_jets), list(empty_jets)
        rng = np.random.default_rng(seed)
        counts, px, py, pz, e = _particles(rng, n, min(max_particles, slots), empty_jets)
        _poison(counts, [px, py, pz, e], nan_jets, inf_jets)
        label = rng.integers(0, 2, n)
        grid = np.arange(slots)[None, :] < counts[:, None]  # [N, S] slot holds a particle
        cols: dict[str, np.ndarray] = {}
        padded: dict[str, np.ndarray] = {}
        for c, v in (("E", e), ("PX", px), ("PY", py), ("PZ", pz)):
            a = np.zeros((n, slots), dtype=np.float64)
            a[grid] = v
            padded[c] = a
        for i in range(slots):
            for c in ("E", "PX", "PY", "PZ"):
                cols[f"{c}_{i}"] = padded[c][:, i]
        cols["truthE"] = rng.uniform(500, 700, n)
        cols["ttv"] = np.zeros(n, dtype=np.int64)
        if labels:
            cols["is_signal_new"] = label.astype(np.int64)
        drop = set(drop)
        df = pd.DataFrame({k: v for k, v in cols.items() if k not in drop})
        path = tmp_path / name
        df.to_hdf(path, key=key, format=fmt)
        tot = int(counts.sum())
        jets = ConstituentChunk(
            counts=counts,
            px=px,
            py=py,
            pz=pz,
            energy=e,
            charge=np.zeros(tot, np.int8),
            type_id=np.zeros(tot, np.int32),
            label=(label if labels else np.full(n, -1)).astype(np.int64),
        )
        good = counts > 0
        good[nan_jets + inf_jets] = False
        return Written(path, jets, good)

    return make


@pytest.fixture
def small_shards(tmp_path: Path) -> Callable[..., Written]:
    """Factory writing a small canonical shard directory with ``ShardWriter``.

    Options: ``name``, ``n`` jets, ``seed``, ``rows_per_shard``, ``classes`` (names; labels are
    drawn from ``range(len(classes))``), ``source`` (manifest source dict).
    """

    def make(
        name: str = "shards",
        n: int = 300,
        seed: int = 0,
        *,
        rows_per_shard: int = 100,
        classes: tuple[str, ...] = ("QCD", "Tbqq"),
        source: dict[str, Any] | None = None,
    ) -> Written:
        from synth import synthetic_jets

        from colliderfm.data.shards import ShardWriter

        jets = synthetic_jets(n, seed=seed, n_classes=len(classes))
        path = tmp_path / name
        with ShardWriter(
            path,
            "jets",
            list(classes),
            source or {"generator": "synthetic"},
            rows_per_shard=rows_per_shard,
        ) as w:
            w.write_chunk(jets)
        return Written(path, jets, np.ones(n, dtype=bool))

    return make


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    """Tiny test models run fastest (and most predictably on shared CI cores) on one thread."""
    import torch

    torch.set_num_threads(1)
