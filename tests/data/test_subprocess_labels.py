"""Events labelled by their data-like sub-process: supervised pretraining on simulation (the
reference arm of the event study) and its transfer to ttbar vs h2hdm; event shards with other
classes than ttbar/h2hdm through convert."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synth_events import write_event_shards

from colliderfm.config import load_config
from colliderfm.data.convert import convert
from colliderfm.data.generate.events import DATALIKE_CLASSES, generate_events
from colliderfm.data.readers.parquet import iter_parquet_jets, read_manifest
from colliderfm.data.schema import ConstituentChunk
from colliderfm.errors import ColliderFMError, DataError
from colliderfm.recipes.finetune import run_finetune

SUB = list(DATALIKE_CLASSES)


def test_the_classes_are_the_data_like_sub_processes() -> None:
    assert SUB == ["ttbar", "singletop", "wjets", "ttV"]


def test_labelling_needs_the_data_like_mix_alone(tmp_path: Path) -> None:
    for procs in (["ttbar"], ["datalike", "h2hdm"]):
        with pytest.raises(ColliderFMError, match="--label-subprocesses"):
            generate_events(procs, 2, tmp_path / "o", label_subprocesses=True, progress=False)
    assert not (tmp_path / "o").exists()


def test_convert_keeps_other_event_classes_and_refuses_mixed_ones(tmp_path: Path) -> None:
    write_event_shards(tmp_path / "sub", n=40, seed=1, classes=SUB)
    m = convert([tmp_path / "sub"], None, tmp_path / "copy", progress=False)
    assert m["classes"] == SUB and m["counts"] == {c: 10 for c in SUB}
    write_event_shards(tmp_path / "tt", n=20, seed=2)
    with pytest.raises(DataError, match="differ from"):
        convert([tmp_path / "sub", tmp_path / "tt"], None, tmp_path / "mixed", progress=False)
    assert not (tmp_path / "mixed").exists()
    hidden = convert(
        [tmp_path / "sub", tmp_path / "tt"], None, tmp_path / "pre", unlabel=True, progress=False
    )
    assert hidden["counts"] == {"unlabelled": 60}


def test_supervised_pretraining_on_sub_processes_transfers(tmp_path: Path) -> None:
    """A 4-class classifier of the sub-processes, then its backbone as ``--init`` of the
    ttbar vs h2hdm task."""
    write_event_shards(tmp_path / "sub", n=128, seed=3, classes=SUB)
    write_event_shards(tmp_path / "train", n=128, seed=4)
    write_event_shards(tmp_path / "val", n=64, seed=5)
    common = ["model.preset=tiny", "train.batch_size=32", "train.early_stopping=null"]
    common += ["data.test=null"]
    cfg = load_config(
        "configs/finetune/events.yaml",
        [f"data.train={tmp_path / 'sub'}", "data.val=null", "train.max_steps=3", *common],
    )
    sup = run_finetune(cfg, tmp_path / "sup", progress=False)
    assert sup["steps"] == 3
    cfg = load_config(
        "configs/finetune/events.yaml",
        [
            f"data.train={tmp_path / 'train'}",
            f"data.val={tmp_path / 'val'}",
            f"finetune.init={tmp_path / 'sup'}",
            "train.max_steps=2",
            *common,
        ],
    )
    ft = run_finetune(cfg, tmp_path / "ft", progress=False)
    assert ft["steps"] == 2 and 0.0 <= ft["best"]["val_auc"] <= 1.0


@pytest.mark.slow
def test_generated_labels_are_the_sub_processes_of_the_same_events(tmp_path: Path) -> None:
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    kw = {"seed": 9, "events_per_shard": 100, "progress": False}
    plain = generate_events(["datalike"], 40, tmp_path / "plain", **kw)
    sub = generate_events(["datalike"], 40, tmp_path / "sub", label_subprocesses=True, **kw)
    assert sub["classes"] == SUB and plain["counts"] == {"unlabelled": 40}
    expected = {k.split("/")[1]: v for k, v in plain["source"]["datalike_counts"].items() if v}
    assert sub["counts"] == expected
    a = ConstituentChunk.concat(list(iter_parquet_jets(tmp_path / "plain")))
    b = ConstituentChunk.concat(list(iter_parquet_jets(tmp_path / "sub")))
    for field in ("px", "py", "pz", "energy", "type_id", "counts"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert (a.label == -1).all() and set(b.label.tolist()) <= set(range(4))
    assert (
        read_manifest(tmp_path / "sub")["source"]["datalike_counts"]
        == (plain["source"]["datalike_counts"])
    )
