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
from pathlib import Path
from typing import Any

import pytest

from colliderfm.data.generate.events import generate_events

try:  # run as a script (benchmarks/ on sys.path) or through pytest (rootdir import)
    from bench_generate import worker_scaling
except ImportError:  # pragma: no cover
    from benchmarks.bench_generate import worker_scaling

PROCESSES = ["ttbar", "h2hdm"]


def run(n: int = 40, seed: int = 0) -> dict[str, float]:
    """Time the generation of ``n`` selected events per process with 1 and 2 workers.

    Args:
        n: selected events per process.
        seed: generation seed.

    Returns:
        ``{"events_per_s_1": .., "events_per_s_2": .., "speedup": ..}``.
    """
    per_shard = max(1, n * len(PROCESSES) // 2)

    def gen(out: Path, workers: int) -> dict[str, Any]:
        return generate_events(
            PROCESSES,
            n,
            out,
            seed=seed,
            workers=workers,
            events_per_shard=per_shard,
            progress=False,
        )

    return worker_scaling(gen, "event")


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
