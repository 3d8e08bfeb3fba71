"""Truth matching of jets to decaying resonances, vectorised over a batch of Pythia events.

Works on a batch's event records flattened into arrays with *global* indices (mother/daughter
indices already shifted by each event's offset). For every resonance of the requested kind
(its last copy in the record, i.e. the one that decays), the decay tree is followed down: daughter
resonances (t, Z, W, H) are expanded through their own last copies, and the first copies of the
quarks, gluons and leptons produced in the decays are the "decay partons" (before final-state
radiation). Neutrinos are dropped. A jet is matched when the resonance and all of its decay
partons lie within ``dR < R`` of the jet axis (pseudorapidity-azimuth distance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from colliderfm.physics.kinematics import np_eta, np_phi

#: Absolute PDG ids that are expanded when following a decay tree.
RESONANCES = np.array([6, 23, 24, 25])
NEUTRINOS = np.array([12, 14, 16])
CHARGED_LEPTONS = np.array([11, 13, 15])


@dataclass
class Truth:
    """Resonances of one batch and their visible decay partons.

    Attributes:
        root_evt: ``[R]`` event index of each resonance (sorted).
        n_leptons: ``[R]`` number of charged leptons among its decay products.
        obj_owner: ``[M]`` resonance index of each object to match (sorted; the resonance itself
            and its visible decay partons).
        obj_eta, obj_phi: ``[M]`` object directions.
    """

    root_evt: np.ndarray
    n_leptons: np.ndarray
    obj_owner: np.ndarray
    obj_eta: np.ndarray
    obj_phi: np.ndarray


def expand_ranges(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Enumerate the integer ranges ``[starts[i], stops[i])`` without a Python loop.

    Args:
        starts: ``[K]`` range starts.
        stops: ``[K]`` range ends (exclusive, ``>= starts``).

    Returns:
        ``(owner, value)``: for each enumerated integer, the range it came from and its value.
    """
    counts = (stops - starts).astype(np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts
    value = np.arange(int(counts.sum()), dtype=np.int64) - first[owner] + starts[owner]
    return owner, value


def _last_copy(idx: np.ndarray, ids: np.ndarray, d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """Follow single-daughter copies of the same particle (recoil copies) to the last one."""
    idx = idx.copy()
    for _ in range(200):
        nxt = d1[idx]
        single = (nxt >= 0) & ((d2[idx] == nxt) | (d2[idx] < 0))
        step = single & (ids[np.maximum(nxt, 0)] == ids[idx])
        if not step.any():
            break
        idx[step] = nxt[step]
    return idx


def find_truth(
    ids: np.ndarray,
    d1: np.ndarray,
    d2: np.ndarray,
    p4: np.ndarray,
    evt: np.ndarray,
    root_ids: tuple[int, ...],
) -> Truth:
    """Find the resonances ``root_ids`` in a batch and collect the objects to match.

    Args:
        ids: ``[N]`` PDG ids of all record entries of the batch.
        d1, d2: ``[N]`` global indices of the first/last daughter (``-1`` for none).
        p4: ``[N, 4]`` (px, py, pz, E) in GeV.
        evt: ``[N]`` event index of each entry.
        root_ids: absolute PDG ids of the resonances to match.

    Returns:
        The resonances and their objects.
    """
    aid = np.abs(ids)
    has_copy = (d1 >= 0) & ((d2 == d1) | (d2 < 0)) & (ids[np.maximum(d1, 0)] == ids)
    roots = np.flatnonzero(np.isin(aid, root_ids) & ~has_copy)

    owners, leaves = [], []
    front_owner, front = np.arange(len(roots)), roots
    for _ in range(4):  # t -> W -> q q' and H -> W W* -> 4 partons need two levels
        if front.size == 0:
            break
        front = _last_copy(front, ids, d1, d2)
        lo = d1[front]
        hi = np.where(d2[front] >= lo, d2[front], lo)
        has = lo >= 0
        own, kid = expand_ranges(lo[has], hi[has] + 1)
        own = front_owner[has][own]
        is_res = np.isin(aid[kid], RESONANCES)
        owners.append(own[~is_res])
        leaves.append(kid[~is_res])
        front_owner, front = own[is_res], kid[is_res]

    leaf_owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
    leaf = np.concatenate(leaves) if leaves else np.zeros(0, np.int64)
    n_leptons = np.bincount(leaf_owner[np.isin(aid[leaf], CHARGED_LEPTONS)], minlength=len(roots))
    visible = ~np.isin(aid[leaf], NEUTRINOS)
    obj_owner = np.concatenate([np.arange(len(roots)), leaf_owner[visible]])
    obj = np.concatenate([_last_copy(roots, ids, d1, d2), leaf[visible]])
    order = np.argsort(obj_owner, kind="stable")
    obj_owner, obj = obj_owner[order], obj[order]
    px, py, pz = p4[obj, 0], p4[obj, 1], p4[obj, 2]
    return Truth(
        root_evt=evt[roots],
        n_leptons=n_leptons,
        obj_owner=obj_owner,
        obj_eta=np_eta(px, py, pz),
        obj_phi=np_phi(px, py),
    )


def match_jets(
    truth: Truth,
    jet_evt: np.ndarray,
    jet_eta: np.ndarray,
    jet_phi: np.ndarray,
    radius: float,
    n_leptons: int | None = None,
) -> np.ndarray:
    """Flag jets that contain a whole resonance decay.

    Args:
        truth: resonances of the batch (from :func:`find_truth`).
        jet_evt: ``[J]`` event index of each jet.
        jet_eta, jet_phi: ``[J]`` jet axes.
        radius: matching radius in (eta, phi).
        n_leptons: if not None, only resonances with exactly this many charged leptons among their
            decay products count.

    Returns:
        ``[J]`` bool, True where some resonance in the jet's event is fully inside the jet.
    """
    matched = np.zeros(len(jet_evt), dtype=bool)
    if len(jet_evt) == 0 or len(truth.root_evt) == 0:
        return matched
    lo = np.searchsorted(truth.root_evt, jet_evt, side="left")
    hi = np.searchsorted(truth.root_evt, jet_evt, side="right")
    pair_jet, pair_root = expand_ranges(lo, hi)
    if n_leptons is not None:
        ok = truth.n_leptons[pair_root] == n_leptons
        pair_jet, pair_root = pair_jet[ok], pair_root[ok]
    if pair_jet.size == 0:
        return matched
    olo = np.searchsorted(truth.obj_owner, pair_root, side="left")
    ohi = np.searchsorted(truth.obj_owner, pair_root, side="right")
    trip_pair, obj = expand_ranges(olo, ohi)
    j = pair_jet[trip_pair]
    dphi = np.remainder(truth.obj_phi[obj] - jet_phi[j] + np.pi, 2 * np.pi) - np.pi
    dr = np.hypot(truth.obj_eta[obj] - jet_eta[j], dphi)
    starts = np.cumsum(ohi - olo) - (ohi - olo)
    max_dr = np.maximum.reduceat(dr, starts)
    matched[pair_jet[max_dr < radius]] = True
    return matched
