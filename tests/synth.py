"""Synthetic jets for fast unit tests (no generator needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from colliderfm.data.schema import ConstituentChunk, jet_scalars_from_particles


def synthetic_jets(
    n: int, seed: int = 0, min_particles: int = 1, max_particles: int = 60, n_classes: int = 2
) -> ConstituentChunk:
    """Random jets around eta=0, phi=0 with pT ~ 600 GeV; class 1 jets are wider.

    Args:
        n: number of jets.
        seed: RNG seed.
        min_particles, max_particles: multiplicity range.
        n_classes: labels drawn from range(n_classes).

    Returns:
        A chunk of jets.
    """
    rng = np.random.default_rng(seed)
    counts = rng.integers(min_particles, max_particles + 1, size=n).astype(np.int64)
    label = rng.integers(0, n_classes, size=n).astype(np.int64)
    tot = int(counts.sum())
    jet_of = np.repeat(np.arange(n), counts)
    width = np.where(label[jet_of] == 1, 0.3, 0.1)
    eta = rng.normal(0, width) + rng.normal(0, 0.5, size=n)[jet_of]
    phi = rng.normal(0, width) + rng.uniform(-3, 3, size=n)[jet_of]
    pt = rng.exponential(10.0, size=tot) + 0.5
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2)
    charge = rng.integers(-1, 2, size=tot).astype(np.int8)
    neutral = rng.choice([22, 130], size=tot)
    pid = np.where(charge != 0, 211 * charge.astype(np.int32), neutral).astype(np.int32)
    chunk = ConstituentChunk(
        counts=counts,
        px=px.astype(np.float32),
        py=py.astype(np.float32),
        pz=pz.astype(np.float32),
        energy=e.astype(np.float32),
        charge=charge,
        type_id=pid,
        label=label,
    )
    chunk.jet = jet_scalars_from_particles(chunk)
    return chunk


def write_synthetic_shards(
    out, n: int = 500, seed: int = 0, rows_per_shard: int = 200, n_classes: int = 2
) -> None:
    """Write synthetic jets as a canonical shard directory.

    Args:
        out: target directory.
        n: jets.
        seed: RNG seed.
        rows_per_shard: jets per shard file.
        n_classes: number of classes.
    """
    from colliderfm.data.shards import ShardWriter

    names = ["QCD", "Tbqq", "Wqq", "Zqq"][:n_classes]
    with ShardWriter(
        out, "jets", names, {"generator": "synthetic"}, rows_per_shard=rows_per_shard
    ) as w:
        w.write_chunk(synthetic_jets(n, seed=seed, n_classes=n_classes))


def write_splits(
    root: Path, n: tuple[int, int, int], seed: int, rows_per_shard: int = 10_000
) -> Path:
    """Write synthetic train/val/test shard directories under ``root``.

    Args:
        root: parent directory.
        n: jets in (train, val, test).
        seed: seed of train; val and test use ``seed + 1`` and ``seed + 2``.
        rows_per_shard: shard size of the training set.

    Returns:
        ``root``.
    """
    write_synthetic_shards(root / "train", n=n[0], seed=seed, rows_per_shard=rows_per_shard)
    write_synthetic_shards(root / "val", n=n[1], seed=seed + 1)
    write_synthetic_shards(root / "test", n=n[2], seed=seed + 2)
    return root


def tiny_finetune_config(data: Path, *extra: str) -> Any:
    """A fine-tuning config on :func:`write_splits` data with the tiny backbone.

    Args:
        data: the splits' parent directory.
        *extra: further ``section.key=value`` overrides.

    Returns:
        The resolved :class:`~colliderfm.config.Config`.
    """
    from colliderfm.config import load_config

    return load_config(
        None,
        [
            f"data.train={data / 'train'}",
            f"data.val={data / 'val'}",
            f"data.test={data / 'test'}",
            "model.preset=tiny",
            "model.pair_features=false",
            "train.batch_size=64",
            "train.lr=3e-3",
            "train.early_stopping=val_auc",
            *extra,
        ],
    )
