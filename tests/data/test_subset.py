from pathlib import Path

import numpy as np
import pytest
from synth import write_synthetic_shards

from colliderfm.data.subset import load_subset, select_balanced
from colliderfm.errors import DataError


def test_balanced_and_reproducible() -> None:
    labels = np.random.default_rng(0).integers(0, 3, size=1000)
    a = select_balanced(labels, 90, seed=5)
    assert np.array_equal(a, select_balanced(labels, 90, seed=5))
    assert not np.array_equal(a, select_balanced(labels, 90, seed=6))
    assert np.bincount(labels[a]).tolist() == [30, 30, 30]
    assert len(np.unique(a)) == 90


def test_short_class_gives_quota_to_others() -> None:
    labels = np.array([0] * 5 + [1] * 100)
    idx = select_balanced(labels, 40, seed=0)
    assert np.bincount(labels[idx]).tolist() == [5, 35]


def test_load_subset_from_shards(tmp_path: Path) -> None:
    write_synthetic_shards(tmp_path / "d", n=400, rows_per_shard=90)
    sub = load_subset(tmp_path / "d", 100, seed=1)
    assert len(sub) == 100 and np.bincount(sub.label).tolist() == [50, 50]
    with pytest.raises(DataError, match="only 400"):
        load_subset(tmp_path / "d", 1000, seed=1)
