"""Event-level object bookkeeping shared by the event generator and the NanoAOD reader.

Both build flat NumPy arrays of leptons, jets and MET with an event index, then call
:func:`assemble_events`, which applies the event selection (on the object counts before any
truncation), keeps the highest-pT leptons and jets, and writes all objects of an event pT-ordered
into the canonical event table. Everything is vectorised; nothing loops over events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from colliderfm.data.schema import ObjectType
from colliderfm.data.shards import events_table


@dataclass(frozen=True)
class Selection:
    """Event selection and object caps.

    Attributes:
        min_leptons: isolated electrons + muons required.
        min_bjets: b-tagged jets required.
        min_light_jets: untagged jets required.
        max_leptons: leptons kept (highest pT).
        max_jets: jets kept (highest pT; b-tagged and untagged together).
    """

    min_leptons: int = 1
    min_bjets: int = 2
    min_light_jets: int = 2
    max_leptons: int = 2
    max_jets: int = 10


def expand_segments(start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Enumerate the integer ranges ``[start[i], stop[i])`` without a Python loop.

    Args:
        start: ``[K]`` range starts.
        stop: ``[K]`` range ends (exclusive, ``>= start``).

    Returns:
        ``(owner, value)``: for each enumerated integer, the range it came from and its value.
    """
    counts = (stop - start).astype(np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts
    return owner, np.arange(int(counts.sum()), dtype=np.int64) - first[owner] + start[owner]


def delta_phi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a - b`` wrapped to ``[-pi, pi)``.

    Args:
        a, b: angles in radians (broadcastable).

    Returns:
        The wrapped difference.
    """
    return np.remainder(a - b + np.pi, 2 * np.pi) - np.pi


def cone_pairs(
    evt_a: np.ndarray,
    eta_a: np.ndarray,
    phi_a: np.ndarray,
    evt_b: np.ndarray,
    eta_b: np.ndarray,
    phi_b: np.ndarray,
    n_evt: int,
    radius: float,
) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``(a, b)`` in the same event with ``dR(a, b) < radius``.

    Args:
        evt_a, eta_a, phi_a: ``[A]`` event index and direction of the first collection.
        evt_b, eta_b, phi_b: ``[B]`` the same for the second collection (``evt_b`` sorted).
        n_evt: number of events.
        radius: cone size in (eta, phi).

    Returns:
        ``(ia, ib)`` indices of the close pairs.
    """
    counts = np.bincount(evt_b, minlength=n_evt)
    stop = np.cumsum(counts)
    ia, ib = expand_segments((stop - counts)[evt_a], stop[evt_a])
    dr = np.hypot(eta_a[ia] - eta_b[ib], delta_phi(phi_a[ia], phi_b[ib]))
    close = dr < radius
    return ia[close], ib[close]


def assemble_events(
    n_evt: int,
    leptons: dict[str, np.ndarray],
    jets: dict[str, np.ndarray],
    met_pt: np.ndarray,
    met_phi: np.ndarray,
    selection: Selection,
    label: np.ndarray | int,
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Select events and write their objects as a canonical event table.

    Args:
        n_evt: events in the block.
        leptons: ``evt, pt, eta, phi, energy, type`` (ObjectType ELECTRON/MUON) flat arrays of the
            accepted, isolated leptons.
        jets: ``evt, pt, eta, phi, energy, btag`` (bool) flat arrays of the accepted jets.
        met_pt, met_phi: ``[E]`` missing transverse momentum of every event.
        selection: requirements and caps.
        label: class index of every event, scalar or ``[E]``.

    Returns:
        ``(table of the selected events, [E] bool selected, [3, E] bool cut flow)`` where the cut
        flow rows are: >= min leptons; and >= min b-jets; and >= min light jets.
    """
    sel = selection
    btag = jets["btag"].astype(bool)
    n_lep = np.bincount(leptons["evt"], minlength=n_evt)
    n_b = np.bincount(jets["evt"][btag], minlength=n_evt)
    n_light = np.bincount(jets["evt"][~btag], minlength=n_evt)
    c1 = n_lep >= sel.min_leptons
    c2 = c1 & (n_b >= sel.min_bjets)
    c3 = c2 & (n_light >= sel.min_light_jets)
    n_l, n_j = len(leptons["evt"]), len(jets["evt"])
    met_evt = np.arange(n_evt)
    cat = np.concatenate
    o_evt = cat([leptons["evt"], jets["evt"], met_evt]).astype(np.int64)
    o_pt = cat([leptons["pt"], jets["pt"], met_pt]).astype(np.float64)
    o_eta = cat([leptons["eta"], jets["eta"], np.zeros(n_evt)])
    o_phi = cat([leptons["phi"], jets["phi"], met_phi])
    o_e = cat([leptons["energy"], jets["energy"], met_pt])
    jet_type = np.where(btag, int(ObjectType.BJET), int(ObjectType.JET))
    o_type = cat([leptons["type"], jet_type, np.full(n_evt, int(ObjectType.MET))])
    o_group = cat([np.zeros(n_l), np.ones(n_j), np.full(n_evt, 2)]).astype(np.int64)
    cap = np.array([sel.max_leptons, sel.max_jets, 1])[o_group]
    # rank of each object within its (event, group) by pT, to cap leptons and jets
    order = np.lexsort((-o_pt, o_group, o_evt))
    key = o_evt[order] * 3 + o_group[order]
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - np.searchsorted(key, key, side="left")
    idx = np.flatnonzero(c3[o_evt] & (rank < cap))
    idx = idx[np.lexsort((-o_pt[idx], o_evt[idx]))]  # by event, pT descending
    counts = np.bincount(o_evt[idx], minlength=n_evt)[c3]
    labels = np.broadcast_to(np.asarray(label, dtype=np.int64), (n_evt,))[c3]
    table = events_table(counts, o_pt[idx], o_eta[idx], o_phi[idx], o_e[idx], o_type[idx], labels)
    return table, c3, np.stack([c1, c2, c3])
