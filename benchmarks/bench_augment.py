"""Cost of the JetCLR-style augmentations relative to a training step.

Times :data:`~colliderfm.physics.augment.JETCLR_DEFAULT` producing two views of 256 realistic jets
(30-120 particles, ``P = 128``) against one training step (forward + backward + AdamW) of a small
encoder on the same batch: a stand-in ``torch.nn.TransformerEncoder`` (d_model 128, 4 layers,
8 heads) and, when the registry provides it, ``create_model("part", "small")``. Prints medians of
repeats and the ratio (goal: augmentations < 10% of a training step).

Run: ``python benchmarks/bench_augment.py [--profile]`` or ``pytest -m bench benchmarks -s``.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from colliderfm.data.features import particle_features
from colliderfm.data.schema import Batch
from colliderfm.physics.augment import JETCLR_DEFAULT, Augmenter


def realistic_batch(n: int = 256, slots: int = 128, seed: int = 0) -> Batch:
    """Jets of ~600 GeV with 30-120 particles spread around a random axis.

    Args:
        n: jets.
        slots: particle slots ``P``.
        seed: RNG seed.

    Returns:
        A padded batch with features, charge and pid.
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
    charge = charge.float()
    feats = particle_features(vectors, mask_t, charge, pid, "part")
    return Batch(
        feats, mask_t, torch.zeros(n, dtype=torch.long), torch.ones(n), vectors, charge, pid
    )


class StandIn(nn.Module):
    """Small transformer encoder with masked mean pooling (stand-in backbone)."""

    def __init__(self, in_dim: int = 13, dim: int = 128, depth: int = 4, heads: int = 8) -> None:
        super().__init__()
        self.embed_in = nn.Linear(in_dim, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)

    def embed(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Pooled embedding ``[B, D]`` of ``x [B, P, F]`` under ``mask [B, P]``."""
        h = self.encoder(self.embed_in(x), src_key_padding_mask=~mask)  # [B, P, D]
        w = mask.unsqueeze(-1).float()  # [B, P, 1]
        return (h * w).sum(1) / w.sum(1).clamp_min(1.0)  # [B, D]


def _models() -> list[tuple[str, nn.Module]]:
    out: list[tuple[str, nn.Module]] = [("stand-in TransformerEncoder d128x4h8", StandIn())]
    try:
        from colliderfm.models.registry import create_model

        out.append(("create_model('part', 'small')", create_model("part", "small")))
    except Exception as exc:  # the registry may not be there yet
        print(f"(part/small not available: {type(exc).__name__}: {exc})")
    return out


def _median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _train_step(model: nn.Module, batch: Batch) -> Callable[[], float]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    takes_vectors = "vectors" in inspect.signature(model.embed).parameters
    extra = {"vectors": batch.vectors} if takes_vectors else {}

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        emb = model.embed(batch.features, batch.mask, **extra)  # [B, D]
        loss = emb.pow(2).mean()
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def run(
    aug_repeats: int = 20,
    step_repeats: int = 3,
    threads: int | None = 1,
    show_profile: bool = False,
) -> dict[str, float]:
    """Measure and print augmentation vs training-step medians.

    Args:
        aug_repeats: repeats of the two-view augmentation.
        step_repeats: repeats of each training step.
        threads: torch intra-op threads for both measurements (None: leave as is). One thread
            is the default: augmentations run in DataLoader workers, and on a shared machine
            many threads on small tensors mostly measure contention.
        show_profile: print a torch.profiler table of the augmentation.

    Returns:
        ``{"augment_s", "<model>_step_s", "<model>_ratio", ...}``.
    """
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _measure(aug_repeats, step_repeats, show_profile)
    finally:
        torch.set_num_threads(old_threads)


def _measure(aug_repeats: int, step_repeats: int, show_profile: bool) -> dict[str, float]:
    torch.manual_seed(0)
    batch = realistic_batch()
    aug = Augmenter(JETCLR_DEFAULT)
    gen = torch.Generator().manual_seed(0)
    t_aug = _median_time(lambda: aug.views(batch, 2, gen), aug_repeats)
    print(
        f"threads={torch.get_num_threads()} batch={tuple(batch.features.shape)} "
        f"mean particles={batch.mask.sum(1).float().mean():.0f}"
    )
    print(f"augment JETCLR_DEFAULT, 2 views: {1e3 * t_aug:8.2f} ms (median of {aug_repeats})")
    res = {"augment_s": t_aug}
    for name, model in _models():
        t_step = _median_time(_train_step(model, batch), step_repeats)
        res[f"{name}_step_s"], res[f"{name}_ratio"] = t_step, t_aug / t_step
        print(
            f"train step {name}: {1e3 * t_step:8.2f} ms (median of {step_repeats}) "
            f"-> augment/step = {100 * t_aug / t_step:.1f}% (goal < 10%)"
        )
    if show_profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            aug.views(batch, 2, gen)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    return res


@pytest.mark.bench
def test_bench_augment() -> None:
    res = run()
    ratios = [v for k, v in res.items() if k.endswith("_ratio")]
    assert ratios and all(np.isfinite(ratios))
    assert max(ratios) < 0.10, f"augmentations take {100 * max(ratios):.1f}% of a training step"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", action="store_true", help="profile the augmentations")
    ap.add_argument("--aug-repeats", type=int, default=20)
    ap.add_argument("--step-repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: leave as is)")
    args = ap.parse_args()
    run(args.aug_repeats, args.step_repeats, args.threads or None, args.profile)
