"""Throughput of the built-in event generator (Pythia 8 + FastJet) with 1 and 2 workers.

Generates the same ttbar + h2hdm sample (same seed, so the same events) with 1 and 2 worker
processes and prints selected events/s for each, the 2-worker speed-up, each process's selection
efficiency, and checks that both runs wrote byte-identical shards. The sample is cut into 2 shards
so that there are at least 2 independent units per process for the workers to share.

Events per CPU-second (parent + workers) are printed too: they stay meaningful when other jobs
share the cores (a speed-up needs 2 idle cores; the load average is printed).

Run: ``python benchmarks/bench_generate_events.py [--n 40]`` or
``pytest -m bench benchmarks/bench_generate_events.py -s``. With the default 40 events per process
this takes one to two minutes on 2 free cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import pytest

from colliderfm.data.generate.events import generate_events

PROCESSES = ["ttbar", "h2hdm"]


def _cpu_seconds() -> float:
    """CPU time of this process plus its finished children (pool workers)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


def run(n: int = 40, seed: int = 0) -> dict[str, float]:
    """Time the generation of ``n`` selected events per process with 1 and 2 workers.

    Args:
        n: selected events per process.
        seed: generation seed.

    Returns:
        ``{"events_per_s_1": .., "events_per_s_2": .., "speedup": ..}``.
    """
    out: dict[str, float] = {}
    shas = []
    per_shard = max(1, n * len(PROCESSES) // 2)
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            t0, c0 = time.perf_counter(), _cpu_seconds()
            m = generate_events(
                PROCESSES,
                n,
                Path(tmp) / f"w{workers}",
                seed=seed,
                workers=workers,
                events_per_shard=per_shard,
                progress=False,
            )
            dt, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
            out[f"events_per_s_{workers}"] = m["n"] / dt
            shas.append([s["sha256"] for s in m["shards"]])
            eff = ", ".join(f"{k} {v:.1%}" for k, v in m["source"]["selection_efficiency"].items())
            print(
                f"workers={workers}: {m['n']} events in {dt:6.1f} s = {m['n'] / dt:6.2f} "
                f"selected events/s, {m['n'] / cpu:6.2f} per CPU-s   (selection efficiency: {eff})"
            )
    out["speedup"] = out["events_per_s_2"] / out["events_per_s_1"]
    print(
        f"2-worker speed-up: {out['speedup']:.2f}x   identical shards: {shas[0] == shas[1]}   "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    assert shas[0] == shas[1], "1 and 2 workers wrote different shards"
    return out


@pytest.mark.bench
def test_bench_generate_events() -> None:
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    res = run()
    assert res["events_per_s_1"] > 0 and res["speedup"] > 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="selected events per process")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run(args.n, args.seed)
