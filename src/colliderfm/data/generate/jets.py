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
  At most one jet per event (the highest-pT passing one), so jets are independent.
  Selection efficiencies are about 25-35% of generated events (recorded in the manifest).

Work is split into independent units: the output is cut into shards of ``jets_per_shard`` jets
with the processes interleaved round-robin (each shard holds a balanced mix, shuffled with a seeded
RNG); one unit generates up to :data:`UNIT_JETS` jets of one process for one shard, with seeds
derived from ``(seed, process, shard, chunk)``. Units run in a process pool (fork on Linux, spawn
elsewhere); the parent assembles and writes the shards in order with :class:`ShardWriter`, so the
same ``seed`` gives byte-identical files for any number of workers.

FastJet: M. Cacciari, G.P. Salam and G. Soyez, EPJC 72 (2012) 1896 [arXiv:1111.6097]; its banner is
suppressed. Pythia 8: C. Bierlich et al., SciPost Phys. Codebases 8 (2022).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from colliderfm.data.generate.processes import PROCESS_INDEX, PROCESSES, SPECS
from colliderfm.data.generate.pythia_jets import SQRT_S, JetSettings, JetUnit
from colliderfm.data.generate.units import Unit, UnitPool, derive_seeds, worker_progress
from colliderfm.data.shards import ShardWriter, read_manifest
from colliderfm.data.schema import JETCLASS_CLASSES, JetChunk
from colliderfm.errors import ColliderFMError

__all__ = ["PROCESSES", "UNIT_JETS", "generate_jets"]

#: Most jets one unit generates (one Pythia initialisation, ~0.8 s, per unit).
UNIT_JETS = 250
_SHUFFLE_TAG = 0x5EED


def _unit_seeds(seed: int, process: str, shard: int, chunk: int) -> tuple[tuple[int, ...], int]:
    """Derive the Pythia seeds (one per variant) and detector seed of a unit."""
    return derive_seeds([seed, PROCESS_INDEX[process], shard, chunk], len(SPECS[process].variants))


def _run_unit(
    unit: Unit, progress: Callable[[int], Any] | None = None
) -> tuple[int, JetChunk, tuple[int, int]]:
    """Generate one unit (top-level so that a spawn pool can pickle it).

    Args:
        unit: what to generate.
        progress: called with the number of new jets after each batch; in a pool worker the
            default adds them to the shared counter.

    Returns:
        ``(unit index, jets, (events generated, jets selected before truncation))``.
    """
    if progress is None:
        progress = worker_progress()
    gen = JetUnit(unit.process, unit.settings, unit.pythia_seeds, unit.detector_seed)
    chunk = gen.generate(unit.n, unit.label, on_jets=progress)
    return unit.index, chunk, (gen.n_events, gen.n_selected)


def _shard_counts(n_total: int, n_proc: int, jets_per_shard: int) -> list[list[int]]:
    """Jets of each process in each shard: processes interleaved round-robin over the output."""
    out = []
    for lo in range(0, n_total, jets_per_shard):
        hi = min(lo + jets_per_shard, n_total)
        out.append(np.bincount(np.arange(lo, hi) % n_proc, minlength=n_proc).tolist())
    return out


def _check_args(
    processes: list[str],
    n: int,
    seed: int,
    workers: int,
    jets_per_shard: int,
    pt_min: float,
    pt_max: float,
) -> list[str]:
    """Validate arguments; return the unique process keys in JetClass class order."""
    unknown = [p for p in processes if p not in PROCESSES]
    if unknown or not processes:
        what = f"unknown process {', '.join(map(repr, unknown))}" if unknown else "no process"
        raise ColliderFMError(f"{what}; valid processes: {', '.join(PROCESSES)}")
    if n < 1:
        raise ColliderFMError(f"--n must be >= 1 (got {n})")
    if seed < 0:
        raise ColliderFMError(f"--seed must be >= 0 (got {seed})")
    if workers < 1:
        raise ColliderFMError(f"--workers must be >= 1 (got {workers})")
    if jets_per_shard < 1:
        raise ColliderFMError(f"--jets-per-shard must be >= 1 (got {jets_per_shard})")
    if not 0 < pt_min < pt_max:
        raise ColliderFMError(f"need 0 < pt_min < pt_max (got {pt_min}, {pt_max})")
    order = {c: i for i, c in enumerate(JETCLASS_CLASSES)}
    return sorted(set(processes), key=lambda p: order[PROCESSES[p]])


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:  # pragma: no cover - depends on the environment
        return "unknown"


def _source(
    keys: list[str],
    n: int,
    seed: int,
    jets_per_shard: int,
    s: JetSettings,
    stats: dict[str, list[int]],
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
        "jets_per_event": 1,
        "detector": s.detector.to_dict(),
        "n_per_process": n,
        "jets_per_shard": jets_per_shard,
        "unit_jets": UNIT_JETS,
        "seed": seed,
        "seed_derivation": "SeedSequence([seed, jetclass_index(process), shard, chunk])"
        ".generate_state(1 + n_variants) -> (s0 = detector numpy seed, "
        "1 + s_i % 900000000 = Pythia Random:seed of variant i); shard shuffle: "
        f"default_rng([seed, {_SHUFFLE_TAG}, shard])",
        "events_generated": {k: stats[k][0] for k in keys},
        "selection_efficiency": {k: round(stats[k][1] / max(stats[k][0], 1), 4) for k in keys},
        "pythia_version": _version("pythia8mc"),
        "fastjet_version": _version("fastjet"),
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

    Returns:
        The manifest dict (as written to ``out/manifest.json``).
    """
    if (num_shards is None) != (shard_index is None):
        raise ColliderFMError("--num-shards and --shard-index must be given together")
    if num_shards is not None and shard_index is not None:
        if num_shards < 1 or not 0 <= shard_index < num_shards:
            raise ColliderFMError(
                f"need 0 <= --shard-index < --num-shards (got {shard_index}, {num_shards})"
            )
        jets_per_shard = -(-n * len(set(processes)) // num_shards)
    keys = _check_args(processes, n, seed, workers, jets_per_shard, pt_min, pt_max)
    settings = JetSettings(pt_min=float(pt_min), pt_max=float(pt_max))
    classes = [PROCESSES[k] for k in keys]
    shards = _shard_counts(n * len(keys), len(keys), jets_per_shard)
    units: list[Unit] = []
    for s, counts in enumerate(shards):
        for label, (key, count) in enumerate(zip(keys, counts, strict=True)):
            for c, lo in enumerate(range(0, count, UNIT_JETS)):
                py_seeds, det_seed = _unit_seeds(seed, key, s, c)
                units.append(
                    Unit(
                        len(units),
                        key,
                        label,
                        s,
                        c,
                        min(UNIT_JETS, count - lo),
                        py_seeds,
                        det_seed,
                        settings,
                    )
                )
    wanted = list(range(len(shards))) if shard_index is None else [shard_index]
    if shard_index is not None:
        if shard_index >= len(shards):
            raise ColliderFMError(
                f"shard {shard_index} is empty: {n} jets per process fill only {len(shards)} shards"
            )
        mine = [u for u in units if u.shard == shard_index]
        units = [dataclasses.replace(u, index=i) for i, u in enumerate(mine)]
    shard_units = [[u.index for u in units if u.shard == s] for s in wanted]
    stats = {k: [0, 0] for k in keys}  # events generated, jets selected

    from tqdm.auto import tqdm

    # the manifest's source is filled in once the event counts are known
    writer = ShardWriter(
        out, "jets", classes, {}, rows_per_shard=jets_per_shard, overwrite=overwrite
    )
    n_workers = min(workers, len(units))
    pool = UnitPool(n_workers)  # before the progress bar (see UnitPool)
    bar = tqdm(
        total=sum(u.n for u in units),
        unit="jet",
        file=sys.stderr,
        disable=not progress,
        desc="generate jets",
        smoothing=0.1,
    )
    with writer, bar:
        pending: dict[int, JetChunk] = {}
        next_shard = 0

        def collect(index: int, chunk: JetChunk, counts: tuple[int, int]) -> None:
            nonlocal next_shard
            pending[index] = chunk
            for i, c in enumerate(counts):
                stats[units[index].process][i] += c
            # write every shard whose units are all done, in shard order
            while next_shard < len(wanted) and all(i in pending for i in shard_units[next_shard]):
                jets = JetChunk.concat([pending.pop(i) for i in shard_units[next_shard]])
                rng = np.random.default_rng([seed, _SHUFFLE_TAG, wanted[next_shard]])
                writer.write_chunk(jets.take(rng.permutation(len(jets))))
                next_shard += 1

        for result in pool.run(_run_unit, units, bar):
            collect(*result)
        writer.source = _source(keys, n, seed, jets_per_shard, settings, stats)
        if shard_index is not None:
            writer.source.update(num_shards=num_shards, shard_index=shard_index)
    return read_manifest(out)
