"""Training throughput of our ``part`` backbone against weaver-core's ParticleTransformer.

One training step = forward + backward + AdamW step of a 10-class classifier on a batch of 128
realistic jets (30-120 particles, padded to 128). Measured, in the same process and interleaved
round by round so that load from other processes hits every variant alike:

* ours (``create_model("part", "base")`` + linear head, ~2.1M parameters), padding trimmed to the
  batch's longest jet (what the loader does) and untrimmed, each in fp32 and bf16 autocast, and
  with ``normformer=True`` (weaver-core's block layout; trimmed, fp32 and bf16);
* weaver-core's ``ParticleTransformer`` with its default sizes (embed [128, 512, 128], 8 heads,
  8 layers, 2 class-attention layers, 4 pair inputs; ~2.1M parameters) in fp32, fed our tensors in
  its layout (``x [B,F,P]``, ``v [B,4,P]``, ``mask [B,1,P]``), its own sequence trimmer on and
  past its warm-up (its default training behaviour).

Prints jets/s (median wall time of the repeats, and per CPU-second, which is less sensitive to
other load), ratios against weaver-core, and our achieved FLOP/s (counted with
``FlopCounterMode``) as a fraction of the measured fp32/bf16 GEMM peak.

``OMP_WAIT_POLICY`` is set to ``PASSIVE`` unless already set: on a shared machine busy-waiting
OpenMP threads of the default policy made every variant several times slower.

Run: ``python benchmarks/bench_models.py [--rounds N] [--profile] [--no-weaver]`` or
``pytest -m bench benchmarks/bench_models.py -s``.
"""

from __future__ import annotations

import os
import sys

_OMP_EFFECTIVE = "torch" not in sys.modules  # the policy is read once, when torch loads OpenMP
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from colliderfm.data.features import particle_features  # noqa: E402
from colliderfm.models import Classifier, create_model  # noqa: E402

BATCH, SLOTS, N_CLASSES = 128, 128, 10


def realistic_jets(
    n: int = BATCH, slots: int = SLOTS, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Jets of ~600 GeV with 30-120 particles around a random axis, padded to ``slots``.

    Args:
        n: jets.
        slots: particle slots ``P``.
        seed: RNG seed.

    Returns:
        ``(features [n, P, 13], mask [n, P], vectors [n, P, 4])``.
    """
    rng = np.random.default_rng(seed)
    counts = rng.integers(30, 121, size=n)
    mask = np.arange(slots)[None, :] < counts[:, None]  # [B, P]
    z = rng.exponential(1.0, size=(n, slots)) ** 2 * mask
    p_t = 600.0 * z / z.sum(1, keepdims=True)  # [B, P]
    r = np.abs(rng.normal(0, 0.15, size=(n, slots))) / np.sqrt(z + 0.05)
    a = rng.uniform(0, 2 * np.pi, size=(n, slots))
    eta = rng.uniform(-2, 2, size=(n, 1)) + r * np.cos(a)
    phi = rng.uniform(-np.pi, np.pi, size=(n, 1)) + r * np.sin(a)
    charged = rng.random((n, slots)) < 0.6
    m = np.where(charged, 0.1396, 0.0)
    px, py, pz = p_t * np.cos(phi), p_t * np.sin(phi), p_t * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + m**2)
    vectors = torch.from_numpy(np.stack([px, py, pz, e], -1) * mask[..., None]).float()
    mask_t = torch.from_numpy(mask)
    charge = torch.from_numpy(np.where(charged, rng.choice([-1.0, 1.0], (n, slots)), 0.0) * mask)
    pid = torch.from_numpy(np.where(charged, 211, 22) * mask).long()
    feats = particle_features(vectors, mask_t, charge.float(), pid, "part")
    return feats, mask_t, vectors


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def ours_step(
    x: torch.Tensor,
    mask: torch.Tensor,
    vectors: torch.Tensor,
    labels: torch.Tensor,
    bf16: bool,
    trim: bool,
    seed: int = 0,
    normformer: bool = False,
) -> tuple[Callable[[], None], nn.Module]:
    """A training-step closure for our ``part``/``base`` classifier.

    Args:
        x, mask, vectors: the padded batch.
        labels: ``[B]`` class indices.
        bf16: run forward under bf16 autocast.
        trim: cut padding to the longest jet first (as the loader does).
        seed: init seed.
        normformer: ParT's extra norms and scales (weaver-core's block layout).

    Returns:
        (step function, model).
    """
    torch.manual_seed(seed)
    model = Classifier(create_model("part", "base", normformer=normformer), N_CLASSES)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    if trim:
        n = int(mask.sum(1).max())
        x, mask, vectors = x[:, :n], mask[:, :n], vectors[:, :n]

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x, mask, vectors)  # [B, C]
        loss = F.cross_entropy(logits.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, model


def weaver_step(
    x: torch.Tensor,
    mask: torch.Tensor,
    vectors: torch.Tensor,
    labels: torch.Tensor,
    bf16: bool = False,
    seed: int = 0,
) -> tuple[Callable[[], None], nn.Module] | None:
    """A training-step closure for weaver-core's default ParticleTransformer (None if missing).

    Args:
        x, mask, vectors: the padded batch (our layout; transposed here).
        labels: ``[B]`` class indices.
        bf16: run forward under bf16 autocast.
        seed: init seed.

    Returns:
        (step function, model), or None when weaver-core is not installed.
    """
    try:
        from weaver.nn.model.ParticleTransformer import ParticleTransformer as WeaverParT
    except ImportError:
        return None
    import logging

    logging.getLogger("weaver").setLevel(logging.WARNING)
    torch.manual_seed(seed)
    model = WeaverParT(input_dim=x.shape[-1], num_classes=N_CLASSES, pair_input_dim=4)
    model.trimmer._counter.fill_(model.trimmer.warmup_steps)  # skip its 5 untrimmed steps
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    xw = x.transpose(1, 2).contiguous()  # [B, F, P]
    vw = vectors.transpose(1, 2).contiguous()  # [B, 4, P]
    mw = mask.unsqueeze(1).float()  # [B, 1, P]

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(xw, vw, mw)  # [B, C]
        loss = F.cross_entropy(logits.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, model


def gemm_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` FLOP/s of a square matmul (a practical peak for this machine).

    Args:
        dtype: ``torch.float32`` or ``torch.bfloat16``.
        size: matrix size.
        repeats: timed repeats.

    Returns:
        FLOP/s.
    """
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best


def count_flops(
    step_model: nn.Module,
    x: torch.Tensor,
    mask: torch.Tensor,
    vectors: torch.Tensor,
    labels: torch.Tensor,
) -> int:
    """FLOPs of one forward + backward (the AdamW update is negligible and not counted).

    Args:
        step_model: the classifier.
        x, mask, vectors: the batch as the step sees it.
        labels: ``[B]`` class indices.

    Returns:
        Total FLOPs.
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(step_model(x, mask, vectors), labels).backward()
    step_model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def run(
    rounds: int = 3, with_weaver: bool = True, profile: bool = False, weaver_bf16: bool = False
) -> dict[str, float]:
    """Run the comparison and print the report.

    Args:
        rounds: timed steps per variant (interleaved; the median is reported).
        with_weaver: include weaver-core (if installed).
        weaver_bf16: also time weaver-core under bf16 autocast.
        profile: print a torch.profiler table of our fp32 and bf16 trimmed steps.

    Returns:
        Jets/s per variant (median wall time) plus the ratios.
    """
    x, mask, vectors = realistic_jets()
    labels = torch.randint(0, N_CLASSES, (BATCH,), generator=torch.Generator().manual_seed(0))
    n_max = int(mask.sum(1).max())
    print(
        f"\nbatch {BATCH} jets, {int(mask.sum())} real particles, longest {n_max}, padded to "
        f"{SLOTS}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
        f"{'' if _OMP_EFFECTIVE else ' (set after torch was loaded: no effect)'}"
    )
    variants: dict[str, tuple[Callable[[], None], nn.Module]] = {}
    for trim in (True, False):
        for bf16 in (False, True):
            name = f"ours {'trimmed' if trim else 'untrimmed'} {'bf16' if bf16 else 'fp32'}"
            variants[name] = ours_step(x, mask, vectors, labels, bf16=bf16, trim=trim)
    for bf16 in (False, True):
        variants[f"ours normformer {'bf16' if bf16 else 'fp32'}"] = ours_step(
            x, mask, vectors, labels, bf16=bf16, trim=True, normformer=True
        )
    if with_weaver:
        w = weaver_step(x, mask, vectors, labels)
        if w is None:
            print("weaver-core not installed: pip install --no-deps weaver-core")
        else:
            variants["weaver-core fp32"] = w
            wb = weaver_step(x, mask, vectors, labels, bf16=True) if weaver_bf16 else None
            if wb is not None:
                variants["weaver-core bf16"] = wb
    for name, (step, model) in variants.items():
        step()  # warm-up (allocations, oneDNN kernel selection)
        print(f"  {name:26s} {_n_params(model) / 1e6:.3f}M parameters")

    wall: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, (step, _) in variants.items():
            t0, c0 = time.perf_counter(), time.process_time()
            step()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)

    out: dict[str, float] = {}
    ref = "weaver-core fp32"
    print(
        f"\n{'variant':26s} {'s/step':>7s} {'jets/s':>7s} {'jets/cpu-s':>10s}  vs weaver-core "
        f"(wall, cpu)"
    )
    for name in variants:
        w_med, c_med = statistics.median(wall[name]), statistics.median(cpu[name])
        out[name] = BATCH / w_med
        line = f"{name:26s} {w_med:7.2f} {BATCH / w_med:7.1f} {BATCH / c_med:10.1f}"
        if ref in variants and name != ref:
            rw = statistics.median(wall[ref]) / w_med
            rc = statistics.median(cpu[ref]) / c_med
            out[f"ratio {name}"] = rw
            line += f"  x{rw:.2f}, x{rc:.2f}"
        print(line)

    # FLOP/s of our trimmed step as a fraction of the measured GEMM peak
    _, model = variants["ours trimmed fp32"]
    flops = count_flops(model, x[:, :n_max], mask[:, :n_max], vectors[:, :n_max], labels)
    peak32, peak16 = gemm_peak(torch.float32), gemm_peak(torch.bfloat16)
    print(
        f"\nour trimmed step: {flops / 1e9:.1f} GFLOP (forward + backward); GEMM peak here: "
        f"fp32 {peak32 / 1e9:.0f}, bf16 {peak16 / 1e9:.0f} GFLOP/s"
    )
    for prec, peak in (("fp32", peak32), ("bf16", peak16)):
        name = f"ours trimmed {prec}"
        achieved = flops / statistics.median(wall[name])
        out[f"flops fraction {prec}"] = achieved / peak
        print(
            f"  {prec}: {achieved / 1e9:.1f} GFLOP/s = {100 * achieved / peak:.0f}% of the "
            f"{prec} GEMM peak ({100 * achieved / peak32:.0f}% of fp32 peak)"
        )

    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        for prec in ("fp32", "bf16"):
            step, _ = variants[f"ours trimmed {prec}"]
            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                step()
            print(f"\nprofile: ours trimmed {prec}")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    return out


@pytest.mark.bench
def test_bench_models() -> None:
    """Ours must beat weaver-core's default ParT clearly (goal x3; assert x1.5 against noise)."""
    out = run(rounds=3)
    ratios = [v for k, v in out.items() if k.startswith("ratio ours trimmed")]
    if ratios:  # weaver-core installed
        assert max(ratios) > 1.5, out


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="timed steps per variant")
    ap.add_argument("--profile", action="store_true", help="print profiler tables")
    ap.add_argument("--no-weaver", action="store_true", help="skip weaver-core")
    ap.add_argument("--weaver-bf16", action="store_true", help="also weaver-core in bf16")
    args = ap.parse_args()
    run(
        args.rounds,
        with_weaver=not args.no_weaver,
        profile=args.profile,
        weaver_bf16=args.weaver_bf16,
    )


if __name__ == "__main__":
    main()
