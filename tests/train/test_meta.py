"""Checkpoint metadata: typed round trip, old schemas, the data fingerprint."""

from pathlib import Path

import pytest
import yaml
from cli_helpers import make_classifier_ckpt
from synth import write_synthetic_shards

from colliderfm.checkpoints import load_model
from colliderfm.errors import CheckpointError
from colliderfm.train.checkpoint import read_checkpoint_meta
from colliderfm.train.meta import (
    CHECKPOINT_SCHEMA,
    CheckpointMeta,
    DataInfo,
    ModelSpec,
    data_fingerprint,
)


def test_meta_round_trips_through_a_dict() -> None:
    meta = CheckpointMeta(
        model=ModelSpec(
            task="classifier",
            name="part",
            preset="tiny",
            in_dim=13,
            n_classes=2,
            classes=["QCD", "Tbqq"],
        ),  # fmt: skip
        config={"train": {"lr": 1e-3}},
        data=DataInfo(n_train=10, fingerprint="abc", subset={"n_train": 10, "seed": 0}),
    )
    d = meta.to_dict()
    assert d["checkpoint_schema"] == CHECKPOINT_SCHEMA and "objective" not in d["model"]
    assert CheckpointMeta.from_dict(yaml.safe_load(yaml.safe_dump(d))) == meta


def test_unknown_model_key_is_an_error() -> None:
    d = CheckpointMeta(model=ModelSpec()).to_dict()
    d["model"]["widht"] = 3
    with pytest.raises(CheckpointError, match=r"unknown key\(s\) \['widht'\]"):
        CheckpointMeta.from_dict(d, "ck")


def test_schema_1_checkpoints_still_load(tmp_path: Path) -> None:
    path = make_classifier_ckpt(tmp_path / "old")
    raw = yaml.safe_load((path / "config.yaml").read_text())
    raw["checkpoint_schema"] = 1
    raw.pop("data", None)
    (path / "config.yaml").write_text(yaml.safe_dump(raw))
    meta = read_checkpoint_meta(path)
    assert meta.checkpoint_schema == 1 and meta.data.fingerprint is None
    assert meta.model.classes == ["QCD", "Tbqq"]
    assert load_model(path).n_classes == 2


def test_fingerprint_follows_data_subset_and_seed(tmp_path: Path) -> None:
    write_synthetic_shards(tmp_path / "a", n=40, seed=0, rows_per_shard=20)
    write_synthetic_shards(tmp_path / "b", n=40, seed=1, rows_per_shard=20)
    fp, sources = data_fingerprint([tmp_path / "a"])
    assert len(fp) == 16 and sources[0]["n"] == 40
    assert data_fingerprint([tmp_path / "a"])[0] == fp  # deterministic
    assert data_fingerprint([tmp_path / "b"])[0] != fp  # other shards
    sub = data_fingerprint([tmp_path / "a"], {"n_train": 10, "seed": 0})[0]
    assert sub != fp
    assert data_fingerprint([tmp_path / "a"], {"n_train": 10, "seed": 1})[0] != sub
