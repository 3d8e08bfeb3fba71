"""Synthetic data for the GPU check, and the throughput of the runs made on it.

The GPU machine has no event generator, so ``write`` makes every data set the check needs with
the test suite's synthetic writers (``tests/synth.py``, ``tests/synth_events.py``) in our Parquet
shard format:

* ``OUT/jets/pretrain``: jets for pretraining (labels are ignored there);
* ``OUT/jets/{train,val,test}``: two classes (class 1 jets are wider), for fine-tuning;
* ``OUT/events/pretrain``: unlabelled ttbar-like events for masked object-id.

``rates`` reads runs of ``colliderfm pretrain|finetune`` back: the summary the command printed
(``NAME.json``: ``examples_per_s`` over the whole loop, validation and checkpoints included)
and the steady rate between the logged steps, from the TensorBoard wall times of ``train_loss``
(each logged after ``loss.item()``, which waits for the GPU), skipping the first 20% of the run.

Run: ``python benchmarks/gpu_data.py write OUT [--jets N] [--events N]`` and
``python benchmarks/gpu_data.py rates --runs DIR NAME... [--markdown PATH]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # synth, synth_events


def write_jets(out: Path, n: int, seed: int = 0, max_particles: int = 120) -> Path:
    """Write one jet shard directory (two classes, 20 to ``max_particles`` particles a jet).

    Args:
        out: the directory.
        n: jets.
        seed: RNG seed.
        max_particles: largest multiplicity.

    Returns:
        ``out``.
    """
    from synth import synthetic_jets

    from colliderfm.data.shards import ShardWriter

    chunk = synthetic_jets(n, seed=seed, min_particles=20, max_particles=max_particles)
    with ShardWriter(out, "jets", ["QCD", "Tbqq"], {"generator": "synthetic"}) as w:
        w.write_chunk(chunk)
    return out


def write_all(out: Path, jets: int, events: int, seed: int = 0) -> dict[str, int]:
    """Write every data set of the GPU check under ``out``.

    Args:
        out: parent directory.
        jets: jets in ``jets/pretrain`` and in ``jets/train`` (val: a tenth, test: a fifth).
        events: events in ``events/pretrain``.
        seed: base RNG seed (each set its own offset from it).

    Returns:
        Examples written per set (``jets/train`` -> N, ...).
    """
    from synth_events import write_event_shards

    small, test = max(jets // 10, 64), max(jets // 5, 64)
    sizes = {"jets/pretrain": jets, "jets/train": jets, "jets/val": small, "jets/test": test}
    for i, (name, n) in enumerate(sizes.items()):
        write_jets(out / name, n, seed=seed + i)
    rows = max(256, events // 16)
    path = out / "events" / "pretrain"
    write_event_shards(path, n=events, seed=seed + 10, labelled=False, rows_per_shard=rows)
    return {**sizes, "events/pretrain": events}


def _batch_size(run: Path) -> int | None:
    """The ``train.batch_size`` saved with a run's checkpoint (None when not found)."""
    import yaml

    for path in (run / "config.yaml", run / "last" / "config.yaml"):
        if path.is_file():
            meta = yaml.safe_load(path.read_text()) or {}
            size = ((meta.get("config") or {}).get("train") or {}).get("batch_size")
            return int(size) if size else None
    return None


def steady_rate(run: Path, batch: int, skip: float = 0.2) -> float | None:
    """Examples/s between logged training steps, from the run's TensorBoard wall times.

    Args:
        run: a run directory (``run/tb`` holds its events).
        batch: examples per step.
        skip: leave out the first fraction of the steps (start-up, kernel selection).

    Returns:
        Examples per second from the first logged step past ``skip`` to the last one, or None
        (no TensorBoard, fewer than two logged steps).
    """
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return None
    if not (run / "tb").is_dir():
        return None
    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    if "train_loss" not in acc.Tags().get("scalars", []):
        return None
    events = sorted(acc.Scalars("train_loss"), key=lambda e: e.step)
    last = events[-1].step
    kept = [e for e in events if e.step >= skip * last]
    if len(kept) < 2 or kept[-1].wall_time <= kept[0].wall_time:
        return None
    return batch * (kept[-1].step - kept[0].step) / (kept[-1].wall_time - kept[0].wall_time)


def run_rates(runs: Path, name: str) -> dict[str, Any]:
    """What one run of the GPU check reports.

    Args:
        runs: directory of the runs (``NAME/`` the run, ``NAME.json`` the printed summary,
            ``NAME.rc`` the exit status, ``NAME.wall`` the process's wall seconds).
        name: the run.

    Returns:
        ``name``, ``rc``, ``wall_s`` (process), ``steps``, ``batch``, ``examples`` (trained on,
        or evaluated: the summary's ``n``), ``process_per_s`` (examples over the process's wall
        time, start-up included), ``loop_per_s`` (the summary's ``examples_per_s``),
        ``steady_per_s`` and, where present, ``val_auc`` / ``test_auc`` / ``probe_auc``;
        missing values are None.
    """
    run = runs / name

    def read(suffix: str) -> str | None:
        p = runs / f"{name}{suffix}"
        return p.read_text().strip() if p.is_file() else None

    rc, wall = read(".rc"), read(".wall")
    summary: dict[str, Any] = {}
    text = read(".json")
    if text:
        try:
            summary = json.loads(text[text.index("{") :])
        except ValueError:
            summary = {}
    batch = _batch_size(run) if run.is_dir() else None
    steps = summary.get("steps")
    examples = summary.get("n") if steps is None else (steps * batch if batch else None)
    best = summary.get("best") if isinstance(summary.get("best"), dict) else {}
    test = summary.get("test")
    return {
        "name": name,
        "rc": int(rc) if rc not in (None, "") else None,
        "wall_s": float(wall) if wall else None,
        "steps": steps,
        "batch": batch,
        "examples": examples,
        "process_per_s": examples / float(wall) if examples and wall else None,
        "loop_per_s": summary.get("examples_per_s"),
        "steady_per_s": steady_rate(run, batch) if batch and run.is_dir() else None,
        "val_auc": best.get("val_auc", summary.get("val_auc")),
        "test_auc": test.get("auc") if isinstance(test, dict) else summary.get("auc"),
        "probe_auc": summary.get("probe_auc"),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    """The runs as a markdown table.

    Args:
        rows: from :func:`run_rates`.

    Returns:
        Markdown text.
    """

    def cell(v: Any, fmt: str) -> str:
        return "-" if v is None else fmt.format(v)

    lines = [
        "| run | exit | steps | batch | examples/s (steady) | examples/s (loop) "
        "| examples/s (process) | process s | AUC |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        auc = r["test_auc"] if r["test_auc"] is not None else r["val_auc"]
        lines.append(
            f"| {r['name']} | {cell(r['rc'], '{}')} | {cell(r['steps'], '{}')} | "
            f"{cell(r['batch'], '{}')} | {cell(r['steady_per_s'], '{:.0f}')} | "
            f"{cell(r['loop_per_s'], '{:.0f}')} | {cell(r['process_per_s'], '{:.0f}')} | "
            f"{cell(r['wall_s'], '{:.0f}')} | "
            f"{cell(auc, '{:.4f}')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write", help="write the synthetic data sets")
    w.add_argument("out", type=Path)
    w.add_argument("--jets", type=int, default=60_000)
    w.add_argument("--events", type=int, default=110_000)
    w.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("rates", help="throughput of finished runs")
    r.add_argument("--runs", type=Path, required=True)
    r.add_argument("names", nargs="+")
    r.add_argument("--markdown", type=Path, default=None)
    r.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    if a.cmd == "write":
        sizes = write_all(a.out, a.jets, a.events, a.seed)
        for name, n in sizes.items():
            print(f"{a.out / name}: {n}")
        return
    rows = [run_rates(a.runs, n) for n in a.names]
    text = markdown(rows)
    print(text, end="")
    if a.markdown:
        a.markdown.write_text(text)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
