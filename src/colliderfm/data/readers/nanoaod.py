"""CMS NanoAOD (ROOT tree ``Events``) -> canonical event tables, streamed in bounded memory.

Objects, vectorised over a chunk of events (awkward -> flat NumPy; no loop over events):

* electrons / muons: ``{Electron,Muon}_pt, _eta, _phi, _mass``; ``pT > lepton_pt_min`` (25 GeV),
  ``|eta| < lepton_eta_max`` (2.5), and where the file has it ``Electron_pfRelIso03_all`` /
  ``Muon_pfRelIso04_all < iso_max`` (0.15); ObjectType ELECTRON / MUON;
* jets: ``Jet_pt, _eta, _phi, _mass``; ``pT > jet_pt_min`` (25 GeV), ``|eta| < jet_eta_max`` (2.5),
  not within ``dR < overlap_dr`` (0.4) of a selected lepton (NanoAOD jets contain the leptons);
  b-tagged (ObjectType BJET, else JET) when ``Jet_btagDeepFlavB > btag_wp`` (0.2783, the DeepJet
  medium working point of 2016-2018 UL);
* MET: ``MET_pt, MET_phi`` with ``eta = 0``, ``E = pT``;
* energies ``E = sqrt((pT cosh eta)^2 + m^2)``; kinematics are stored exactly as read (float32).

The event selection and object caps are :class:`~colliderfm.data.selection.Selection` (default:
>= 1 lepton, >= 2 b-jets, >= 2 light jets; 2 leptons and 10 jets kept), the same as the built-in
generator. Failing events are counted (``skipped["failed_selection"]``, plus a cut flow), events
with a non-finite value are skipped and counted (``skipped["non_finite"]``); nothing crashes on
them. Rows are unlabelled (``label = -1``) unless a label is given (e.g. for simulated samples).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from colliderfm.data.readers import rootfile
from colliderfm.data.readers.base import ROOT_MAGIC, EventInputs, Reader, file_head, register
from colliderfm.data.readers.parquet import table_to_chunk
from colliderfm.data.schema import EVENT_CLASSES, ConstituentChunk, ObjectType
from colliderfm.data.selection import Selection, assemble_events, cone_pairs
from colliderfm.errors import DataError, require

log = logging.getLogger(__name__)

TREE = "Events"
REQUIRED: tuple[str, ...] = (
    "Jet_pt",
    "Jet_eta",
    "Jet_phi",
    "Jet_mass",
    "Jet_btagDeepFlavB",
    "Electron_pt",
    "Electron_eta",
    "Electron_phi",
    "Electron_mass",
    "Muon_pt",
    "Muon_eta",
    "Muon_phi",
    "Muon_mass",
    "MET_pt",
    "MET_phi",
)
#: Lepton -> relative-isolation branch used when present.
ISOLATION: dict[str, str] = {
    "Electron": "Electron_pfRelIso03_all",
    "Muon": "Muon_pfRelIso04_all",
}
#: Cut-flow steps recorded by :func:`iter_events` (counts of events passing each).
CUTFLOW: tuple[str, ...] = ("read", "finite", "leptons", "bjets", "light_jets")


@dataclass(frozen=True)
class NanoAODOptions:
    """Object definitions and selection for NanoAOD (GeV).

    Attributes:
        btag_wp: ``Jet_btagDeepFlavB`` threshold for a b-tag (DeepJet medium: 0.2783).
        lepton_pt_min, lepton_eta_max: electron/muon acceptance.
        iso_max: maximum relative isolation (when the branch exists).
        jet_pt_min, jet_eta_max: jet acceptance.
        overlap_dr: jets within this distance of a selected lepton are removed.
        selection: event selection and objects kept.
    """

    btag_wp: float = 0.2783
    lepton_pt_min: float = 25.0
    lepton_eta_max: float = 2.5
    iso_max: float = 0.15
    jet_pt_min: float = 25.0
    jet_eta_max: float = 2.5
    overlap_dr: float = 0.4
    selection: Selection = field(default_factory=Selection)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for the manifest).

        Returns:
            Field name -> value.
        """
        return asdict(self)


def num_events(path: str | Path) -> int:
    """Entries of the ``Events`` tree, from metadata only.

    Args:
        path: NanoAOD ROOT file.

    Returns:
        Number of events stored.
    """
    with rootfile.open_root(path) as f:
        t = rootfile.get_tree(f, path, TREE)
        with rootfile.read_errors(path):
            return int(t.num_entries)


def schema(path: str | Path) -> dict[str, str]:
    """Branch names and C++ types of the ``Events`` tree (for ``inspect``).

    Args:
        path: NanoAOD ROOT file.

    Returns:
        ``{branch: typename}`` of the branches this reader uses (present ones).
    """
    with rootfile.open_root(path) as f:
        t = rootfile.get_tree(f, path, TREE)
        present = set(rootfile.branch_names(t, path))
        wanted = [*REQUIRED, *ISOLATION.values()]
        with rootfile.read_errors(path):
            return {k: str(t[k].typename) for k in wanted if k in present}


def _flat(ak: Any, arr: Any) -> tuple[np.ndarray, np.ndarray]:
    """A jagged branch as (flat float64 values, counts)."""
    counts = np.asarray(ak.to_numpy(ak.num(arr, axis=1)), dtype=np.int64)
    return np.asarray(ak.to_numpy(ak.flatten(arr, axis=1)), dtype=np.float64), counts


def _energy(pt: np.ndarray, eta: np.ndarray, mass: np.ndarray) -> np.ndarray:
    return np.sqrt((pt * np.cosh(eta)) ** 2 + mass**2)


def _collection(ak: Any, arrays: dict[str, Any], name: str, path: Path) -> dict[str, np.ndarray]:
    """Flat arrays ``evt, pt, eta, phi, mass`` (+ ``iso``) of one NanoAOD collection."""
    cols: dict[str, np.ndarray] = {}
    counts = None
    for k in ("pt", "eta", "phi", "mass", "iso", "btag"):
        branch = {"iso": ISOLATION.get(name, ""), "btag": f"{name}_btagDeepFlavB"}.get(
            k, f"{name}_{k}"
        )
        if branch not in arrays:
            continue
        try:
            values, c = _flat(ak, arrays[branch])
        except (ValueError, TypeError) as exc:
            raise DataError(path, f"branch '{branch}' is not a per-object list ({exc})") from exc
        if counts is None:
            counts = c
        elif not np.array_equal(c, counts):
            raise DataError(path, f"branch '{branch}' has other object counts than {name}_pt")
        cols[k] = values
    assert counts is not None
    cols["evt"] = np.repeat(np.arange(len(counts)), counts)
    return cols


def _finite_events(n_evt: int, colls: list[dict[str, np.ndarray]], met: np.ndarray) -> np.ndarray:
    """``[E]`` bool: events whose every object value and MET is finite."""
    ok = np.isfinite(met).all(axis=0)
    for c in colls:
        bad = ~np.all([np.isfinite(v) for k, v in c.items() if k != "evt"], axis=0)
        ok[c["evt"][bad]] = False
    return ok


def _chunk_table(
    ak: Any, arrays: dict[str, Any], path: Path, opt: NanoAODOptions, label: int
) -> tuple[pa.Table, np.ndarray]:
    """One ``iterate`` step -> (selected events as a table, cut-flow counts)."""
    n_evt = len(arrays["MET_pt"])
    met = np.stack(
        [np.asarray(ak.to_numpy(arrays[b]), dtype=np.float64) for b in ("MET_pt", "MET_phi")]
    )  # [2, E]
    ele, mu, jet = (_collection(ak, arrays, n, path) for n in ("Electron", "Muon", "Jet"))
    finite = _finite_events(n_evt, [ele, mu, jet], met)

    leptons = []
    for c, obj_type in ((ele, ObjectType.ELECTRON), (mu, ObjectType.MUON)):
        with np.errstate(invalid="ignore"):
            ok = (c["pt"] > opt.lepton_pt_min) & (np.abs(c["eta"]) < opt.lepton_eta_max)
            if "iso" in c:
                ok &= c["iso"] < opt.iso_max
        leptons.append({k: v[ok] for k, v in c.items()} | {"type": np.full(ok.sum(), obj_type)})
    lep = {k: np.concatenate([leptons[0][k], leptons[1][k]]) for k in ("evt", "pt", "eta", "phi")}
    lep["energy"] = np.concatenate([_energy(x["pt"], x["eta"], x["mass"]) for x in leptons])
    lep["type"] = np.concatenate([x["type"] for x in leptons]).astype(np.int64)
    order = np.argsort(lep["evt"], kind="stable")
    lep = {k: v[order] for k, v in lep.items()}

    with np.errstate(invalid="ignore"):
        ok = (jet["pt"] > opt.jet_pt_min) & (np.abs(jet["eta"]) < opt.jet_eta_max)
    near, _ = cone_pairs(
        jet["evt"],
        jet["eta"],
        jet["phi"],
        lep["evt"],
        lep["eta"],
        lep["phi"],
        n_evt,
        opt.overlap_dr,
    )
    ok[near] = False
    jets = {k: v[ok] for k, v in jet.items()}
    jets["energy"] = _energy(jets["pt"], jets["eta"], jets["mass"])
    jets["btag"] = jets["btag"] > opt.btag_wp

    # drop non-finite events from every collection before the selection
    lep = {k: v[finite[lep["evt"]]] for k, v in lep.items()}
    jets = {k: v[finite[jets["evt"]]] for k, v in jets.items()}
    table, sel, flow = assemble_events(n_evt, lep, jets, met[0], met[1], opt.selection, label)
    keep = finite[sel]
    if not keep.all():
        table = table.filter(pa.array(keep))
    flow = flow & finite
    return table, np.array([n_evt, finite.sum(), *flow.sum(axis=1)], dtype=np.int64)


def iter_events(
    path: str | Path,
    options: NanoAODOptions | None = None,
    chunk_size: int = 50_000,
    label: int = -1,
    skipped: Counter[str] | None = None,
    cutflow: np.ndarray | None = None,
) -> Iterator[pa.Table]:
    """Stream a NanoAOD file as canonical event tables of the selected events.

    Only ``chunk_size`` entries (and their baskets) are in memory at a time.

    Args:
        path: NanoAOD ROOT file with an ``Events`` tree.
        options: object definitions and selection (defaults if None).
        chunk_size: entries read per step.
        label: label of every event (``-1`` = unlabelled).
        skipped: counter updated with ``non_finite`` and ``failed_selection`` events.
        cutflow: ``[len(CUTFLOW)]`` int64 array updated in place with events passing each step.

    Returns:
        Iterator over tables (possibly empty ones when a chunk has no selected event).

    Raises:
        DataError: missing/corrupt file, no ``Events`` tree, or missing branches (all named).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    opt = options or NanoAODOptions()
    path = Path(path)
    ak = require("awkward", "root")
    with rootfile.open_root(path) as f:
        t = rootfile.get_tree(f, path, TREE)
        present = set(rootfile.branch_names(t, path))
        missing = [b for b in REQUIRED if b not in present]
        if missing:
            raise DataError(
                path, f"tree '{TREE}' is missing NanoAOD branch(es) {', '.join(missing)}"
            )
        branches = [*REQUIRED, *(b for b in ISOLATION.values() if b in present)]
        rootfile.check_numeric_branches(t, path, branches)
        with rootfile.read_errors(path):
            steps = t.iterate(branches, step_size=chunk_size, library="ak", how=dict)
        while True:
            with rootfile.read_errors(path):
                try:
                    arrays = next(steps)
                except StopIteration:
                    break
            table, flow = _chunk_table(ak, arrays, path, opt, label)
            if cutflow is not None:
                cutflow += flow
            if skipped is not None:
                found = {
                    "non_finite": int(flow[0] - flow[1]),
                    "failed_selection": int(flow[1] - flow[4]),
                }
                skipped.update({k: v for k, v in found.items() if v})
            yield table


def iter_event_chunks(
    path: str | Path,
    chunk_size: int = 50_000,
    skipped: Counter[str] | None = None,
    options: NanoAODOptions | None = None,
) -> Iterator[ConstituentChunk]:
    """Stream a NanoAOD file as chunks whose "particles" are the selected objects.

    Args:
        path: NanoAOD ROOT file.
        chunk_size: entries read per step.
        skipped: counter updated with the skipped events.
        options: object definitions and selection (defaults if None).

    Returns:
        Iterator over non-empty chunks (unlabelled).
    """
    for table in iter_events(path, options, chunk_size=chunk_size, skipped=skipped):
        if table.num_rows:
            yield table_to_chunk(table)


@register
class NanoAODReader(Reader):
    """CMS NanoAOD: a ROOT file with an ``Events`` tree, read as events (default selection)."""

    name = "nanoaod"
    note = "NanoAOD read with the default object definitions and event selection"
    labelled = False

    def detect(self, path: Path) -> bool:
        """ROOT magic bytes and an ``Events`` tree (see :meth:`Reader.detect`)."""
        return file_head(path).startswith(ROOT_MAGIC) and TREE in rootfile.tree_names(path)

    def mismatch(self, path: Path) -> str | None:
        """A ROOT file without ``Events``: name the trees it has (see :meth:`Reader.mismatch`)."""
        if not file_head(path).startswith(ROOT_MAGIC):
            return None
        trees = ", ".join(rootfile.tree_names(path)) or "none"
        return f"no tree '{TREE}', not a NanoAOD file (trees present: {trees})"

    def kind(self, path: Path) -> str:
        """Always ``"events"`` (see :meth:`Reader.kind`)."""
        return "events"

    def classes(self, path: Path) -> list[str]:
        """The event classes; NanoAOD is read unlabelled (-1) (see :meth:`Reader.classes`)."""
        return list(EVENT_CLASSES)

    def count(self, path: Path) -> int | None:
        """None: events are selected while reading, so the count is known only afterwards."""
        return None

    def iter_chunks(
        self, path: Path, chunk_size: int = 8192, skipped: Counter[str] | None = None
    ) -> Iterator[ConstituentChunk]:
        """:func:`iter_event_chunks`, default selection (see :meth:`Reader.iter_chunks`)."""
        return iter_event_chunks(path, chunk_size=chunk_size, skipped=skipped)

    def schema(self, path: Path) -> dict[str, Any]:
        """:func:`schema` (see :meth:`Reader.schema`)."""
        return schema(path)

    def event_inputs(
        self, paths: list[Path], chunk_size: int, options: Any, label: int, unlabel: bool
    ) -> EventInputs:
        """Select events with ``options`` and label them ``label``; the cut-flow goes into the
        manifest ``source`` (``cutflow``, ``selection_efficiency``).

        Args:
            paths: NanoAOD files.
            chunk_size: entries read per step.
            options: :class:`NanoAODOptions` (None: the defaults).
            label: label of every event (``-1`` = unlabelled).
            unlabel: unused (``label`` is -1 then).

        Returns:
            The inputs' description for ``convert``.
        """
        opt = options or NanoAODOptions()
        cutflow = np.zeros(len(CUTFLOW), dtype=np.int64)

        def tables(p: Path, skipped: Counter[str]) -> Iterator[tuple[pa.Table, int]]:
            before = int(cutflow[0])
            for table in iter_events(
                p, opt, chunk_size=chunk_size, label=label, skipped=skipped, cutflow=cutflow
            ):
                yield table, int(cutflow[0]) - before
                before = int(cutflow[0])

        def finish(source: dict[str, Any]) -> None:
            source["cutflow"] = dict(zip(CUTFLOW, cutflow.tolist(), strict=True))
            source["selection_efficiency"] = round(float(cutflow[-1]) / max(int(cutflow[0]), 1), 6)

        return EventInputs(
            sizes=[num_events(p) for p in paths],
            source={"nanoaod": opt.to_dict(), "label": label},
            tables=tables,
            finish=finish,
        )
