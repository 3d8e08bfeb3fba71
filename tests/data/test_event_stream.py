"""Event shards through the unchanged downstream path: loader, subsets, fine-tuning, probe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from colliderfm.config import load_config
from colliderfm.data.features import EVENT_FEATURES, event_features
from colliderfm.data.readers.parquet import iter_parquet_jets
from colliderfm.data.schema import EVENT_CLASSES, ConstituentChunk, ObjectType
from colliderfm.data.shards import ShardWriter, events_table
from colliderfm.data.stream import ConstituentStream, count_examples
from colliderfm.data.subset import load_subset, read_labels


def write_event_shards(out: Path, n: int, seed: int = 0, rows_per_shard: int = 100) -> None:
    """Synthetic events (1 lepton, 2 b-jets, 2-5 jets, MET); class 1 is harder.

    Args:
        out: shard directory.
        n: events.
        seed: RNG seed.
        rows_per_shard: events per shard.
    """
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    n_jet = rng.integers(2, 6, n)
    counts = 1 + 2 + n_jet + 1
    evt = np.repeat(np.arange(n), counts)
    pos = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    last = pos == np.repeat(counts - 1, counts)
    obj = np.where(pos == 0, ObjectType.MUON, np.where(pos < 3, ObjectType.BJET, ObjectType.JET))
    obj = np.where(last, ObjectType.MET, obj).astype(np.int8)
    pt = (30 + rng.exponential(40, evt.size)) * np.where(label[evt] == 1, 2.0, 1.0)
    eta = np.where(last, 0.0, rng.normal(0, 1, evt.size))
    phi = rng.uniform(-np.pi, np.pi, evt.size)
    energy = np.where(last, pt, pt * np.cosh(eta) * 1.01)
    with ShardWriter(
        out, "events", list(EVENT_CLASSES), {"generator": "test"}, rows_per_shard
    ) as w:
        w.write(events_table(counts, pt, eta, phi, energy, obj, label))


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("events")
    write_event_shards(root / "train", 600, seed=1)
    write_event_shards(root / "val", 200, seed=2)
    write_event_shards(root / "test", 200, seed=3)
    return root


def test_chunks_hold_objects(shards: Path) -> None:
    chunk = next(iter_parquet_jets(shards / "train"))
    assert set(np.unique(chunk.type_id)) == {2, 3, 4, 5}
    met = chunk.type_id == ObjectType.MET
    assert np.all(chunk.pz[met] == 0) and np.all(chunk.charge == 0) and chunk.jet == {}
    assert np.allclose(np.hypot(chunk.px, chunk.py)[met], chunk.energy[met], rtol=1e-5)


def test_event_batches(shards: Path) -> None:
    stream = ConstituentStream(
        shards / "train", batch_size=64, max_particles=16, feature_set="event"
    )
    batch = next(iter(stream))
    assert batch.features.shape[-1] == len(EVENT_FEATURES) == 11
    assert batch.features.shape[:2] == batch.mask.shape and batch.type_id is not None
    assert set(batch.type_id[batch.mask].unique().tolist()) == {2, 3, 4, 5}
    assert torch.all(batch.type_id[~batch.mask] == 0)
    assert batch.vectors is not None
    ref = event_features(batch.vectors, batch.mask, batch.type_id)
    assert torch.equal(batch.features, ref)
    assert torch.all(batch.features[..., 5:10].sum(-1) == batch.mask.float())  # one-hot types


def test_subsets_and_counts(shards: Path) -> None:
    assert count_examples(shards / "train") == 600
    labels = read_labels(shards / "train")
    sub = load_subset(shards / "train", 100, seed=0)
    assert len(sub) == 100 and np.bincount(sub.label).tolist() == [50, 50]
    assert labels.shape == (600,)


def test_finetune_and_probe_on_events(shards: Path, tmp_path: Path) -> None:
    from colliderfm.checkpoints import load_model
    from colliderfm.pretrain.probe import LinearProbe
    from colliderfm.recipes.finetune import run_finetune

    cfg = load_config(
        None,
        [
            f"data.train={shards / 'train'}",
            f"data.val={shards / 'val'}",
            f"data.test={shards / 'test'}",
            "data.features=event",
            "data.max_particles=16",
            "model.name=part",
            "model.preset=tiny",
            "model.pair_features=false",
            "train.batch_size=64",
            "train.max_steps=6",
            "train.epochs=1",
            "finetune.n_train=200",
        ],
    )
    summary = run_finetune(cfg, tmp_path / "run", progress=False)
    assert summary["steps"] == 6 and summary["n_train"] == 200
    assert summary["test"]["n"] == 200 and 0.0 <= summary["test"]["auc"] <= 1.0
    model = load_model(tmp_path / "run")
    probe = LinearProbe(shards / "val", n=100, feature_set="event", max_particles=16)
    assert 0.0 <= probe(model.backbone) <= 1.0


def test_feature_set_must_match_the_kind(shards: Path, tmp_path: Path) -> None:
    from synth import write_synthetic_shards

    from colliderfm.errors import DataError

    with pytest.raises(DataError, match="holds events, but data.features is 'part'"):
        ConstituentStream(shards / "train", batch_size=8)
    with pytest.raises(DataError, match="holds events"):
        ConstituentStream(
            shards / "train" / "part-00000.parquet", batch_size=8, feature_set="kinematic"
        )
    write_synthetic_shards(tmp_path / "jets", n=20)
    with pytest.raises(DataError, match="holds jets, but data.features is 'event'"):
        ConstituentStream(tmp_path / "jets", batch_size=8, feature_set="event")


def test_event_shards_merge_and_reshard(shards: Path, tmp_path: Path) -> None:
    from colliderfm.data.convert import convert
    from colliderfm.data.readers.parquet import table_to_chunk
    from colliderfm.data.shards import chunk_to_events_table

    m = convert([shards / "val"], None, tmp_path / "re", jets_per_shard=64, progress=False)
    assert m["kind"] == "events" and m["n"] == 200 and len(m["shards"]) == 4
    a = ConstituentChunk.concat(list(iter_parquet_jets(shards / "val")))
    b = ConstituentChunk.concat(list(iter_parquet_jets(tmp_path / "re")))
    assert np.array_equal(a.px, b.px) and np.array_equal(a.label, b.label)
    # chunk -> table -> chunk is the identity up to float32 rounding
    c = table_to_chunk(chunk_to_events_table(a))
    assert np.array_equal(c.type_id, a.type_id) and np.array_equal(c.counts, a.counts)
    for x, y in ((c.px, a.px), (c.py, a.py), (c.pz, a.pz), (c.energy, a.energy)):
        assert np.allclose(x, y, rtol=1e-5, atol=1e-4)


def test_event_shards_unlabel(shards: Path, tmp_path: Path) -> None:
    from colliderfm.data.convert import convert

    m = convert([shards / "val"], None, tmp_path / "u", progress=False, unlabel=True)
    assert m["kind"] == "events" and m["n"] == 200 and m["counts"] == {"unlabelled": 200}
    a = ConstituentChunk.concat(list(iter_parquet_jets(shards / "val")))
    b = ConstituentChunk.concat(list(iter_parquet_jets(tmp_path / "u")))
    assert (b.label == -1).all() and (a.label >= 0).any()
    assert np.array_equal(a.px, b.px) and np.array_equal(a.type_id, b.type_id)
