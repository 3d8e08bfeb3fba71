"""Validation shared by every jet reader: the documented skip policy for bad jets.

Policy (documented in README): jets with zero particles and jets with any non-finite particle
value (NaN/inf) are *skipped* and counted; the counts are logged and stored in the manifest
under ``skipped``. Everything else that is wrong with a file is an error naming the file.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from colliderfm.data.schema import JetChunk

log = logging.getLogger(__name__)


def sanitize_jets(chunk: JetChunk, *counters: Counter[str] | None) -> JetChunk:
    """Drop zero-particle jets and jets with non-finite values, counting each reason.

    Args:
        chunk: jets to check.
        counters: counters updated in place with the non-zero ``zero_particles`` /
            ``non_finite`` counts (None entries are ignored).

    Returns:
        The chunk without the bad jets (the same object if none were bad).
    """
    n = len(chunk)
    if n == 0:
        return chunk
    flat_ok = (
        np.isfinite(chunk.px)
        & np.isfinite(chunk.py)
        & np.isfinite(chunk.pz)
        & np.isfinite(chunk.energy)
    )
    jet_ok = np.ones(n, dtype=bool)
    if not flat_ok.all():
        bad_jet = np.repeat(np.arange(n), chunk.counts)[~flat_ok]
        jet_ok[bad_jet] = False
    for v in chunk.jet.values():
        jet_ok &= np.isfinite(v)
    nonfinite = ~jet_ok
    empty = chunk.counts == 0
    found = {"non_finite": int((nonfinite & ~empty).sum()), "zero_particles": int(empty.sum())}
    for counter in counters:
        if counter is not None:
            counter.update({k: v for k, v in found.items() if v})
    keep = jet_ok & ~empty
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
