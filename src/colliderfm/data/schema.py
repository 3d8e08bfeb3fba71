"""Canonical in-memory data types shared by generators, readers, writers and the loader.

Two levels:

* :class:`ConstituentChunk` - a jagged block of sets of constituents (the particles of jets, or
  the reconstructed objects of events) as flat NumPy arrays plus per-set counts. Every reader
  yields these and the shard writer consumes them, so a format is one function away from shards.
  Events are read into the same type (one "particle" per reconstructed object, ``type_id`` = its
  :class:`ObjectType`; see :func:`objects_to_chunk`), so the loader and training code need no
  event-specific path.
* :class:`Batch` - a padded, masked torch batch ready for a model: ``features [B,P,F]``,
  ``mask [B,P]`` (True = real particle), ``labels [B]``, ``weights [B]``, plus the raw four-vectors
  ``vectors [B,P,4]`` (px, py, pz, E in GeV) that augmentations and pair features need.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch

SCHEMA_VERSION = 1
#: File name of a shard directory's manifest (written by the shard writer, read by the reader).
MANIFEST = "manifest.json"
#: Rows per Parquet row group in canonical shards (the stream's unit of work).
ROW_GROUP = 1024

#: JetClass label names in JetClass order; a generated 10-class set uses the same names.
JETCLASS_CLASSES: tuple[str, ...] = (
    "QCD",
    "Hbb",
    "Hcc",
    "Hgg",
    "H4q",
    "Hqql",
    "Zqq",
    "Wqq",
    "Tbqq",
    "Tbl",
)

#: Scalar per-jet columns of the canonical shard format (names follow JetClass).
JET_SCALARS: tuple[str, ...] = ("jet_pt", "jet_eta", "jet_phi", "jet_energy", "jet_mass")

#: Per-particle list columns of the canonical shard format.
PART_COLUMNS: tuple[str, ...] = (
    "part_px",
    "part_py",
    "part_pz",
    "part_energy",
    "part_charge",
    "part_pid",
)


class ObjectType(enum.IntEnum):
    """Types of reconstructed objects in event-level data (0 is reserved for padding/mask)."""

    ELECTRON = 1
    MUON = 2
    BJET = 3
    JET = 4
    MET = 5


#: Class names of event-level data: label 0 = semileptonic ttbar, 1 = heavy 2HDM Higgs -> ttbar.
EVENT_CLASSES: tuple[str, ...] = ("ttbar", "h2hdm")

#: Per-object list columns of canonical event shards (plus the scalar ``label``). Objects are
#: stored pT-ordered; MET has ``eta = 0`` and ``energy = pt``; ``obj_type`` is :class:`ObjectType`.
EVENT_COLUMNS: tuple[str, ...] = ("obj_pt", "obj_eta", "obj_phi", "obj_energy", "obj_type")


@dataclass
class ConstituentChunk:
    """A block of ``N`` sets of constituents in jagged form: jets (their particles) or events
    (their reconstructed objects).

    Attributes:
        counts: ``[N]`` int64 number of constituents per jet or event.
        px, py, pz, energy: ``[sum(counts)]`` float32 constituent four-momenta in GeV.
        charge: ``[sum(counts)]`` int8 electric charge (0 where unknown; 0 for event objects).
        type_id: ``[sum(counts)]`` int32 constituent type: the PDG id of a particle (0 where
            unknown), the :class:`ObjectType` of an event object.
        jet: per-jet float32 scalars keyed by :data:`JET_SCALARS` (none for events).
        label: ``[N]`` int64 class index (``-1`` = unlabelled).
    """

    counts: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    energy: np.ndarray
    charge: np.ndarray
    type_id: np.ndarray
    label: np.ndarray
    jet: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.counts.shape[0])

    @property
    def offsets(self) -> np.ndarray:
        """``[N+1]`` int64 start offsets of each jet in the flat arrays."""
        out = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(self.counts, out=out[1:])
        return out

    def take(self, index: np.ndarray) -> ConstituentChunk:
        """Return the jets at ``index`` (any order), vectorised.

        Args:
            index: ``[M]`` integer indices into this chunk.

        Returns:
            A new chunk with ``M`` jets.
        """
        index = np.asarray(index, dtype=np.int64)
        offsets = self.offsets
        counts = self.counts[index]
        starts = offsets[index]
        flat = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
        flat = flat + np.arange(int(counts.sum()), dtype=np.int64)
        return ConstituentChunk(
            counts=counts,
            px=self.px[flat],
            py=self.py[flat],
            pz=self.pz[flat],
            energy=self.energy[flat],
            charge=self.charge[flat],
            type_id=self.type_id[flat],
            label=self.label[index],
            jet={k: v[index] for k, v in self.jet.items()},
        )

    @staticmethod
    def concat(chunks: list[ConstituentChunk]) -> ConstituentChunk:
        """Concatenate chunks (jet scalars kept only where every chunk has them).

        Args:
            chunks: non-empty list of chunks.

        Returns:
            One chunk holding all jets in order.
        """
        keys = set(chunks[0].jet)
        for c in chunks[1:]:
            keys &= set(c.jet)
        cat = np.concatenate
        return ConstituentChunk(
            counts=cat([c.counts for c in chunks]),
            px=cat([c.px for c in chunks]),
            py=cat([c.py for c in chunks]),
            pz=cat([c.pz for c in chunks]),
            energy=cat([c.energy for c in chunks]),
            charge=cat([c.charge for c in chunks]),
            type_id=cat([c.type_id for c in chunks]),
            label=cat([c.label for c in chunks]),
            jet={k: cat([c.jet[k] for c in chunks]) for k in sorted(keys)},
        )


def jet_scalars_from_particles(chunk: ConstituentChunk) -> dict[str, np.ndarray]:
    """Compute ``jet_pt, jet_eta, jet_phi, jet_energy, jet_mass`` as the sum of constituents.

    Args:
        chunk: jets in jagged form.

    Returns:
        Dict of ``[N]`` float32 arrays.
    """
    from colliderfm.physics.kinematics import np_eta, np_phi

    seg = chunk.offsets[:-1]
    n = len(chunk)

    def ssum(a: np.ndarray) -> np.ndarray:
        if n == 0:
            return np.zeros(0, dtype=np.float64)
        out = np.add.reduceat(a.astype(np.float64), np.minimum(seg, max(a.size - 1, 0)))
        return np.where(chunk.counts > 0, out, 0.0)

    px, py, pz, e = ssum(chunk.px), ssum(chunk.py), ssum(chunk.pz), ssum(chunk.energy)
    pt = np.hypot(px, py)
    m2 = e * e - px * px - py * py - pz * pz
    return {
        "jet_pt": pt.astype(np.float32),
        "jet_eta": np_eta(px, py, pz).astype(np.float32),
        "jet_phi": np_phi(px, py).astype(np.float32),
        "jet_energy": e.astype(np.float32),
        "jet_mass": np.sqrt(np.clip(m2, 0.0, None)).astype(np.float32),
    }


def objects_to_chunk(
    counts: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    energy: np.ndarray,
    obj_type: np.ndarray,
    label: np.ndarray,
) -> ConstituentChunk:
    """Events as a :class:`ConstituentChunk` whose constituents are the reconstructed objects.

    ``px = pt cos(phi)``, ``py = pt sin(phi)``, ``pz = pt sinh(eta)`` (MET: ``eta = 0`` so
    ``pz = 0``), the stored energy; ``type_id`` holds the :class:`ObjectType` value, ``charge``
    is 0, and there are no jet scalars. Everything downstream (loader, subsets, training) then
    works on events unchanged.

    Args:
        counts: ``[N]`` objects per event.
        pt, eta, phi, energy: ``[sum(counts)]`` object kinematics (GeV, rad).
        obj_type: ``[sum(counts)]`` ObjectType values.
        label: ``[N]`` class index (``-1`` = unlabelled).

    Returns:
        The events as a chunk (float32 four-momenta computed in float64).
    """
    pt64, eta64, phi64 = (np.asarray(a, dtype=np.float64) for a in (pt, eta, phi))
    return ConstituentChunk(
        counts=np.asarray(counts, dtype=np.int64),
        px=(pt64 * np.cos(phi64)).astype(np.float32),
        py=(pt64 * np.sin(phi64)).astype(np.float32),
        pz=(pt64 * np.sinh(eta64)).astype(np.float32),
        energy=np.asarray(energy, dtype=np.float32),
        charge=np.zeros(pt64.shape[0], dtype=np.int8),
        type_id=np.asarray(obj_type, dtype=np.int32),
        label=np.asarray(label, dtype=np.int64),
    )


@dataclass
class Batch:
    """A padded, masked batch for the models.

    Attributes:
        features: ``[B, P, F]`` float32 model inputs (zero at padding).
        mask: ``[B, P]`` bool, True for real particles/objects.
        labels: ``[B]`` int64 class index (``-1`` = unlabelled).
        weights: ``[B]`` float32 per-example weight.
        vectors: ``[B, P, 4]`` float32 (px, py, pz, E) in GeV (events: of the objects), or None.
        charge: ``[B, P]`` float32 charge, or None.
        type_id: ``[B, P]`` int64 PDG id (jets) or :class:`ObjectType` (events), or None.
    """

    features: torch.Tensor
    mask: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor
    vectors: torch.Tensor | None = None
    charge: torch.Tensor | None = None
    type_id: torch.Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = True) -> Batch:
        """Move every tensor to ``device`` (tensors already there are not copied).

        Args:
            device: target device.
            non_blocking: asynchronous host-to-device copies (they overlap compute when the
                batch is in pinned memory). Copies to the CPU are always synchronous, so the
                result can be read at once.

        Returns:
            A new batch on ``device``.
        """
        dev = torch.device(device)
        nb = non_blocking and dev.type != "cpu"
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            kw[f.name] = v.to(dev, non_blocking=nb) if isinstance(v, torch.Tensor) else v
        return replace(self, **kw)

    def pin_memory(self) -> Batch:
        """Every tensor in page-locked memory (the DataLoader calls this with ``pin_memory``).

        Returns:
            A new batch whose tensors are pinned (a CUDA machine is needed).
        """
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            kw[f.name] = v.pin_memory() if isinstance(v, torch.Tensor) else v
        return replace(self, **kw)

    def __len__(self) -> int:
        return int(self.mask.shape[0])
