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

Options for other machines (without them the run is the one above): ``--workers 0,4,8`` (the
loader's worker counts, default 0,2), ``--device cuda`` (the loader pins its batches as the
training loader does on CUDA, each batch is copied to the GPU with ``non_blocking``, and the
training steps run there), ``--batch N``, ``--loader-only`` (no training or ROOT measurement),
``--json PATH`` and ``--markdown PATH``. The ROOT conversion is skipped (reported as such) where
uproot or awkward is not installed.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
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
from colliderfm.data.stream import CUDA_PREFETCH, ConstituentStream  # noqa: E402
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


def _device(device: str) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_loader: --device cuda but torch.cuda.is_available() is false")
    return dev


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def loader_rate(
    data: Path, workers: int, batch: int, max_jets: int, device: str | torch.device = "cpu"
) -> float:
    """Jets/s delivered by the training loader (one pass, up to ``max_jets``).

    Args:
        data: shard directory.
        workers: DataLoader workers.
        batch: jets per batch.
        max_jets: stop after this many jets.
        device: on CUDA the loader pins its batches (workers prefetch ``CUDA_PREFETCH`` each),
            as the training loader does there, and every batch is copied to the GPU
            (``non_blocking``; the clock stops after a final synchronize).

    Returns:
        Jets per second.
    """
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    extra: dict[str, object] = {}
    if cuda:
        extra["pin_memory"] = True
        if workers > 0:
            extra["prefetch_factor"] = CUDA_PREFETCH
    stream = ConstituentStream(data, batch_size=batch, seed=0, buffer_size=10_000)
    dl = DataLoader(stream, batch_size=None, num_workers=workers, **extra)  # type: ignore[arg-type]
    n, t0 = 0, time.perf_counter()
    for b in dl:
        if cuda:
            b = b.to(dev, non_blocking=True)
        n += len(b)
        if n >= max_jets:
            break
    _sync(dev)
    return n / (time.perf_counter() - t0)


def train_rate(
    data: Path, batch: int, bf16: bool, steps: int = 6, device: str | torch.device = "cpu"
) -> float:
    """Jets/s consumed by training steps of the ``small`` classifier (median of steps).

    Args:
        data: shard directory.
        batch: jets per step.
        bf16: bf16 autocast.
        steps: timed steps (after one warm-up step).
        device: where to train (on CUDA: batches copied there before the clock starts, each
            step timed between ``torch.cuda.synchronize()`` calls, fp32 with TF32 matmuls as
            in the training loop).

    Returns:
        Jets per second.
    """
    dev = torch.device(device)
    torch.manual_seed(0)
    model = Classifier(create_model("part", "small"), 2).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = iter(ConstituentStream(data, batch_size=batch, seed=1, infinite=True))
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = dev.type == "cuda" or saved
    times = []
    try:
        for i in range(steps + 1):
            b = next(batches).to(dev)
            _sync(dev)
            t0 = time.perf_counter()
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(b.features, b.mask, b.vectors)
            loss = F.cross_entropy(logits.float(), b.labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            _sync(dev)
            if i:
                times.append(time.perf_counter() - t0)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
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


def run(
    data: Path | None,
    jets: int,
    batch: int = 256,
    workers: tuple[int, ...] = (0, 2),
    device: str = "cpu",
    loader_only: bool = False,
) -> dict[str, float]:
    """Run every measurement.

    Args:
        data: shard directory, or None for synthetic jets.
        jets: jets per loader measurement.
        batch: batch size.
        workers: loader worker counts to measure.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (see :func:`loader_rate`).
        loader_only: measure the loader only (no training steps, no ROOT conversion).

    Returns:
        Rates (jets/s): ``loader_wN`` per worker count, ``train_fp32``, ``train_bf16`` and
        ``convert_root`` (NaN when uproot or awkward is missing), and the ratios ``ratio_wN``
        of each loader rate to the fastest training step.
    """
    dev = _device(device)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_p = Path(tmp)
        chunk = synthetic(jets)
        if data is None:
            data = tmp_p / "shards"
            with ShardWriter(data, "jets", ["QCD", "Tbqq"], {"generator": "bench"}) as w:
                w.write_chunk(chunk)
        res = {f"loader_w{n}": loader_rate(data, n, batch, jets, dev) for n in workers}
        if not loader_only:
            res["train_fp32"] = train_rate(data, batch, False, device=dev)
            res["train_bf16"] = train_rate(data, batch, True, device=dev)
            have_root = all(importlib.util.find_spec(m) for m in ("uproot", "awkward"))
            res["convert_root"] = root_convert_rate(chunk, tmp_p) if have_root else math.nan
    if not loader_only:
        fastest = max(res["train_fp32"], res["train_bf16"])
        for n in workers:
            res[f"ratio_w{n}"] = res[f"loader_w{n}"] / fastest
    return res


def report(res: dict[str, float]) -> None:
    """Print the measurements.

    Args:
        res: output of :func:`run`.
    """
    for key in (k for k in res if k.startswith("loader_w")):
        n = key[len("loader_w") :]
        ratio = res.get(f"ratio_w{n}")
        extra = "" if ratio is None else f" ({ratio:.1f}x the fastest training step)"
        label = f"loader, {n} worker{'' if n == '1' else 's'}"
        print(f"{label:<18}: {res[key]:9.0f} jets/s{extra}")
    if "train_fp32" in res:
        print(f"train small fp32  : {res['train_fp32']:9.0f} jets/s")
        print(f"train small bf16  : {res['train_bf16']:9.0f} jets/s")
    if "convert_root" in res:
        if math.isnan(res["convert_root"]):
            print("convert ROOT      : skipped (uproot or awkward not installed)")
        else:
            print(f"convert ROOT      : {res['convert_root']:9.0f} jets/s")


_LABELS = {
    "train_fp32": "training step, small, fp32",
    "train_bf16": "training step, small, bf16",
    "convert_root": "convert from ROOT",
}


def markdown(res: dict[str, float], device: str, batch: int, jets: int) -> str:
    """The measurements as a markdown table.

    Args:
        res: output of :func:`run`.
        device: the device measured on (for the caption).
        batch: jets per batch.
        jets: jets per loader measurement.

    Returns:
        Markdown text.
    """
    lines = [
        f"device {device}, batch {batch}, {jets} jets per loader pass",
        "",
        "| measurement | jets/s | x fastest training step |",
        "|---|---|---|",
    ]
    for key, value in res.items():
        if key.startswith("ratio_"):
            continue
        n = key[len("loader_w") :] if key.startswith("loader_w") else None
        ratio = res.get(f"ratio_w{n}") if n is not None else None
        shown = "skipped" if math.isnan(value) else f"{value:.0f}"
        label = f"loader, {n} workers" if n is not None else _LABELS.get(key, key)
        lines.append(f"| {label} | {shown} | {'-' if ratio is None else f'{ratio:.1f}'} |")
    return "\n".join(lines) + "\n"


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
    ap.add_argument("--batch", type=int, default=256, help="jets per batch")
    ap.add_argument("--workers", default="0,2", help="loader worker counts, e.g. 0,4,8")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    ap.add_argument("--loader-only", action="store_true", help="no training or ROOT measurement")
    ap.add_argument("--json", type=Path, default=None, help="write the rates here")
    ap.add_argument("--markdown", type=Path, default=None, help="write a markdown table here")
    a = ap.parse_args()
    workers = tuple(int(w) for w in a.workers.split(",") if w.strip())
    res = run(a.data, a.jets, a.batch, workers, a.device, a.loader_only)
    report(res)
    if a.json:
        a.json.write_text(json.dumps(res, indent=2))
    if a.markdown:
        a.markdown.write_text(markdown(res, str(_device(a.device)), a.batch, a.jets))


if __name__ == "__main__":
    main()
