"""Fixtures of the reader tests: small CMS-NanoAOD-schema ROOT files written with uproot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

FIELDS = {
    "Jet": ("pt", "eta", "phi", "mass", "btagDeepFlavB"),
    "Electron": ("pt", "eta", "phi", "mass", "pfRelIso03_all"),
    "Muon": ("pt", "eta", "phi", "mass", "pfRelIso04_all"),
}
KEYS = {"Jet": "jets", "Electron": "electrons", "Muon": "muons"}


def write_nanoaod(path: Path, events: list[dict[str, Any]], drop: tuple[str, ...] = ()) -> Path:
    """Write events to a ROOT file with an ``Events`` tree in the NanoAOD branch layout.

    Args:
        path: output file.
        events: per event ``{"jets": [(pt, eta, phi, mass, btag)], "electrons": [(pt, eta, phi,
            mass, iso)], "muons": [...], "met": (pt, phi)}`` (missing keys: none / zero MET).
        drop: branches to leave out, e.g. ``("Jet_btagDeepFlavB", "MET_phi")``.

    Returns:
        ``path``.
    """
    import awkward as ak
    import uproot

    tree: dict[str, Any] = {}
    for coll, names in FIELDS.items():
        rows = [e.get(KEYS[coll], []) for e in events]
        counts = np.array([len(r) for r in rows], dtype=np.int64)
        flat = np.array([o for r in rows for o in r], dtype=np.float32).reshape(-1, len(names))
        fields = {
            n: ak.unflatten(flat[:, i], counts)
            for i, n in enumerate(names)
            if f"{coll}_{n}" not in drop
        }
        tree[coll] = ak.zip(fields)
    met = np.array([e.get("met", (0.0, 0.0)) for e in events], dtype=np.float32).reshape(-1, 2)
    for i, n in enumerate(("MET_pt", "MET_phi")):
        if n not in drop:
            tree[n] = met[:, i]
    with uproot.recreate(path) as f:
        out = f.mktree(
            "Events",
            {k: v.type for k, v in tree.items() if not isinstance(v, np.ndarray)}
            | {k: v.dtype for k, v in tree.items() if isinstance(v, np.ndarray)},
            counter_name=lambda coll: f"n{coll}",
            field_name=lambda outer, inner: f"{outer}_{inner}",
        )
        if events:
            out.extend(tree)
    return path


@pytest.fixture
def nanoaod() -> Any:
    """The :func:`write_nanoaod` writer (skips the test without uproot)."""
    pytest.importorskip("uproot")
    return write_nanoaod
