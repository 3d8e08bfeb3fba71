"""Does ``torch.compile`` speed up training here? Eager vs compiled training steps, same run.

A training step = forward + backward + AdamW step of a 2-class classifier on the ``small``
backbone, over a cycle of batches whose padding is trimmed to each batch's longest jet (as the
loader does, so the particle axis changes from batch to batch). Variants, interleaved round by
round so that load from other processes hits each alike:

* ``eager``: the model as training runs it (``pack=True``: per-token layers on real particles);
* ``eager-nopack``: ``pack=False`` (everything on the padded tensor);
* ``compiled``: ``torch.compile(model, dynamic=True)`` of the packed model;
* ``compiled-nopack``: the same for ``pack=False`` (no data-dependent shapes inside the graph).

Prints the one-off compile time, the median step time of the repeats, and each variant's speed
relative to ``eager``. The training loop turns compile on by default only if this says it is
faster (see README, "Performance").

Run: ``python benchmarks/bench_compile.py [--rounds N] [--precision fp32|bf16]`` or
``pytest -m bench benchmarks/bench_compile.py -s``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from colliderfm.models import Classifier, create_model  # noqa: E402

try:  # run as a script (benchmarks/ on sys.path) or through pytest (rootdir import)
    from bench_models import realistic_jets
except ImportError:  # pragma: no cover
    from benchmarks.bench_models import realistic_jets

BATCH, N_BATCHES = 128, 6


def batches(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """A cycle of realistic batches, each trimmed to its own longest jet.

    Args:
        seed: RNG seed.

    Returns:
        ``N_BATCHES`` tuples ``(x [B,P_i,13], mask [B,P_i], vectors [B,P_i,4], labels [B])``.
    """
    out = []
    for i in range(N_BATCHES):
        x, mask, vectors = realistic_jets(BATCH, seed=seed + i)
        n = int(mask.sum(1).max())
        labels = torch.randint(0, 2, (BATCH,), generator=torch.Generator().manual_seed(i))
        out.append((x[:, :n], mask[:, :n], vectors[:, :n], labels))
    return out


def make_step(
    pack: bool, compiled: bool, bf16: bool
) -> tuple[Callable[[tuple[torch.Tensor, ...]], None], torch.nn.Module]:
    """A training-step closure for the ``small`` classifier.

    Args:
        pack: the backbone's packing switch.
        compiled: wrap the model in ``torch.compile(dynamic=True)``.
        bf16: bf16 autocast.

    Returns:
        (step taking one batch tuple, model).
    """
    torch.manual_seed(0)
    model = Classifier(create_model("part", "small", pack=pack), 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    fwd = torch.compile(model, dynamic=True) if compiled else model

    def step(b: tuple[torch.Tensor, ...]) -> None:
        x, mask, vectors, labels = b
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = fwd(x, mask, vectors)  # [B, 2]
        loss = F.cross_entropy(logits.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, model


def run(rounds: int = 3, bf16: bool = False) -> dict[str, dict[str, float]]:
    """Measure every variant.

    Args:
        rounds: timed passes over the batch cycle per variant (after one warm-up pass).
        bf16: bf16 autocast.

    Returns:
        ``{variant: {"compile_s", "step_s", "speedup"}}`` (speed-up relative to eager).
    """
    data = batches()
    variants = {
        "eager": (True, False),
        "eager-nopack": (False, False),
        "compiled": (True, True),
        "compiled-nopack": (False, True),
    }
    steps, res = {}, {}
    for name, (pack, comp) in variants.items():
        step, _ = make_step(pack, comp, bf16)
        t0 = time.perf_counter()
        for b in data:  # warm-up; for compiled variants this is where compilation happens
            step(b)
        res[name] = {"compile_s": time.perf_counter() - t0}
        steps[name] = step
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, step in steps.items():
            for b in data:
                t0 = time.perf_counter()
                step(b)
                times[name].append(time.perf_counter() - t0)
    for name in variants:
        res[name]["step_s"] = statistics.median(times[name])
    for name in variants:
        res[name]["speedup"] = res["eager"]["step_s"] / res[name]["step_s"]
    return res


def report(res: dict[str, dict[str, float]], bf16: bool) -> None:
    """Print the table."""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, bf16={bf16}")
    print(f"{'variant':<16} {'warm-up s':>10} {'step ms':>9} {'vs eager':>9}")
    for name, r in res.items():
        print(f"{name:<16} {r['compile_s']:>10.1f} {1e3 * r['step_s']:>9.1f} {r['speedup']:>8.2f}x")


@pytest.mark.bench
def test_bench_compile() -> None:
    """Opt-in: prints the comparison."""
    res = run(rounds=2)
    report(res, False)
    assert all(r["step_s"] > 0 for r in res.values())


def main() -> None:
    """CLI entry."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    a = ap.parse_args()
    bf16 = a.precision == "bf16"
    report(run(a.rounds, bf16), bf16)


if __name__ == "__main__":
    main()
