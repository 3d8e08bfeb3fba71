"""Throughput of the built-in jet generator (Pythia 8 + FastJet) with 1 and 2 workers.

Generates the same top + QCD sample (same seed, so the same jets) with 1 and 2 worker processes,
prints jets/s for each, the 2-worker speed-up, each process's selection efficiency, and checks that
both runs wrote byte-identical shards. With the default 250 jets per process this takes about a
minute on 2 free cores (the work splits into one unit per process, so 2 workers can at best halve
the time).

Also prints jets per CPU-second (parent + workers), which stays meaningful when other jobs share
the cores (the load average is printed too: a speed-up needs 2 idle cores).

Run: ``python benchmarks/bench_generate.py [--n 250]`` or
``pytest -m bench benchmarks/bench_generate.py -s``.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from colliderfm.data.generate import generate_jets

PROCESSES = ["top", "qcd"]


def _cpu_seconds() -> float:
    """CPU time of this process plus its finished children (pool workers)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


def worker_scaling(generate: Callable[[Path, int], dict[str, Any]], unit: str) -> dict[str, float]:
    """Time one generation with 1 and then 2 workers; check they wrote the same shards.

    Args:
        generate: ``(out, workers) -> manifest`` (same sample, same seed, each call).
        unit: what a row is (``"jet"``, ``"event"``), for keys and messages.

    Returns:
        ``{"<unit>s_per_s_1": .., "<unit>s_per_s_2": .., "speedup": ..}``.
    """
    out: dict[str, float] = {}
    shas = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            t0, c0 = time.perf_counter(), _cpu_seconds()
            m = generate(Path(tmp) / f"w{workers}", workers)
            dt, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
            out[f"{unit}s_per_s_{workers}"] = m["n"] / dt
            shas.append([s["sha256"] for s in m["shards"]])
            eff = ", ".join(f"{k} {v:.1%}" for k, v in m["source"]["selection_efficiency"].items())
            print(
                f"workers={workers}: {m['n']} {unit}s in {dt:6.1f} s = {m['n'] / dt:6.2f} "
                f"{unit}s/s, {m['n'] / cpu:6.2f} per CPU-s   (selection efficiency: {eff})"
            )
    out["speedup"] = out[f"{unit}s_per_s_2"] / out[f"{unit}s_per_s_1"]
    print(
        f"2-worker speed-up: {out['speedup']:.2f}x   identical shards: {shas[0] == shas[1]}   "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    assert shas[0] == shas[1], "1 and 2 workers wrote different shards"
    return out


def run(n: int = 250, seed: int = 0) -> dict[str, float]:
    """Time the generation of ``n`` jets per process with 1 and 2 workers.

    Args:
        n: jets per process.
        seed: generation seed.

    Returns:
        ``{"jets_per_s_1": .., "jets_per_s_2": .., "speedup": ..}``.
    """

    def gen(out: Path, workers: int) -> dict[str, Any]:
        return generate_jets(PROCESSES, n, out, seed=seed, workers=workers, progress=False)

    return worker_scaling(gen, "jet")


@pytest.mark.bench
def test_bench_generate() -> None:
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    res = run()
    assert res["jets_per_s_1"] > 0 and res["speedup"] > 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=250, help="jets per process")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run(args.n, args.seed)
