"""Data-loading throughput vs the training step's consumption rate.

Measures, in one run:

* jets/s delivered by ``ConstituentStream`` through a ``DataLoader`` (shards -> padded,
  trimmed, featurised batches) with 0 and 2 workers;
* jets/s consumed by a training step (forward + backward + AdamW) of the ``small`` classifier on
  the same batches, fp32 and bf16;
* jets/s of ``colliderfm convert`` from a JetClass-schema ROOT file.

Goal: the loader delivers >= 3x what the ``small`` model trains on, so it is never the
bottleneck. Data: ``--data DIR`` (shards) or synthetic jets with realistic multiplicities.

Run: ``python benchmarks/bench_loader.py [--data DIR] [--jets 20000]`` or
``pytest -m bench benchmarks/bench_loader.py -s``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from colliderfm.data.schema import ConstituentChunk, jet_scalars_from_particles  # noqa: E402
from colliderfm.data.shards import ShardWriter  # noqa: E402
from colliderfm.data.stream import ConstituentStream  # noqa: E402
from colliderfm.models import Classifier, create_model  # noqa: E402


def synthetic(n: int, seed: int = 0) -> ConstituentChunk:
    """Jets with 20-120 particles (mean ~55) around random axes.

    Args:
        n: jets.
        seed: RNG seed.

    Returns:
        The jets.
    """
    rng = np.random.default_rng(seed)
    counts = np.clip(rng.normal(55, 18, n), 10, 137).astype(np.int64)
    tot = int(counts.sum())
    jet = np.repeat(np.arange(n), counts)
    eta = rng.normal(0, 0.2, tot) + rng.uniform(-1.5, 1.5, n)[jet]
    phi = rng.normal(0, 0.2, tot) + rng.uniform(-3, 3, n)[jet]
    pt = rng.exponential(10, tot) + 0.5
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    c = ConstituentChunk(
        counts=counts,
        px=px.astype(np.float32),
        py=py.astype(np.float32),
        pz=pz.astype(np.float32),
        energy=np.sqrt(px**2 + py**2 + pz**2).astype(np.float32),
        charge=rng.integers(-1, 2, tot).astype(np.int8),
        type_id=rng.choice([211, -211, 22, 130], tot).astype(np.int32),
        label=rng.integers(0, 2, n).astype(np.int64),
    )
    c.jet = jet_scalars_from_particles(c)
    return c


def loader_rate(data: Path, workers: int, batch: int, max_jets: int) -> float:
    """Jets/s delivered by the training loader (one pass, up to ``max_jets``).

    Args:
        data: shard directory.
        workers: DataLoader workers.
        batch: jets per batch.
        max_jets: stop after this many jets.

    Returns:
        Jets per second.
    """
    stream = ConstituentStream(data, batch_size=batch, seed=0, buffer_size=10_000)
    dl = DataLoader(stream, batch_size=None, num_workers=workers)
    n, t0 = 0, time.perf_counter()
    for b in dl:
        n += len(b)
        if n >= max_jets:
            break
    return n / (time.perf_counter() - t0)


def train_rate(data: Path, batch: int, bf16: bool, steps: int = 6) -> float:
    """Jets/s consumed by training steps of the ``small`` classifier (median of steps).

    Args:
        data: shard directory.
        batch: jets per step.
        bf16: bf16 autocast.
        steps: timed steps (after one warm-up step).

    Returns:
        Jets per second.
    """
    torch.manual_seed(0)
    model = Classifier(create_model("part", "small"), 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = iter(ConstituentStream(data, batch_size=batch, seed=1))
    times = []
    for i in range(steps + 1):
        b = next(batches)
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(b.features, b.mask, b.vectors)
        loss = F.cross_entropy(logits.float(), b.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def root_convert_rate(chunk: ConstituentChunk, tmp: Path) -> float:
    """Jets/s of ``convert`` from a JetClass-schema ROOT file.

    Args:
        chunk: jets to write into the ROOT file.
        tmp: scratch directory.

    Returns:
        Jets per second.
    """
    import awkward as ak
    import uproot

    from colliderfm.data.convert import convert

    offs = chunk.offsets

    def jag(a: np.ndarray) -> ak.Array:
        return ak.unflatten(a, chunk.counts)

    branches = {f"part_{k}": jag(getattr(chunk, k)) for k in ("px", "py", "pz", "energy")}
    branches["part_charge"] = jag(chunk.charge.astype(np.float32))
    branches["part_isChargedHadron"] = jag((chunk.charge != 0).astype(np.float32))
    branches["label_QCD"] = (chunk.label == 0).astype(np.float32)
    branches["label_Tbqq"] = (chunk.label == 1).astype(np.float32)
    assert offs[-1] == chunk.px.size
    path = tmp / "jets.root"
    with uproot.recreate(path) as f:
        f.mktree(
            "tree", {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in branches.items()}
        )
        f["tree"].extend(branches)
    t0 = time.perf_counter()
    convert([path], "jetclass", tmp / "converted", progress=False)
    return len(chunk) / (time.perf_counter() - t0)


def run(data: Path | None, jets: int, batch: int = 256) -> dict[str, float]:
    """Run every measurement.

    Args:
        data: shard directory, or None for synthetic jets.
        jets: jets per loader measurement.
        batch: batch size.

    Returns:
        Rates (jets/s) and ratios.
    """
    with tempfile.TemporaryDirectory() as tmp:
        tmp_p = Path(tmp)
        chunk = synthetic(jets)
        if data is None:
            data = tmp_p / "shards"
            with ShardWriter(data, "jets", ["QCD", "Tbqq"], {"generator": "bench"}) as w:
                w.write_chunk(chunk)
        res = {
            "loader_w0": loader_rate(data, 0, batch, jets),
            "loader_w2": loader_rate(data, 2, batch, jets),
            "train_fp32": train_rate(data, batch, False),
            "train_bf16": train_rate(data, batch, True),
            "convert_root": root_convert_rate(chunk, tmp_p),
        }
    fastest = max(res["train_fp32"], res["train_bf16"])
    res["ratio_w0"] = res["loader_w0"] / fastest
    res["ratio_w2"] = res["loader_w2"] / fastest
    return res


def report(res: dict[str, float]) -> None:
    """Print the measurements.

    Args:
        res: output of :func:`run`.
    """
    print(
        f"loader, 0 workers : {res['loader_w0']:9.0f} jets/s "
        f"({res['ratio_w0']:.1f}x the fastest training step)"
    )
    print(f"loader, 2 workers : {res['loader_w2']:9.0f} jets/s ({res['ratio_w2']:.1f}x)")
    print(f"train small fp32  : {res['train_fp32']:9.0f} jets/s")
    print(f"train small bf16  : {res['train_bf16']:9.0f} jets/s")
    print(f"convert ROOT      : {res['convert_root']:9.0f} jets/s")


@pytest.mark.bench
def test_bench_loader() -> None:
    """The loader is never the bottleneck (>= 3x the small model's training rate)."""
    res = run(None, 10_000)
    report(res)
    assert max(res["ratio_w0"], res["ratio_w2"]) >= 3.0


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--jets", type=int, default=20_000)
    a = ap.parse_args()
    report(run(a.data, a.jets))


if __name__ == "__main__":
    main()
