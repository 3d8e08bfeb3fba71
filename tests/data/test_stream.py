import tracemalloc
from pathlib import Path

import numpy as np
import torch
from synth import synthetic_jets, write_synthetic_shards
from torch.utils.data import DataLoader

from colliderfm.data.stream import ConstituentStream, pad_chunk, to_batch


def _ids(batch) -> list[float]:
    # a jet's leading-particle px identifies it (continuous random values)
    return batch.vectors[:, 0, 0].tolist()


def test_pad_chunk_sorts_and_truncates() -> None:
    chunk = synthetic_jets(50, seed=1, max_particles=40)
    padded = pad_chunk(chunk, 16)
    pt = np.hypot(padded.vectors[..., 0], padded.vectors[..., 1])
    assert padded.vectors.shape == (50, 16, 4)
    assert np.all(padded.counts == np.minimum(chunk.counts, 16))
    for i in range(50):
        k = padded.counts[i]
        assert np.all(np.diff(pt[i, :k]) <= 0)  # pT descending
        assert np.all(pt[i, k:] == 0)
        start = chunk.offsets[i]
        jet_pt = np.hypot(
            chunk.px[start : start + chunk.counts[i]], chunk.py[start : start + chunk.counts[i]]
        )
        assert np.allclose(np.sort(jet_pt)[::-1][:k], pt[i, :k], rtol=1e-6)


def test_to_batch_trims_to_longest() -> None:
    padded = pad_chunk(synthetic_jets(8, seed=2, max_particles=10), 128)
    batch = to_batch(padded)
    assert batch.features.shape[1] == padded.counts.max()
    assert torch.equal(batch.mask.sum(1), torch.from_numpy(padded.counts))


def test_one_pass_sees_every_jet_once(tmp_path: Path) -> None:
    write_synthetic_shards(tmp_path / "d", n=700, rows_per_shard=150)
    seen = [
        x
        for b in ConstituentStream(tmp_path / "d", batch_size=64, buffer_size=100, seed=3)
        for x in _ids(b)
    ]
    assert len(seen) == 700 and len(set(seen)) == 700


def test_deterministic_and_reshuffled(tmp_path: Path) -> None:
    write_synthetic_shards(tmp_path / "d", n=600, rows_per_shard=100)

    def first_passes(seed: int) -> list[float]:
        s = ConstituentStream(
            tmp_path / "d", batch_size=50, buffer_size=120, seed=seed, infinite=True
        )
        it = iter(s)
        return [x for _ in range(24) for x in _ids(next(it))]

    a, b, c = first_passes(7), first_passes(7), first_passes(8)
    assert a == b
    assert a != c
    assert a[:600] != a[600:1200]  # the second pass is reshuffled
    assert sorted(a[:600]) == sorted(a[600:1200])


def test_split_by_rank_and_worker(tmp_path: Path) -> None:
    write_synthetic_shards(tmp_path / "d", n=800, rows_per_shard=100)
    got: list[float] = []
    for rank in range(2):
        ds = ConstituentStream(
            tmp_path / "d", batch_size=32, buffer_size=64, seed=1, rank=rank, world_size=2
        )
        for b in DataLoader(ds, batch_size=None, num_workers=2):
            got.extend(_ids(b))
    assert len(got) == 800 and len(set(got)) == 800


def test_memory_bounded(tmp_path: Path) -> None:
    # peak Python-side allocation while streaming must not grow with the data size
    def peak(n: int) -> int:
        d = tmp_path / f"d{n}"
        write_synthetic_shards(d, n=n, rows_per_shard=1000)
        tracemalloc.start()
        for _ in ConstituentStream(d, batch_size=64, buffer_size=500, max_particles=32, seed=0):
            pass
        _, p = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return p

    small, large = peak(2000), peak(12000)
    assert large < 1.5 * small, (small, large)


def test_in_memory_source() -> None:
    chunk = synthetic_jets(300, seed=4)
    n = sum(len(b) for b in ConstituentStream(chunk, batch_size=100, shuffle=False))
    assert n == 300


def test_truncation_is_counted_and_logged_once_per_pass(caplog) -> None:
    chunk = synthetic_jets(60, seed=4, max_particles=40)
    padded = pad_chunk(chunk, 16)
    np.testing.assert_array_equal(padded.truncated, chunk.counts > 16)
    assert padded.take(np.arange(5)).truncated.shape == (5,)
    want = int((chunk.counts > 16).sum())
    for quiet, expect_info in ((False, True), (True, False)):  # quiet (probe) streams: debug
        stream = ConstituentStream(
            chunk, batch_size=16, max_particles=16, shuffle=False, quiet=quiet
        )
        caplog.clear()
        with caplog.at_level("INFO", logger="colliderfm"):
            n = sum(len(b) for b in stream)
        assert n == 60 and stream.truncated == want > 0 and not stream.skipped
        lines = [r.getMessage() for r in caplog.records if "max_particles" in r.getMessage()]
        assert lines == (
            [
                f"data pass 0: {want} jets had more than max_particles=16 particles; "
                "kept the highest-pT ones"
            ]
            if expect_info
            else []
        )


def test_stream_skips_bad_jets_of_any_source() -> None:
    chunk = synthetic_jets(30, seed=5, max_particles=20)
    chunk.px[chunk.offsets[3]] = np.nan
    chunk.energy[chunk.offsets[7]] = np.inf
    stream = ConstituentStream(chunk, batch_size=8, max_particles=64, shuffle=False)
    batches = list(stream)
    assert sum(len(b) for b in batches) == 28 and stream.skipped == {"non_finite": 2}
    assert all(torch.isfinite(b.features).all() for b in batches)
