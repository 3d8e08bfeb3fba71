"""Validation shared by every jet reader: the documented skip policy for bad jets.

Policy (documented in README): jets with zero particles and jets with any non-finite particle
value (NaN/inf) are *skipped* and counted; the counts are logged and stored in the manifest
under ``skipped``. Events are checked the same way, their objects standing for the particles
(keys ``non_finite`` and ``zero_objects``). Everything else that is wrong with a file is an
error naming the file.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from colliderfm.data.schema import ConstituentChunk

log = logging.getLogger(__name__)


def good_jets(
    chunk: ConstituentChunk, *counters: Counter[str] | None, empty: str = "zero_particles"
) -> np.ndarray:
    """Which jets pass the skip policy (vectorised), counting the others by reason.

    Args:
        chunk: jets (or events, whose particles are the objects) to check.
        counters: counters updated in place with the non-zero ``non_finite`` / ``empty`` counts
            (None entries are ignored).
        empty: counter key of jets without particles (``"zero_objects"`` for events).

    Returns:
        ``[N]`` bool, True for jets to keep.
    """
    n = len(chunk)
    if n == 0:
        return np.ones(0, dtype=bool)
    jet_ok = np.ones(n, dtype=bool)
    for a in (chunk.px, chunk.py, chunk.pz, chunk.energy):
        fin = np.isfinite(a)
        if not fin.all():  # rare: only then map particles to their jets
            jet_ok[np.repeat(np.arange(n), chunk.counts)[~fin]] = False
    for v in chunk.jet.values():
        jet_ok &= np.isfinite(v)
    no_particles = chunk.counts == 0
    found = {"non_finite": int((~jet_ok & ~no_particles).sum()), empty: int(no_particles.sum())}
    for counter in counters:
        if counter is not None:
            counter.update({k: v for k, v in found.items() if v})
    return jet_ok & ~no_particles


def sanitize_jets(
    chunk: ConstituentChunk, *counters: Counter[str] | None, empty: str = "zero_particles"
) -> ConstituentChunk:
    """Drop zero-particle jets and jets with non-finite values, counting each reason.

    Args:
        chunk: jets to check (or events, whose particles are the objects).
        counters: counters updated in place with the non-zero ``zero_particles`` /
            ``non_finite`` counts (None entries are ignored).
        empty: counter key of jets without particles (``"zero_objects"`` for events).

    Returns:
        The chunk without the bad jets (the same object if none were bad).
    """
    keep = good_jets(chunk, *counters, empty=empty)
    if keep.all():
        return chunk
    return chunk.take(np.flatnonzero(keep))


def pid_from_flags(
    charge: np.ndarray,
    is_charged_hadron: np.ndarray,
    is_neutral_hadron: np.ndarray,
    is_photon: np.ndarray,
    is_electron: np.ndarray,
    is_muon: np.ndarray,
) -> np.ndarray:
    """Map JetClass-style particle-type flags to representative PDG ids.

    charged hadron -> +-211, neutral hadron -> 130, photon -> 22, electron -> -+11, muon -> -+13
    (the sign follows the PDG convention that e- is +11); no flag set -> 0 (unknown).

    Args:
        charge: flat charges.
        is_charged_hadron, is_neutral_hadron, is_photon, is_electron, is_muon: flat 0/1 flags.

    Returns:
        Flat int32 PDG ids.
    """
    q = np.sign(charge).astype(np.int32)
    pid = np.zeros(charge.shape, dtype=np.int32)
    pid = np.where(is_charged_hadron > 0.5, 211 * np.where(q == 0, 1, q), pid)
    pid = np.where(is_neutral_hadron > 0.5, 130, pid)
    pid = np.where(is_photon > 0.5, 22, pid)
    pid = np.where(is_electron > 0.5, -11 * np.where(q == 0, -1, q), pid)
    pid = np.where(is_muon > 0.5, -13 * np.where(q == 0, -1, q), pid)
    return pid.astype(np.int32)
