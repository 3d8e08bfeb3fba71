"""Pretraining throughput of every recipe on the ``small`` backbone, beside a supervised step.

One step = the objective's loss (augmentations, masking, tokenizer, heads included) + backward +
AdamW step, batch 256 jets (or events), padding trimmed to the longest jet as the loader does.
Variants run interleaved round by round in one process so that load from other processes hits
each alike; the report gives the median jets/s and each recipe's cost relative to a supervised
classification step on the same batches (the ratio is what to compare across machines):

* ``supervised``: classifier head + cross-entropy (the reference);
* ``contrastive``: JetCLR-style, two augmented views (the shipped augmentation set), NT-Xent;
* ``mpm-tokens``: masked particle modelling, 40% masked, VQ-VAE code targets (512 codes);
* ``mpm-continuous``: the same with the masked particles' features regressed;
* ``mpm-decoder``: token targets in the encoder-decoder layout of the shipped config (the backbone
  sees the visible 60% only, a 2-block decoder with pT-rank queries predicts the hidden ones);
* ``masked-id``: masked object-id on events (``objt`` small, 16 object slots), its own
  supervised event step as reference.

Input: ``--data DIR`` (a jet shard directory; realistic multiplicities) or synthetic jets.

Run: ``python benchmarks/bench_pretrain.py [--data DIR] [--rounds N] [--precision fp32|bf16]``
or ``pytest -m bench benchmarks/bench_pretrain.py -s``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # synth_events

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from colliderfm.data.schema import Batch  # noqa: E402
from colliderfm.data.stream import ConstituentStream  # noqa: E402
from colliderfm.models import Classifier, create_model  # noqa: E402
from colliderfm.pretrain.base import PretrainModel, create_objective  # noqa: E402

try:  # run as a script (benchmarks/ on sys.path) or through pytest (rootdir import)
    from bench_loader import synthetic
except ImportError:  # pragma: no cover
    from benchmarks.bench_loader import synthetic

BATCH, N_BATCHES = 256, 3

RECIPES: dict[str, tuple[str, dict[str, object]]] = {
    "contrastive": ("contrastive", {}),
    "mpm-tokens": ("mpm", {"target": "tokens"}),
    "mpm-continuous": ("mpm", {"target": "continuous"}),
    "mpm-decoder": ("mpm", {"target": "tokens", "decoder_depth": 2, "positional": "pt_order"}),
}


def jet_batches(data: str | None, seed: int = 0) -> list[Batch]:
    """``N_BATCHES`` training batches of jets (13 ParT features, trimmed padding).

    Args:
        data: a jet shard directory, or None for synthetic jets.
        seed: RNG seed.

    Returns:
        The batches.
    """
    source = data if data else synthetic(BATCH * N_BATCHES, seed)
    stream = ConstituentStream(source, batch_size=BATCH, seed=seed, shuffle=data is not None)
    out = []
    for b in stream:
        out.append(b)
        if len(out) == N_BATCHES:
            break
    return out


def _step(
    model: nn.Module, loss_fn: Callable[[Batch], torch.Tensor], bf16: bool
) -> Callable[[Batch], None]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(b: Batch) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(b)
        opt.zero_grad(set_to_none=True)
        loss.float().backward()
        opt.step()

    return step


def variants(bf16: bool) -> dict[str, tuple[Callable[[Batch], None], str]]:
    """Every measured step function with the batch kind it takes (``jets`` or ``events``).

    Args:
        bf16: bf16 autocast.

    Returns:
        ``{name: (step, kind)}``.
    """
    out: dict[str, tuple[Callable[[Batch], None], str]] = {}
    torch.manual_seed(0)
    clf = Classifier(create_model("part", "small"), 2)
    out["supervised"] = (
        _step(
            clf,
            lambda b: F.cross_entropy(
                clf(b.features, b.mask, b.vectors).float(), b.labels.clamp_min(0)
            ),
            bf16,
        ),
        "jets",
    )
    for name, (recipe, params) in RECIPES.items():
        torch.manual_seed(0)
        backbone = create_model("part", "small")
        pm = PretrainModel(backbone, create_objective(recipe, params, backbone.dim, 13))
        out[name] = (_step(pm, lambda b, pm=pm: pm.loss(b)[0], bf16), "jets")
    torch.manual_seed(0)
    ev = Classifier(create_model("objt", "small"), 2)
    out["events-supervised"] = (
        _step(
            ev,
            lambda b: F.cross_entropy(
                ev(b.features, b.mask, b.vectors).float(), b.labels.clamp_min(0)
            ),
            bf16,
        ),
        "events",
    )
    torch.manual_seed(0)
    eb = create_model("objt", "small")
    pm_ev = PretrainModel(eb, create_objective("masked_id", {}, eb.dim, eb.in_dim))
    out["masked-id"] = (_step(pm_ev, lambda b: pm_ev.loss(b)[0], bf16), "events")
    return out


def run(data: str | None, rounds: int = 3, bf16: bool = False) -> dict[str, dict[str, float]]:
    """Measure every variant.

    Args:
        data: jet shard directory or None (synthetic).
        rounds: timed passes over the batches per variant (after one warm-up pass).
        bf16: bf16 autocast.

    Returns:
        ``{name: {"per_s": median examples/s, "cost": step time / its supervised step time}}``.
    """
    from synth_events import event_batches

    inputs = {"jets": jet_batches(data), "events": event_batches(BATCH * N_BATCHES, BATCH)}
    steps = variants(bf16)
    for step, kind in steps.values():  # warm-up
        for b in inputs[kind]:
            step(b)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for name, (step, kind) in steps.items():
            for b in inputs[kind]:
                t0 = time.perf_counter()
                step(b)
                times[name].append((time.perf_counter() - t0) / len(b))
    med = {k: statistics.median(v) for k, v in times.items()}
    ref = {"jets": med["supervised"], "events": med["events-supervised"]}
    return {k: {"per_s": 1.0 / med[k], "cost": med[k] / ref[steps[k][1]]} for k in steps}


def report(res: dict[str, dict[str, float]], bf16: bool) -> None:
    """Print the table."""
    print(f"small backbone, batch {BATCH}, {torch.get_num_threads()} threads, bf16={bf16}")
    print(f"{'recipe':<18} {'examples/s':>11} {'step cost vs supervised':>24}")
    for name, r in res.items():
        print(f"{name:<18} {r['per_s']:>11.1f} {r['cost']:>23.2f}x")


@pytest.mark.bench
def test_bench_pretrain() -> None:
    """Opt-in: prints the table."""
    res = run(os.environ.get("CFM_BENCH_DATA"), rounds=1)
    report(res, False)
    assert all(r["per_s"] > 0 for r in res.values())


def main() -> None:
    """CLI entry."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="jet shard directory (default: synthetic)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    a = ap.parse_args()
    bf16 = a.precision == "bf16"
    report(run(a.data, a.rounds, bf16), bf16)


if __name__ == "__main__":
    main()
