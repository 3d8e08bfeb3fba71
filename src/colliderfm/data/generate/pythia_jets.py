"""One generation unit: Pythia 8 events -> detector response -> anti-kT jets -> selected jets.

Events are produced in batches with ``Pythia.nextBatch`` (columnar event records), so every step
after the event generation itself is vectorised NumPy over the whole batch: no Python loop over
particles or events. Per event at most ``jets_per_event`` jets are kept (default 1; 0: all), the
highest-pT ones among those that pass the pT and ``|eta|`` window (computed from their kept
constituents) and, for resonance classes, contain the whole truth decay (see
:mod:`colliderfm.data.generate.truth`). Keeping every passing jet gives 14% (top) to 27% (QCD)
more jets per event, but the jets are then no longer one per event and their pT spectrum is the
inclusive one, not that of the leading passing jet (measured in ``docs/generation.md``), so it is
an option, not the default.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from colliderfm.data.generate.detector import DetectorResponse
from colliderfm.data.generate.processes import SPECS, ProcessSpec
from colliderfm.data.generate.truth import NEUTRINOS, find_truth, match_jets
from colliderfm.data.generate.units import (
    pythia_base_settings,
    pythia_seed_settings,
    start_pythias,
)
from colliderfm.data.schema import ConstituentChunk, jet_scalars_from_particles
from colliderfm.errors import require

T = TypeVar("T")
SQRT_S = 14_000.0  # GeV
MIN_BATCH, MAX_BATCH = 16, 256  # events per nextBatch call


@dataclass(frozen=True)
class JetSettings:
    """Physics settings shared by every unit of a generation run.

    Attributes:
        pt_min, pt_max: jet pT window in GeV.
        eta_max: jet ``|eta|`` cut.
        radius: anti-kT radius (also the truth-matching radius).
        max_particles: constituents kept per jet (highest pT).
        mpi: multi-parton interactions on (off: the opt-in ``--fast`` mode).
        tau0_max: particles with ``c tau`` above this (mm) are stable (K_S, Lambda, ...).
        jets_per_event: at most this many passing jets per event, highest pT first (0: all;
            the default 1 keeps the jets independent).
        detector: detector response.
    """

    pt_min: float = 550.0
    pt_max: float = 650.0
    eta_max: float = 2.0
    radius: float = 0.8
    max_particles: int = 200
    mpi: bool = True
    tau0_max: float = 10.0
    jets_per_event: int = 1
    detector: DetectorResponse = field(default_factory=DetectorResponse)

    def pthat_window(self, process: str) -> tuple[float, float]:
        """Hard-process pT window of a process (see :mod:`.processes`).

        Args:
            process: process key.

        Returns:
            ``(pTHatMin, pTHatMax)`` in GeV.
        """
        below, above = SPECS[process].pthat
        return max(self.pt_min - below, 1.0), self.pt_max + above

    def pythia_settings(self, process: str, seed: int | None = None, variant: int = 0) -> list[str]:
        """Full list of Pythia ``readString`` lines for one process.

        Args:
            process: process key.
            seed: Pythia ``Random:seed`` (1..900000000); None leaves the seed lines out.
            variant: index into the process's alternating variants.

        Returns:
            Settings lines.
        """
        lo, hi = self.pthat_window(process)
        return [
            *pythia_base_settings(SQRT_S, self.mpi, self.tau0_max),
            f"PhaseSpace:pTHatMin = {lo}",
            f"PhaseSpace:pTHatMax = {hi}",
            *SPECS[process].settings,
            *SPECS[process].variants[variant],
            *pythia_seed_settings(seed),
        ]


class _Charges:
    """PDG id -> electric charge, cached per id and mapped over arrays without Python loops."""

    def __init__(self, particle_data: object) -> None:
        self._pd = particle_data
        self._cache: dict[int, int] = {}

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        uniq, inv = np.unique(ids, return_inverse=True)
        for i in uniq.tolist():
            if i not in self._cache:
                self._cache[i] = int(round(self._pd.charge(i)))  # type: ignore[attr-defined]
        return np.array([self._cache[i] for i in uniq.tolist()], dtype=np.int8)[inv]


def _record_arrays(batch: object) -> dict[str, np.ndarray]:
    """Flatten a ``nextBatch`` awkward array into NumPy arrays with global indices."""
    import awkward as ak

    prt = batch["prt"]  # type: ignore[index]
    counts = np.asarray(ak.num(prt, axis=1), dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(counts)))
    evt = np.repeat(np.arange(len(counts)), counts)

    def flat(x: object) -> np.ndarray:
        return np.asarray(ak.to_numpy(ak.flatten(x, axis=1)))

    base = offsets[:-1][evt]
    d1 = flat(prt.daughter1).astype(np.int64)  # type: ignore[attr-defined]
    d2 = flat(prt.daughter2).astype(np.int64)  # type: ignore[attr-defined]
    p = prt.p  # type: ignore[attr-defined]
    return {
        "evt": evt,
        "offsets": offsets,
        "id": flat(prt.id).astype(np.int32),  # type: ignore[attr-defined]
        "status": flat(prt.status),  # type: ignore[attr-defined]
        "d1": np.where(d1 > 0, d1 + base, -1),
        "d2": np.where(d2 > 0, d2 + base, -1),
        "p4": np.stack([flat(p.px), flat(p.py), flat(p.pz), flat(p.e)], axis=1),
    }


def _antikt_sequence(p4: np.ndarray, counts: np.ndarray, radius: float) -> Any:
    """Anti-kT cluster every event of a batch with FastJet's multi-event interface.

    Args:
        p4: ``[N, 4]`` ``(px, py, pz, E)`` of the particles of all events, event after event.
        counts: ``[E]`` particles per event.
        radius: jet radius R.

    Returns:
        The ``fastjet.ClusterSequence`` over the events (awkward arrays).
    """
    import awkward as ak
    import fastjet

    parts = ak.unflatten(
        ak.zip(
            {"px": p4[:, 0], "py": p4[:, 1], "pz": p4[:, 2], "E": p4[:, 3]}, with_name="Momentum4D"
        ),
        counts,
    )
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
    return _without_stdout(lambda: fastjet.ClusterSequence(parts, jetdef))


def _cluster(
    p4: np.ndarray, counts: np.ndarray, radius: float, min_pt: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Anti-kT cluster every event of a batch with FastJet's multi-event interface.

    Returns:
        ``(jet_evt [J], cons_offsets [J+1], cons_local [C])``: event of each jet, offsets of each
        jet's constituents, and the constituents' indices within their event's particle list.
    """
    import awkward as ak

    cs = _antikt_sequence(p4, counts, radius)
    idx = cs.constituent_index(min_pt)  # events -> jets -> constituents
    jets_per_evt = np.asarray(ak.num(idx, axis=1), dtype=np.int64)
    jet_evt = np.repeat(np.arange(len(counts)), jets_per_evt)
    per_jet = ak.flatten(idx, axis=1)
    n_cons = np.asarray(ak.num(per_jet, axis=1), dtype=np.int64)
    cons_local = np.asarray(ak.to_numpy(ak.flatten(per_jet, axis=1)), dtype=np.int64)
    return jet_evt, np.concatenate(([0], np.cumsum(n_cons))), cons_local


_BANNER_SHOWN = False


def _without_stdout(fn: Callable[[], T]) -> T:
    """Call ``fn`` with file descriptor 1 muted the first time (FastJet prints a banner there)."""
    global _BANNER_SHOWN
    if _BANNER_SHOWN:
        return fn()
    _BANNER_SHOWN = True
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        return fn()
    finally:
        libc.fflush(None)
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _jet_chunk(
    p4: np.ndarray,
    charge: np.ndarray,
    pid: np.ndarray,
    cons: np.ndarray,
    cons_off: np.ndarray,
    max_particles: int,
    label: int,
) -> ConstituentChunk:
    """Build jets from their constituents: highest pT first, at most ``max_particles`` each.

    Args:
        p4, charge, pid: ``[M, 4]``, ``[M]``, ``[M]`` detected particles of the batch.
        cons: ``[C]`` indices into the particle arrays, grouped by jet.
        cons_off: ``[J+1]`` offsets of each jet's group in ``cons``.
        max_particles: constituents kept per jet.
        label: class index of every jet.

    Returns:
        ``J`` jets with scalars computed from the kept constituents.
    """
    n_cons = np.diff(cons_off)
    cons_jet = np.repeat(np.arange(len(n_cons)), n_cons)
    order = np.lexsort((-np.hypot(p4[cons, 0], p4[cons, 1]), cons_jet))
    cons, cons_jet = cons[order], cons_jet[order]
    cons = cons[np.arange(len(cons)) - cons_off[cons_jet] < max_particles]
    chunk = ConstituentChunk(
        counts=np.minimum(n_cons, max_particles).astype(np.int64),
        px=p4[cons, 0].astype(np.float32),
        py=p4[cons, 1].astype(np.float32),
        pz=p4[cons, 2].astype(np.float32),
        energy=p4[cons, 3].astype(np.float32),
        charge=charge[cons].astype(np.int8),
        type_id=pid[cons].astype(np.int32),
        label=np.full(len(n_cons), label, dtype=np.int64),
    )
    chunk.jet = jet_scalars_from_particles(chunk)
    return chunk


def select_jets(
    rec: dict[str, np.ndarray],
    settings: JetSettings,
    spec: ProcessSpec,
    charges: _Charges,
    rng: np.random.Generator,
    label: int,
) -> tuple[ConstituentChunk, np.ndarray]:
    """Detector response, clustering and selection of one batch of Pythia events.

    Args:
        rec: the batch's event records (:func:`_record_arrays`).
        settings: physics settings (window, radius, detector, jets per event).
        spec: the process (truth matching of resonance classes).
        charges: particle charges by PDG id.
        rng: the detector response's generator (advanced by the call).
        label: class index written into the jets.

    Returns:
        ``(jets, events)``: the selected jets, in event order and highest pT first within an
        event, and ``[J]`` the batch index of each one's event.
    """
    s = settings
    n_evt = len(rec["offsets"]) - 1
    ids, evt = rec["id"], rec["evt"]
    visible = np.flatnonzero((rec["status"] > 0) & ~np.isin(np.abs(ids), NEUTRINOS))
    charge = charges(ids[visible])
    keep, p4 = s.detector.apply(rec["p4"][visible], ids[visible], charge, rng)
    part = visible[keep]  # record index of each detected particle (event-ordered)
    p4, charge = p4[keep], charge[keep]
    counts = np.bincount(evt[part], minlength=n_evt)
    part_off = np.concatenate(([0], np.cumsum(counts)))[:-1]

    # jets below 0.8 pt_min cannot pass the window once their softest constituents are cut
    jet_evt, cons_off, cons_local = _cluster(p4, counts, s.radius, 0.8 * s.pt_min)
    cons = cons_local + part_off[np.repeat(jet_evt, np.diff(cons_off))]
    chunk = _jet_chunk(p4, charge, ids[part], cons, cons_off, s.max_particles, label)
    ok = (
        (chunk.jet["jet_pt"] >= s.pt_min)
        & (chunk.jet["jet_pt"] <= s.pt_max)
        & (np.abs(chunk.jet["jet_eta"]) < s.eta_max)
    )
    if spec.root_ids:
        truth = find_truth(ids, rec["d1"], rec["d2"], rec["p4"], evt, spec.root_ids)
        cand = np.flatnonzero(ok)
        ok[cand] = match_jets(
            truth,
            jet_evt[cand],
            chunk.jet["jet_eta"][cand],
            chunk.jet["jet_phi"][cand],
            s.radius,
            spec.n_leptons,
        )
    cand = np.flatnonzero(ok)
    # passing jets in event order, highest pT first within an event
    order = cand[np.lexsort((-chunk.jet["jet_pt"][cand], jet_evt[cand]))]
    if s.jets_per_event > 0:
        _, first = np.unique(jet_evt[order], return_index=True)
        rank = np.arange(len(order)) - np.repeat(first, np.diff(np.append(first, len(order))))
        order = order[rank < s.jets_per_event]
    return chunk.take(order), jet_evt[order]


class JetUnit:
    """Generates jets of one process with seeded Pythia instances.

    A process with several variants (see :class:`.processes.ProcessSpec`) gets one Pythia instance
    per variant, used in turn batch by batch.

    Args:
        process: process key (see :data:`colliderfm.data.generate.processes.PROCESSES`).
        settings: physics settings.
        pythia_seeds: Pythia ``Random:seed`` (1..900000000) of each variant.
        detector_seed: seed of the detector-response NumPy generator.
    """

    def __init__(
        self, process: str, settings: JetSettings, pythia_seeds: tuple[int, ...], detector_seed: int
    ) -> None:
        self.spec = SPECS[process]
        self.settings = settings
        self.pythias, _ = start_pythias(process, settings, pythia_seeds, len(self.spec.variants))
        require("fastjet", "gen")  # after pythia8mc, which start_pythias requires
        self.charges = _Charges(self.pythias[0].particleData)
        self.rng = np.random.default_rng(detector_seed)
        self.n_events = 0
        self.n_selected = 0
        self._n_batches = 0

    def _batch(self, n_events: int, label: int) -> ConstituentChunk:
        """Generate ``n_events`` events and return their selected jets (in event order)."""
        pythia = self.pythias[self._n_batches % len(self.pythias)]
        self._n_batches += 1
        rec = _record_arrays(pythia.nextBatch(n_events))
        self.n_events += len(rec["offsets"]) - 1
        chunk, _ = select_jets(rec, self.settings, self.spec, self.charges, self.rng, label)
        self.n_selected += len(chunk)
        return chunk

    def generate(
        self, n_jets: int, label: int, on_jets: Callable[[int], None] | None = None
    ) -> ConstituentChunk:
        """Generate exactly ``n_jets`` selected jets.

        The batch sizes depend only on this unit's own history, so the output is a deterministic
        function of the seeds.

        Args:
            n_jets: number of jets to return.
            label: class index written into ``label``.
            on_jets: optional callback with the number of new jets after each batch (progress).

        Returns:
            The jets, in generation order.
        """
        chunks: list[ConstituentChunk] = []
        have = 0
        while have < n_jets:
            eff = (have + 1) / (self.n_events + 4)  # pessimistic start, converges quickly
            want = int(np.ceil(1.1 * (n_jets - have) / eff))
            got = self._batch(int(np.clip(want, MIN_BATCH, MAX_BATCH)), label)
            got = got.take(np.arange(min(len(got), n_jets - have)))
            chunks.append(got)
            have += len(got)
            if on_jets is not None and len(got):
                on_jets(len(got))
            if self.n_events > 20_000 and have < 1e-3 * self.n_events:
                raise RuntimeError(
                    f"selection efficiency too low for {self.spec.key!r} "
                    f"({have} jets from {self.n_events} events)"
                )
        return ConstituentChunk.concat(chunks)
