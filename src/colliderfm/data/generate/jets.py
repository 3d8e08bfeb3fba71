"""The built-in jet generator: Pythia 8 + FastJet -> canonical Parquet shards.

Physics (defaults; see :mod:`.processes` for the hard process of each class):

* pp collisions at sqrt(s) = 14 TeV, Pythia 8 default tune, multi-parton interactions and
  hadronisation on; particles with ``c tau > 10 mm`` (K_S, Lambda, ...) are stable.
* The hard-process window is ``pTHat in [pt_min - 100, pt_max + 100]`` GeV (shifted up for the
  classes with a neutrino in the jet): most selected jets come from there. (Roughly 15-20% of the
  jets in the pT window would come from other pTHat through radiation; they are not generated, a
  documented trade-off for a 3-5x better efficiency.)
* Visible final-state particles (``isFinal``, no neutrinos) pass the detector response of
  :mod:`.detector`, are clustered with anti-kT ``R = 0.8`` (FastJet), and jets keep their 200
  highest-pT constituents, sorted by pT. Jet scalars are sums of the kept constituents.
* Selection: ``pt_min <= jet_pt <= pt_max``, ``|jet_eta| < 2``; for resonance classes the
  resonance and all its visible decay partons within ``dR < 0.8`` of the jet axis (:mod:`.truth`).
  At most one jet per event (the highest-pT passing one), so jets are independent
  (``--jets-per-event 0`` keeps every passing jet: more jets per Pythia event, but another pT
  spectrum, see ``docs/generation.md``). Selection efficiencies, selected jets per generated
  event, are about 0.25-0.35 (recorded in the manifest with the selected jets per CPU-second).

Work is split into independent units: the output is cut into shards of ``jets_per_shard`` jets
with the processes interleaved round-robin (each shard holds a balanced mix, shuffled with a seeded
RNG); one unit generates up to :data:`UNIT_JETS` jets of one process for one shard, with seeds
derived from ``(seed, process, shard, chunk)``. Units run in a process pool (fork on Linux, spawn
elsewhere); the parent assembles and writes the shards in order with :class:`ShardWriter`, so the
same ``seed`` gives byte-identical files for any number of workers. The driver doing this is
shared with the event generator (:mod:`.driver`); this module holds what is particular to jets.

FastJet: M. Cacciari, G.P. Salam and G. Soyez, EPJC 72 (2012) 1896 [arXiv:1111.6097]; its banner is
suppressed. Pythia 8: C. Bierlich et al., SciPost Phys. Codebases 8 (2022).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from colliderfm.data.generate.driver import (
    SHUFFLE_TAG,
    GenerationJob,
    package_version,
    round_robin,
)
from colliderfm.data.generate.processes import PROCESS_INDEX, PROCESSES, SPECS
from colliderfm.data.generate.pythia_jets import SQRT_S, JetSettings, JetUnit
from colliderfm.data.generate.units import Unit, derive_seeds
from colliderfm.data.schema import JETCLASS_CLASSES, ConstituentChunk
from colliderfm.data.shards import ShardWriter
from colliderfm.errors import ColliderFMError

__all__ = ["PROCESSES", "UNIT_JETS", "generate_jets"]

#: Most jets one unit generates (one Pythia initialisation, ~0.5 s per instance, per unit: a
#: 1000-jet unit of top jets takes ~40 CPU-s, so the set-up is ~1% of it).
UNIT_JETS = 1000


def _unit_seeds(seed: int, process: str, shard: int, chunk: int) -> tuple[tuple[int, ...], int]:
    """Derive the Pythia seeds (one per variant) and detector seed of a unit."""
    return derive_seeds([seed, PROCESS_INDEX[process], shard, chunk], len(SPECS[process].variants))


def _run_unit(
    unit: Unit, progress: Callable[[int], Any] | None = None
) -> tuple[int, ConstituentChunk, tuple[int, int]]:
    """Generate one unit (top-level so that a spawn pool can pickle it).

    Args:
        unit: what to generate.
        progress: called with the number of new jets after each batch (the pool's counter).

    Returns:
        ``(unit index, jets, (events generated, jets selected before truncation, CPU seconds))``.
    """
    cpu = time.process_time()
    gen = JetUnit(unit.process, unit.settings, unit.pythia_seeds, unit.detector_seed)
    chunk = gen.generate(unit.n, unit.label, on_jets=progress)
    return unit.index, chunk, (gen.n_events, gen.n_selected, time.process_time() - cpu)


def _write_shard(
    writer: ShardWriter, parts: list[ConstituentChunk], rng: np.random.Generator
) -> None:
    """Write one shard: its units' jets, shuffled."""
    jets = ConstituentChunk.concat(parts)
    writer.write_chunk(jets.take(rng.permutation(len(jets))))


def _check_args(pt_min: float, pt_max: float) -> None:
    """Validate the jet-specific arguments (the shared ones: :class:`GenerationJob`)."""
    if not 0 < pt_min < pt_max:
        raise ColliderFMError(f"need 0 < pt_min < pt_max (got {pt_min}, {pt_max})")


def _source(
    keys: list[str],
    n: int,
    seed: int,
    jets_per_shard: int,
    s: JetSettings,
    stats: dict[str, list[float]],
) -> dict[str, Any]:
    """The manifest ``source`` record: every setting needed to regenerate the data."""
    return {
        "generator": "colliderfm.data.generate.jets",
        "processes": {k: PROCESSES[k] for k in keys},
        "pythia_settings": {
            k: [s.pythia_settings(k, variant=v) for v in range(len(SPECS[k].variants))]
            for k in keys
        },
        "sqrt_s_gev": SQRT_S,
        "mpi": s.mpi,
        "hadronisation": True,
        "stable_ctau_above_mm": s.tau0_max,
        "jet_algorithm": "anti-kt",
        "R": s.radius,
        "pt_min_gev": s.pt_min,
        "pt_max_gev": s.pt_max,
        "abs_eta_max": s.eta_max,
        "pthat_window_gev": {k: list(s.pthat_window(k)) for k in keys},
        "truth_match_dr": s.radius,
        "max_particles": s.max_particles,
        "jets_per_event": s.jets_per_event or "all passing",
        "detector": s.detector.to_dict(),
        "n_per_process": n,
        "jets_per_shard": jets_per_shard,
        "unit_jets": UNIT_JETS,
        "seed": seed,
        "seed_derivation": "SeedSequence([seed, jetclass_index(process), shard, chunk])"
        ".generate_state(1 + n_variants) -> (s0 = detector numpy seed, "
        "1 + s_i % 900000000 = Pythia Random:seed of variant i); shard shuffle: "
        f"default_rng([seed, {SHUFFLE_TAG}, shard])",
        "events_generated": {k: int(stats[k][0]) for k in keys},
        "selection_efficiency": {k: round(stats[k][1] / max(stats[k][0], 1), 4) for k in keys},
        "selected_per_cpu_s": {k: round(stats[k][1] / max(stats[k][2], 1e-9), 3) for k in keys},
        "pythia_version": package_version("pythia8mc"),
        "fastjet_version": package_version("fastjet"),
    }


def generate_jets(
    processes: list[str],
    n: int,
    out: str | Path,
    seed: int = 0,
    workers: int = 1,
    jets_per_shard: int = 10_000,
    pt_min: float = 550.0,
    pt_max: float = 650.0,
    progress: bool = True,
    overwrite: bool = False,
    num_shards: int | None = None,
    shard_index: int | None = None,
    settings: JetSettings | None = None,
) -> dict:
    """Generate labelled jets with Pythia 8 + FastJet and write them as canonical shards.

    For batch systems, ``num_shards``/``shard_index`` generate only shard ``shard_index`` of a
    data set cut into ``num_shards`` equal shards (``jets_per_shard`` is then derived); each
    such job is independent and reproducible, and :func:`colliderfm.data.merge.merge_shards`
    checks and combines the finished directories.

    Args:
        processes: process keys (see :data:`PROCESSES`), e.g. ``["top", "qcd"]``. The class list
            is their class names in JetClass order (``top,qcd`` -> ``["QCD", "Tbqq"]``).
        n: jets per process (the output holds ``n * len(processes)`` jets, balanced).
        out: output shard directory (appears only when complete).
        seed: base seed; the same seed gives byte-identical shards for any ``workers``.
        workers: parallel generator processes.
        jets_per_shard: jets per Parquet shard (processes interleaved within each shard).
        pt_min: low edge of the jet pT window, GeV.
        pt_max: high edge of the jet pT window, GeV.
        progress: show a progress bar with jets/s on stderr.
        overwrite: replace an existing output directory.
        num_shards: cut the data set into this many shards (batch-system mode).
        shard_index: the one shard to generate, ``0 <= shard_index < num_shards``.
        settings: physics settings (e.g. ``mpi=False`` for the fast mode, ``jets_per_event``);
            defaults if None; ``pt_min``/``pt_max`` replace its window.

    Returns:
        The manifest dict (as written to ``out/manifest.json``).
    """
    job = GenerationJob(
        "jets",
        processes,
        list(PROCESSES),
        n=n,
        out=out,
        seed=seed,
        workers=workers,
        rows_per_shard=jets_per_shard,
        progress=progress,
        overwrite=overwrite,
        num_shards=num_shards,
        shard_index=shard_index,
    )
    _check_args(pt_min, pt_max)
    order = {c: i for i, c in enumerate(JETCLASS_CLASSES)}
    keys = sorted(set(processes), key=lambda p: order[PROCESSES[p]])
    settings = dataclasses.replace(
        settings or JetSettings(), pt_min=float(pt_min), pt_max=float(pt_max)
    )
    labels = {k: i for i, k in enumerate(keys)}
    units = job.plan(round_robin(keys, n), labels, UNIT_JETS, _unit_seeds, settings)
    stats = {k: [0.0, 0.0, 0.0] for k in keys}  # events generated, jets selected, CPU seconds
    return job.run(
        units,
        [PROCESSES[k] for k in keys],
        _run_unit,
        _write_shard,
        stats,
        lambda: _source(keys, n, seed, job.rows_per_shard, settings, stats),
    )
