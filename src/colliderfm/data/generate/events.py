"""The built-in event generator: Pythia 8 + FastJet -> reconstructed objects -> event shards.

Physics (defaults; every number is a field of :class:`.pythia_events.EventSettings` and is
recorded in the manifest):

* pp collisions at sqrt(s) = 13 TeV, Pythia 8 with multi-parton interactions and hadronisation;
  particles with ``c tau > 10 mm`` are stable. Labelled processes use the Monash 2013 tune
  (``Tune:pp = 14``).
* ``ttbar`` (label 0): semileptonic ttbar, ``Top:gg2ttbar`` + ``Top:qqbar2ttbar``; one W is forced
  to ``e/mu/tau nu`` and the other to quarks (two Pythia instances, W+ or W- leptonic,
  alternating batch by batch so both lepton charges appear equally).
* ``h2hdm`` (label 1): heavy neutral 2HDM Higgs ``H`` (PDG 35) from gluon fusion
  (``HiggsBSM:gg2H2``), mass ``--mass`` (default 550 GeV), forced to ``t tbar``, the tops decaying
  semileptonically as above. Couplings: alignment limit at ``tan(beta) = 1`` (SM-like fermion
  couplings, no couplings to W, Z or Higgs pairs), giving a width of about 28 GeV at 550 GeV.
* ``datalike`` (label -1, unlabelled): a stand-in for collision data, generated with another tune
  (``Tune:pp = 18``, CMS CUETP8M1) and a 10% worse resolution (every detector resolution term and
  the MET resolution times 1.1). A mix of selected events with fixed fractions (roughly the
  composition of a lepton + jets, >= 2 b-tag sample): ttbar 86% (inclusive W decays), single top
  6% (t- and s-channel, ``Top:qq2tq(t:W)``, ``Top:ffbar2tqbar(s:W)``, W -> e/mu/tau nu), W+jets 5%
  (``WeakBosonAndParton:qqbar2Wg``, ``qg2Wq``, ``pTHatMin = 60`` GeV, W -> e/mu/tau nu) and
  ttbar+V 3%. Pythia 8 has no ttW/ttZ matrix elements, so ttbar+H (m_H = 125 GeV,
  ``HiggsSM:gg2Httbar``, ``qqbar2Httbar``, SM decays) stands in for ttbar + boson. W+jets passes
  the b-tag requirement far too rarely (~1e-4) to generate, so it is *truth-tagged*: its tags are
  drawn from their distribution conditional on passing the selection (4096 draws per event,
  rejection sampling); its kinematics are those of selected W+jets, its rate is set by the
  fraction. The counts per component are drawn once per data set (largest remainder of
  ``n * fraction``, assigned to the rows in a seeded random order).

Reconstruction, vectorised over batches of events:

* visible final-state particles pass the particle-level response of :mod:`.detector`;
* electrons and muons with measured ``pT > 25`` GeV and ``|eta| < 2.5`` that are isolated: the
  scalar pT sum of the other detected particles within ``dR < 0.3`` is below 0.15 times theirs;
* anti-kT ``R = 0.4`` jets (FastJet) of the other detected particles (isolated leptons excluded),
  ``pT > 25`` GeV, ``|eta| < 2.5``;
* b-tagging by hadron matching: a jet within ``dR < 0.4`` of a B hadron (``pT > 5`` GeV) is a
  b-jet, else of a C hadron a c-jet, else light; tagged with probability 0.70 (b), 0.10 (c),
  0.01 (light);
* MET: the transverse momentum of the neutrinos, each component smeared with a Gaussian of
  ``sigma = 5 GeV (+) 0.5 sqrt(sum ET / GeV)`` (quadrature; sum ET of the detected particles);
* selection: >= 1 lepton, >= 2 b-tagged jets, >= 2 untagged jets (counted before truncation);
  failing events are counted (manifest ``cutflow`` and ``selection_efficiency``), not written;
* objects kept: the 2 highest-pT leptons, 10 highest-pT jets (b and light together) and the MET,
  written pT-ordered (:class:`~colliderfm.data.schema.ObjectType`: electron 1, muon 2, b-jet 3,
  jet 4, MET 5; MET has ``eta = 0`` and ``E = pT``).

Processes and settings are in :mod:`.event_processes`, one unit's work in :mod:`.pythia_events`.
Work is split by the driver shared with jets (:mod:`.driver`): processes interleaved round-robin
over shards of ``events_per_shard`` rows, each shard cut into units of at most :data:`UNIT_EVENTS`
events of one sub-process with seeds derived from ``(seed, sub-process, shard, chunk)``, run in a
process pool; the parent writes the shards in order (shuffled with a seeded RNG), so a seed gives
byte-identical files for any number of workers.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from colliderfm.data.generate.driver import (
    SHUFFLE_TAG,
    GenerationJob,
    package_version,
    round_robin,
)
from colliderfm.data.generate.event_processes import SQRT_S, SUBPROCESSES, EventSettings
from colliderfm.data.generate.pythia_events import EventUnit
from colliderfm.data.generate.units import Unit, derive_seeds
from colliderfm.data.schema import EVENT_CLASSES
from colliderfm.data.shards import ShardWriter
from colliderfm.errors import ColliderFMError

__all__ = [
    "DATALIKE_CLASSES",
    "EVENT_PROCESSES",
    "UNIT_EVENTS",
    "EventSettings",
    "generate_events",
]

#: Process key -> label (``-1`` = unlabelled), in output order.
EVENT_PROCESSES: dict[str, int] = {"ttbar": 0, "h2hdm": 1, "datalike": -1}
#: Classes of the data-like mix labelled by sub-process (``label_subprocesses``), label order.
DATALIKE_CLASSES: tuple[str, ...] = tuple(
    k.split("/")[1] for k in SUBPROCESSES if k.startswith("datalike/")
)
#: Most events one unit generates (one Pythia initialisation, ~2 s, per unit: a few % of it).
UNIT_EVENTS = 500
_SUB_INDEX = {k: i for i, k in enumerate(SUBPROCESSES)}
_MIX_TAG, _SEED_TAG = 0x313, 0xE7E


def _unit_seeds(seed: int, process: str, shard: int, chunk: int) -> tuple[tuple[int, ...], int]:
    """Pythia seeds (one per variant) and the NumPy seed of a unit."""
    key = [seed, _SEED_TAG, _SUB_INDEX[process], shard, chunk]
    return derive_seeds(key, len(SUBPROCESSES[process].variants))


def _run_unit(
    unit: Unit, progress: Callable[[int], Any] | None = None
) -> tuple[int, pa.Table, list[float]]:
    """Generate one unit (top-level so that a spawn pool can pickle it).

    Args:
        unit: what to generate.
        progress: called with the number of new selected events (the pool's counter).

    Returns:
        ``(unit index, events, [*cut flow, truth-tag weight sum, vetoed at process level,
        vetoed on early jets, CPU seconds])``.
    """
    cpu = time.process_time()
    gen = EventUnit(unit.process, unit.settings, unit.pythia_seeds, unit.detector_seed)
    table = gen.generate(unit.n, unit.label, on_events=progress)
    stats = [*gen.cutflow.tolist(), gen.truth_tag_weight, *gen.n_vetoed]
    return unit.index, table, [*stats, time.process_time() - cpu]


def _write_shard(writer: ShardWriter, parts: list[pa.Table], rng: np.random.Generator) -> None:
    """Write one shard: its units' events, shuffled."""
    events = pa.concat_tables(parts)
    writer.write(events.take(pa.array(rng.permutation(events.num_rows))))


def datalike_counts(n: int) -> dict[str, int]:
    """Events of each data-like component for ``n`` data-like events (largest remainder).

    Args:
        n: data-like events in total.

    Returns:
        Sub-process key -> count (sums to ``n``).
    """
    keys = [k for k, p in SUBPROCESSES.items() if p.datalike]
    frac = np.array([SUBPROCESSES[k].fraction for k in keys])
    exact = n * frac / frac.sum()
    counts = np.floor(exact).astype(np.int64)
    rest = np.argsort(-(exact - counts), kind="stable")[: n - int(counts.sum())]
    counts[rest] += 1
    return dict(zip(keys, counts.tolist(), strict=True))


def _row_processes(keys: list[str], n: int, seed: int) -> np.ndarray:
    """Sub-process of every output row: processes round-robin, data-like components mixed."""
    rows = round_robin(keys, n)
    if "datalike" in keys:
        counts = datalike_counts(n)
        comp = np.repeat(np.array(list(counts), dtype=object), list(counts.values()))
        comp = np.random.default_rng([seed, _MIX_TAG]).permutation(comp)
        rows[rows == "datalike"] = comp
    return rows


def _efficiency(stats: list[float]) -> float:
    """Selected events per hard-process event (finished by Pythia or vetoed early)."""
    return stats[3] / max(stats[0] + stats[5] + stats[6], 1)


def _veto_dict(settings: EventSettings, process: str) -> dict[str, Any] | None:
    """The manifest record of a sub-process's early veto (None: no veto)."""
    veto = settings.veto(process)
    return None if veto is None else veto.to_dict()


def _check_settings(mass: float, settings: EventSettings) -> None:
    """Validate the event-specific arguments (the shared ones: :class:`GenerationJob`)."""
    if not 2 * 173.0 < mass < 5000.0:
        raise ColliderFMError(f"--mass must be between 346 and 5000 GeV for H -> tt (got {mass})")
    for name in ("btag_eff", "ctag_rate", "light_tag_rate"):
        if not 0.0 <= getattr(settings, name) <= 1.0:
            raise ColliderFMError(f"{name} must be in [0, 1] (got {getattr(settings, name)})")
    bad = {k: v for k, v in dataclasses.asdict(settings.selection).items() if v < 0}
    if bad:
        raise ColliderFMError(f"selection values must be >= 0 (got {bad})")


def _source(
    keys: list[str],
    n: int,
    seed: int,
    per_shard: int,
    s: EventSettings,
    subs: list[str],
    stats: dict[str, list[float]],
) -> dict[str, Any]:
    """The manifest ``source`` record: every setting needed to regenerate the data."""
    return {
        "generator": "colliderfm.data.generate.events",
        "processes": {k: EVENT_PROCESSES[k] for k in keys},
        "subprocesses": subs,
        "datalike_fractions": {k: p.fraction for k, p in SUBPROCESSES.items() if p.datalike}
        if "datalike" in keys
        else {},
        "datalike_counts": datalike_counts(n) if "datalike" in keys else {},
        "truth_tagged": [k for k in subs if SUBPROCESSES[k].truth_tag],
        "pythia_settings": {
            k: [s.pythia_settings(k, variant=v) for v in range(len(SUBPROCESSES[k].variants))]
            for k in subs
        },
        "sqrt_s_gev": SQRT_S,
        "settings": s.to_dict(),
        "selection": dataclasses.asdict(s.selection),
        "n_per_process": n,
        "events_per_shard": per_shard,
        "unit_events": UNIT_EVENTS,
        "seed": seed,
        "seed_derivation": "SeedSequence([seed, 0xE7E, subprocess_index, shard, chunk])"
        ".generate_state(1 + n_variants) -> (s0 = numpy seed, 1 + s_i % 900000000 = Pythia "
        f"Random:seed of variant i); shard shuffle: default_rng([seed, {SHUFFLE_TAG}, shard]); "
        f"data-like mix: default_rng([seed, {_MIX_TAG}])",
        "early_veto": {k: _veto_dict(s, k) for k in subs},
        "vetoed_columns": ["process_level", "early_jets"],
        "vetoed": {k: [int(stats[k][5]), int(stats[k][6])] for k in subs},
        "cutflow_columns": ["generated", "leptons", "bjets", "light_jets"],
        "cutflow": {k: [int(x) for x in stats[k][:4]] for k in subs},
        "events_generated": {k: int(stats[k][0]) for k in subs},
        "selection_efficiency": {k: round(_efficiency(stats[k]), 5) for k in subs},
        "selected_per_cpu_s": {k: round(stats[k][3] / max(stats[k][7], 1e-9), 3) for k in subs},
        "truth_tag_selection_efficiency": {
            k: round(stats[k][4] / max(stats[k][0] + stats[k][5] + stats[k][6], 1), 7)
            for k in subs
            if SUBPROCESSES[k].truth_tag
        },
        "pythia_version": package_version("pythia8mc"),
        "fastjet_version": package_version("fastjet"),
    }


def generate_events(
    processes: list[str],
    n: int,
    out: str | Path,
    seed: int = 0,
    workers: int = 1,
    events_per_shard: int = 10_000,
    mass: float = 550.0,
    settings: EventSettings | None = None,
    progress: bool = True,
    overwrite: bool = False,
    num_shards: int | None = None,
    shard_index: int | None = None,
    label_subprocesses: bool = False,
) -> dict:
    """Generate collision events (reconstructed objects) with Pythia 8 + FastJet as event shards.

    Args:
        processes: process keys: ``ttbar`` (label 0), ``h2hdm`` (label 1), ``datalike``
            (unlabelled mix, label -1). The classes are ``["ttbar", "h2hdm"]``, except with
            ``label_subprocesses``.
        n: selected events per process (the output holds ``n * len(processes)`` events).
        out: output shard directory (appears only when complete).
        seed: base seed; the same seed gives byte-identical shards for any ``workers``.
        workers: parallel generator processes.
        events_per_shard: events per Parquet shard (processes interleaved within each shard).
        mass: heavy Higgs mass of ``h2hdm`` in GeV (overrides ``settings.mass``).
        settings: physics settings (cuts, b-tagging, smearing, selection); defaults if None.
        progress: show a progress bar with selected events/s on stderr.
        overwrite: replace an existing output directory.
        num_shards: cut the data set into this many shards (batch-system mode).
        shard_index: the one shard to generate, ``0 <= shard_index < num_shards``.
        label_subprocesses: label the data-like mix by its sub-process (``processes`` must be
            ``["datalike"]``): classes :data:`DATALIKE_CLASSES` (``ttbar``, ``singletop``,
            ``wjets``, ``ttV``), labels 0-3, for supervised pretraining on simulation. The
            events are those the same seed gives without it (byte for byte but the label).

    Returns:
        The manifest dict (as written to ``out/manifest.json``).
    """
    if label_subprocesses and list(processes) != ["datalike"]:
        raise ColliderFMError(
            "--label-subprocesses labels the data-like mix: use it with --process datalike alone "
            f"(got {','.join(processes)})"
        )
    job = GenerationJob(
        "events",
        processes,
        list(EVENT_PROCESSES),
        n=n,
        out=out,
        seed=seed,
        workers=workers,
        rows_per_shard=events_per_shard,
        progress=progress,
        overwrite=overwrite,
        num_shards=num_shards,
        shard_index=shard_index,
    )
    settings = settings or EventSettings()
    _check_settings(mass, settings)
    settings = dataclasses.replace(settings, mass=float(mass))
    keys = [k for k in EVENT_PROCESSES if k in set(processes)]
    rows = _row_processes(keys, n, seed)
    subs = [k for k in SUBPROCESSES if k in set(rows.tolist())]
    if label_subprocesses:
        labels = {k: DATALIKE_CLASSES.index(k.split("/")[1]) for k in subs}
    else:
        labels = {k: EVENT_PROCESSES[k.split("/")[0]] for k in subs}
    units = job.plan(rows, labels, UNIT_EVENTS, _unit_seeds, settings)
    # cut flow (4), truth-tag weight, vetoed (process level, early jets), CPU seconds
    stats = {k: [0.0] * 8 for k in subs}
    return job.run(
        units,
        list(DATALIKE_CLASSES if label_subprocesses else EVENT_CLASSES),
        _run_unit,
        _write_shard,
        stats,
        lambda: _source(keys, n, seed, job.rows_per_shard, settings, subs, stats),
    )
