"""One event-generation unit: Pythia 8 events -> detector response -> objects -> selected events.

Vectorised over a batch of events from ``Pythia.nextBatch`` (no Python loop over particles or
events): the steps and every number are documented in :mod:`colliderfm.data.generate.events`,
the processes and settings are in :mod:`.event_processes`. The output of a unit is an Arrow
table in the canonical event layout (:func:`colliderfm.data.shards.events_table`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

from colliderfm.data.generate.event_processes import (
    SUBPROCESSES,
    EventSettings,
)
from colliderfm.data.generate.pythia_jets import (
    MAX_BATCH,
    MIN_BATCH,
    _antikt_sequence,
    _Charges,
    _record_arrays,
)
from colliderfm.data.generate.truth import NEUTRINOS
from colliderfm.data.generate.units import start_pythias
from colliderfm.data.schema import ObjectType
from colliderfm.data.selection import assemble_events, cone_pairs
from colliderfm.errors import require
from colliderfm.physics.kinematics import np_eta, np_phi

#: Independent tag draws per event when truth tagging (see :meth:`EventUnit._truth_tag`).
TRUTH_TAG_ROUNDS = 4096


def _flavour_hadrons(ids: np.ndarray, quark: int) -> np.ndarray:
    """``[N]`` bool: hadrons containing quark ``quark`` (5 = b, 4 = c) from their PDG ids."""
    a = np.abs(ids)
    hadron = (a >= 100) & ((a // 10) % 10 > 0) & (a < 1_000_000)
    return hadron & (((a // 100) % 10 == quark) | ((a // 1000) % 10 == quark))


def _antikt(p4: np.ndarray, counts: np.ndarray, radius: float, pt_min: float) -> np.ndarray:
    """Anti-kT jets of every event of a batch (FastJet multi-event interface).

    Returns:
        ``[J, 5]`` float64 rows ``(event, px, py, pz, E)``.
    """
    import awkward as ak

    jets = _antikt_sequence(p4, counts, radius).inclusive_jets(min_pt=pt_min)
    per_evt = np.asarray(ak.num(jets, axis=1), dtype=np.int64)
    flat = ak.flatten(jets, axis=1)
    cols = [np.asarray(ak.to_numpy(flat[k]), dtype=np.float64) for k in ("px", "py", "pz", "E")]
    return np.stack([np.repeat(np.arange(len(counts)), per_evt).astype(np.float64), *cols], axis=1)


class EventUnit:
    """Generates selected events of one sub-process with seeded Pythia instances.

    Args:
        process: sub-process key (see :data:`SUBPROCESSES`).
        settings: physics settings.
        pythia_seeds: Pythia ``Random:seed`` (1..900000000) of each variant.
        detector_seed: seed of the NumPy generator (detector, b-tagging, MET smearing).
        dry_run: the early-veto hooks record their verdicts (:attr:`verdicts`) without vetoing.
    """

    def __init__(
        self,
        process: str,
        settings: EventSettings,
        pythia_seeds: tuple[int, ...],
        detector_seed: int,
        dry_run: bool = False,
    ) -> None:
        self.process, self.spec, self.settings = process, SUBPROCESSES[process], settings
        self.detector, self.met_const, self.met_stoch = settings.response(process)
        self.pythias, self.hooks = start_pythias(
            process,
            settings,
            pythia_seeds,
            len(self.spec.variants),
            settings.veto(process),
            dry_run,
        )
        require("fastjet", "gen")  # after pythia8mc, which start_pythias requires
        self.charges = _Charges(self.pythias[0].particleData)
        self.rng = np.random.default_rng(detector_seed)
        #: events generated, then passing >= min leptons, also >= min b-jets, also >= min light
        #: jets (= selected)
        self.cutflow = np.zeros(4, dtype=np.int64)
        #: sum over truth-tagged candidate events of their selection probability
        self.truth_tag_weight = 0.0
        #: dry run: per finished event, (the veto would have rejected it, it passed)
        self.verdicts: list[tuple[bool, bool]] = []
        self._n_batches = 0

    @property
    def n_vetoed(self) -> tuple[int, int]:
        """Events vetoed so far at process level and on their early jets."""
        return sum(h.n_process for h in self.hooks), sum(h.n_early for h in self.hooks)

    @property
    def n_events(self) -> int:
        """Events generated so far."""
        return int(self.cutflow[0])

    def _batch(self, n_events: int, label: int) -> pa.Table:
        """Generate ``n_events`` events; return the selected ones as an event table."""
        s = self.settings
        which = self._n_batches % len(self.pythias)
        self._n_batches += 1
        if self.hooks:
            self.hooks[which].verdicts.clear()
        rec = _record_arrays(self.pythias[which].nextBatch(n_events))
        n_evt = len(rec["offsets"]) - 1
        ids, evt, p4_true = rec["id"], rec["evt"], rec["p4"]
        final = rec["status"] > 0
        is_nu = final & np.isin(np.abs(ids), NEUTRINOS)

        # detector response of the visible final state
        visible = np.flatnonzero(final & ~is_nu)
        keep, p4 = self.detector.apply(
            p4_true[visible], ids[visible], self.charges(ids[visible]), self.rng
        )
        det, p4 = visible[keep], p4[keep]  # record index and measured (px, py, pz, E)
        d_evt, d_id = evt[det], ids[det]
        d_pt = np.hypot(p4[:, 0], p4[:, 1])
        d_eta, d_phi = np_eta(p4[:, 0], p4[:, 1], p4[:, 2]), np_phi(p4[:, 0], p4[:, 1])

        # isolated electrons and muons
        cand = np.flatnonzero(
            np.isin(np.abs(d_id), (11, 13))
            & (d_pt > s.lepton_pt_min)
            & (np.abs(d_eta) < s.lepton_eta_max)
        )
        ia, ib = cone_pairs(
            d_evt[cand], d_eta[cand], d_phi[cand], d_evt, d_eta, d_phi, n_evt, s.iso_dr
        )
        other = cand[ia] != ib
        iso = np.bincount(ia[other], weights=d_pt[ib[other]], minlength=len(cand))
        lep = cand[iso < s.iso_max * d_pt[cand]]
        is_lep = np.zeros(len(det), dtype=bool)
        is_lep[lep] = True

        # anti-kT jets of the other detected particles
        rest = ~is_lep
        jets = _antikt(
            p4[rest], np.bincount(d_evt[rest], minlength=n_evt), s.jet_radius, s.jet_pt_min
        )
        j_evt = jets[:, 0].astype(np.int64)
        j_pt = np.hypot(jets[:, 1], jets[:, 2])
        j_eta, j_phi = np_eta(jets[:, 1], jets[:, 2], jets[:, 3]), np_phi(jets[:, 1], jets[:, 2])
        ok = (j_pt > s.jet_pt_min) & (np.abs(j_eta) < s.jet_eta_max)
        jets, j_evt, j_pt, j_eta, j_phi = jets[ok], j_evt[ok], j_pt[ok], j_eta[ok], j_phi[ok]
        order = np.argsort(j_evt, kind="stable")
        jets, j_evt, j_pt, j_eta, j_phi = (
            jets[order],
            j_evt[order],
            j_pt[order],
            j_eta[order],
            j_phi[order],
        )

        # flavour by B/C-hadron matching, then tagging with the configured probabilities
        flavour = np.zeros(len(j_evt), dtype=np.int64)  # 0 light, 1 c, 2 b
        for code, quark in ((1, 4), (2, 5)):  # b last: a jet with both is a b-jet
            had = np.flatnonzero(
                _flavour_hadrons(ids, quark)
                & (np.hypot(p4_true[:, 0], p4_true[:, 1]) > s.hadron_pt_min)
            )
            hp = p4_true[had]
            jj, _ = cone_pairs(
                j_evt,
                j_eta,
                j_phi,
                evt[had],
                np_eta(hp[:, 0], hp[:, 1], hp[:, 2]),
                np_phi(hp[:, 0], hp[:, 1]),
                n_evt,
                s.match_dr,
            )
            flavour[jj] = code
        rate = np.array([s.light_tag_rate, s.ctag_rate, s.btag_eff])[flavour]
        btag = self.rng.random(len(j_evt)) < rate
        n_lep = np.bincount(d_evt[lep], minlength=n_evt)
        if self.spec.truth_tag:
            self._truth_tag(btag, rate, j_evt, n_evt, n_lep >= s.selection.min_leptons)

        # MET: the neutrinos' transverse momentum plus Gaussian smearing of each component
        nu = np.flatnonzero(is_nu)
        met = np.stack(
            [
                np.bincount(evt[nu], weights=p4_true[nu, k], minlength=n_evt).astype(np.float64)
                for k in (0, 1)
            ],
            axis=1,
        )  # [E, 2]
        sum_et = np.bincount(d_evt, weights=d_pt, minlength=n_evt)
        sigma = np.hypot(self.met_const, self.met_stoch * np.sqrt(sum_et))
        met = met + sigma[:, None] * self.rng.standard_normal((n_evt, 2))

        # selection on the object counts (before truncation), objects pT-ordered
        lp = p4[lep]
        table, selected, flow = assemble_events(
            n_evt,
            {
                "evt": d_evt[lep],
                "pt": d_pt[lep],
                "eta": d_eta[lep],
                "phi": d_phi[lep],
                "energy": lp[:, 3],
                "type": np.where(
                    np.abs(d_id[lep]) == 11, int(ObjectType.ELECTRON), int(ObjectType.MUON)
                ),
            },
            {
                "evt": j_evt,
                "pt": j_pt,
                "eta": j_eta,
                "phi": j_phi,
                "energy": jets[:, 4],
                "btag": btag,
            },
            np.hypot(met[:, 0], met[:, 1]),
            np_phi(met[:, 0], met[:, 1]),
            s.selection,
            label,
        )
        self.cutflow += [n_evt, *flow.sum(axis=1).tolist()]
        if self.hooks and self.hooks[which].dry_run:
            verdicts = self.hooks[which].verdicts
            if len(verdicts) != n_evt:  # an event Pythia dropped (error) after its check
                raise RuntimeError(f"veto dry run: {len(verdicts)} verdicts for {n_evt} events")
            self.verdicts += list(zip(verdicts, selected.tolist(), strict=True))
        return table

    def _truth_tag(
        self,
        btag: np.ndarray,
        rate: np.ndarray,
        j_evt: np.ndarray,
        n_evt: int,
        lepton_ok: np.ndarray,
    ) -> None:
        """Redraw the tags of candidate events conditional on passing the jet selection.

        Rejection sampling, vectorised: :data:`TRUTH_TAG_ROUNDS` independent tag draws per
        candidate event (>= 1 lepton and enough jets), keeping the first draw that passes; an
        event with no passing draw keeps a failing one. Each event's pass probability (the weight
        that unweighted data would carry) is added to ``truth_tag_weight``, so its sum over the
        generated events estimates the real selection efficiency.

        Args:
            btag: ``[J]`` tags, updated in place.
            rate: ``[J]`` tag probability of each jet.
            j_evt: ``[J]`` event of each jet.
            n_evt: events in the batch.
            lepton_ok: ``[E]`` events passing the lepton requirement.
        """
        s = self.settings
        n_jets = np.bincount(j_evt, minlength=n_evt)
        cand = lepton_ok & (n_jets >= s.selection.min_bjets + s.selection.min_light_jets)
        rows = np.flatnonzero(cand[j_evt])
        if rows.size == 0:
            return
        _, local = np.unique(j_evt[rows], return_inverse=True)
        onehot = np.zeros((rows.size, int(local.max()) + 1), dtype=np.float32)  # [Jc, Ec]
        onehot[np.arange(rows.size), local] = 1.0
        draws = self.rng.random((TRUTH_TAG_ROUNDS, rows.size)) < rate[rows]  # [R, Jc]
        n_b = draws.astype(np.float32) @ onehot  # [R, Ec]
        n_light = onehot.sum(0) - n_b  # [R, Ec]
        ok = (n_b >= s.selection.min_bjets) & (n_light >= s.selection.min_light_jets)  # [R, Ec]
        first = np.argmax(ok, axis=0)  # [Ec], 0 where none passes
        btag[rows] = draws[first[local], np.arange(rows.size)]
        self.truth_tag_weight += float(ok.mean(axis=0).sum())

    def generate(
        self, n: int, label: int, on_events: Callable[[int], None] | None = None
    ) -> pa.Table:
        """Generate exactly ``n`` selected events.

        Batch sizes depend only on this unit's own history, so the output is a deterministic
        function of the seeds.

        Args:
            n: number of selected events to return.
            label: class index written into ``label`` (``-1`` for the data-like mix).
            on_events: optional callback with the number of new selected events (progress).

        Returns:
            The selected events as a canonical event table, in generation order.
        """
        tables: list[pa.Table] = []
        have = 0
        while have < n:
            eff = (have + 1) / (self.n_events + 4)  # pessimistic start, converges quickly
            want = int(np.ceil(1.1 * (n - have) / eff))
            got = self._batch(int(np.clip(want, MIN_BATCH, MAX_BATCH)), label)
            got = got.slice(0, min(got.num_rows, n - have))
            tables.append(got)
            have += got.num_rows
            if on_events is not None and got.num_rows:
                on_events(got.num_rows)
            if self.n_events > 50_000 and have < 2e-4 * self.n_events:
                raise RuntimeError(
                    f"selection efficiency too low for {self.process!r} "
                    f"({have} events selected from {self.n_events})"
                )
        return pa.concat_tables(tables)
