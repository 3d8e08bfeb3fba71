"""Classification quality of our ``part``/``base`` backbone vs weaver-core's ParticleTransformer.

Both models (about 2.1M parameters each) are trained in lockstep on *the same batches* (one
``ConstituentStream``, same seed) for the same number of steps with the same optimizer and schedule
(AdamW, lr 1e-3, 5% linear warm-up then cosine), fp32, then scored on the same test jets.
Prints both test AUCs, their difference (goal: ours not worse by more than 0.003) and the
training throughput ratio measured in the same run.

Ours runs with ``normformer=True`` by default: ParT's extra norms and scales, as weaver-core's
default block has them (with weaver-core's Xavier init, which ``normformer`` selects). Our plain
pre-norm ``base`` preset is ``--ours normformer=false``.

Run (needs ``pip install --no-deps weaver-core`` and generated data, e.g.
``colliderfm generate jets --process top,qcd --n 20000 --out data/toptag-20k``)::

    python benchmarks/bench_auc_parity.py --train DIR --test DIR [--steps 300] [--batch 128]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402
from torch import nn  # noqa: E402

from colliderfm.data.stream import ConstituentStream  # noqa: E402
from colliderfm.evaluate.metrics import auc  # noqa: E402
from colliderfm.models import Classifier, create_model  # noqa: E402
from colliderfm.train.loop import lr_lambda  # noqa: E402


class WeaverAdapter(nn.Module):
    """weaver-core's ParticleTransformer behind our ``forward(x, mask, vectors)`` layout."""

    def __init__(self, in_dim: int, n_classes: int) -> None:
        super().__init__()
        from weaver.nn.model.ParticleTransformer import ParticleTransformer as WeaverParT

        logging.getLogger("weaver").setLevel(logging.WARNING)
        self.net = WeaverParT(input_dim=in_dim, num_classes=n_classes, pair_input_dim=4)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """Logits.

        Args:
            x: ``[B, P, F]`` features.
            mask: ``[B, P]`` real-particle mask.
            vectors: ``[B, P, 4]`` four-vectors.

        Returns:
            ``[B, C]`` logits.
        """
        return self.net(
            x.transpose(1, 2).contiguous(),
            vectors.transpose(1, 2).contiguous(),
            mask.unsqueeze(1).float(),
        )  # [B, C]


@torch.no_grad()
def score_auc(model: nn.Module, test: str, max_jets: int) -> float:
    """AUC of a binary classifier on the first ``max_jets`` test jets.

    Args:
        model: classifier.
        test: test data path.
        max_jets: jets to score.

    Returns:
        AUC.
    """
    model.eval()
    ys, ss, n = [], [], 0
    for b in ConstituentStream(test, batch_size=256, shuffle=False):
        ss.append(torch.softmax(model(b.features, b.mask, b.vectors), -1)[:, 1].numpy())
        ys.append(b.labels.numpy())
        n += len(b)
        if n >= max_jets:
            break
    return auc(np.concatenate(ys)[:max_jets], np.concatenate(ss)[:max_jets])


def run(
    train: str,
    test: str,
    steps: int,
    batch: int,
    eval_max: int,
    seed: int = 0,
    ours_kwargs: dict | None = None,
    weaver: bool = True,
) -> dict:
    """Train both models in lockstep and compare test AUC.

    Args:
        train: training data path.
        test: test data path.
        steps: optimizer steps for each model.
        batch: jets per step.
        eval_max: test jets scored.
        seed: seed for init and data order.
        ours_kwargs: overrides of our backbone (e.g. ``{"normformer": True}``).
        weaver: also train weaver-core's model (else ours only; no ratios).

    Returns:
        Results dict.
    """
    models: dict[str, nn.Module] = {}
    torch.manual_seed(seed)
    models["ours"] = Classifier(create_model("part", "base", in_dim=13, **(ours_kwargs or {})), 2)
    if weaver:
        torch.manual_seed(seed)
        models["weaver"] = WeaverAdapter(13, 2)
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-3) for k, m in models.items()}
    scheds = {
        k: torch.optim.lr_scheduler.LambdaLR(o, lr_lambda(steps, steps // 20))
        for k, o in opts.items()
    }
    secs = dict.fromkeys(models, 0.0)
    stream = iter(ConstituentStream(train, batch_size=batch, seed=seed, infinite=True))
    for step in range(steps):
        b = next(stream)
        for k, m in models.items():
            m.train()
            t0 = time.process_time()
            loss = F.cross_entropy(m(b.features, b.mask, b.vectors), b.labels)
            opts[k].zero_grad(set_to_none=True)
            loss.backward()
            opts[k].step()
            scheds[k].step()
            secs[k] += time.process_time() - t0
        if (step + 1) % 25 == 0:
            print(f"step {step + 1}/{steps}", flush=True)
    res = {
        k: {
            "params": sum(p.numel() for p in m.parameters()),
            "auc": score_auc(m, test, eval_max),
            "jets_per_cpu_s": steps * batch / secs[k],
        }
        for k, m in models.items()
    }
    if weaver:
        res["auc_diff"] = res["ours"]["auc"] - res["weaver"]["auc"]
        res["speed_ratio"] = res["ours"]["jets_per_cpu_s"] / res["weaver"]["jets_per_cpu_s"]
    return res


@pytest.mark.bench
def test_bench_auc_parity() -> None:  # pragma: no cover - needs data and weaver-core
    """Opt-in: set CFM_PARITY_TRAIN and CFM_PARITY_TEST to shard directories."""
    pytest.importorskip("weaver")
    train, test = os.environ.get("CFM_PARITY_TRAIN"), os.environ.get("CFM_PARITY_TEST")
    if not train or not test:
        pytest.skip("set CFM_PARITY_TRAIN / CFM_PARITY_TEST")
    res = run(
        train,
        test,
        steps=int(os.environ.get("CFM_PARITY_STEPS", "200")),
        batch=128,
        eval_max=10_000,
        ours_kwargs={"normformer": True},
    )
    print(res)
    assert res["auc_diff"] > -0.003


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--eval-max", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--ours",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override of our backbone (default normformer=true), e.g. --ours normformer=false",
    )
    ap.add_argument("--no-weaver", action="store_true", help="train ours only")
    a = ap.parse_args()
    kw: dict = {"normformer": True}
    for item in a.ours:
        k, _, v = item.partition("=")
        kw[k] = yaml.safe_load(v) if v.lower() not in ("none", "null") else None
    res = run(a.train, a.test, a.steps, a.batch, a.eval_max, a.seed, kw, not a.no_weaver)
    print(f"ours: part/base {kw or 'defaults'}")
    if a.no_weaver:
        r = res["ours"]
        print(f"   ours: {r['params']:,} params, test AUC {r['auc']:.4f}")
        return
    for k in ("ours", "weaver"):
        r = res[k]
        print(
            f"{k:>7}: {r['params']:,} params, test AUC {r['auc']:.4f}, "
            f"{r['jets_per_cpu_s']:.1f} jets/CPU-s"
        )
    print(
        f"AUC(ours) - AUC(weaver) = {res['auc_diff']:+.4f} (goal > -0.003); "
        f"training speed ratio ours/weaver = {res['speed_ratio']:.2f}"
    )


if __name__ == "__main__":
    main()
