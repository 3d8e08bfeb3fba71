import json
from pathlib import Path

import numpy as np
import pytest
import torch
from synth import write_synthetic_shards

from colliderfm.errors import DataError
from colliderfm.evaluate.run import evaluate_checkpoint, label_map
from colliderfm.finetune.classifier import build_classifier
from colliderfm.train.checkpoint import save_checkpoint


def _checkpoint(path: Path, feature_set: str = "part") -> Path:
    torch.manual_seed(0)
    in_dim = 13 if feature_set == "part" else 7
    meta = {
        "model": {
            "name": "part",
            "preset": "tiny",
            "in_dim": in_dim,
            "kwargs": {},
            "task": "classifier",
            "n_classes": 2,
            "classes": ["QCD", "Tbqq"],
            "head_hidden": None,
            "feature_set": feature_set,
        },
        "config": {"data": {"max_particles": 64}, "finetune": {"signal_class": 1}},
    }
    save_checkpoint(path, build_classifier(meta["model"]), meta)
    return path


def test_metrics_json_and_plots(tmp_path: Path) -> None:
    write_synthetic_shards(tmp_path / "d", n=200)
    ck = _checkpoint(tmp_path / "ck")
    m = evaluate_checkpoint(ck, tmp_path / "d", tmp_path / "out" / "metrics.json")
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(saved) >= {"auc", "accuracy", "rejection", "n"} and saved["n"] == 200
    assert set(saved["rejection"]) == {"0.3", "0.5"} and m["auc"] == saved["auc"]
    assert (tmp_path / "out" / "roc.png").stat().st_size > 1000
    assert (tmp_path / "out" / "scores.png").stat().st_size > 1000


def test_reads_jetclass_root_directly(tmp_path: Path, jetclass_root) -> None:  # noqa: ANN001
    written = jetclass_root(n=300)
    ck = _checkpoint(tmp_path / "ck")
    m = evaluate_checkpoint(ck, written.path, None)
    labels = written.jets.label[written.good]
    expect = int(np.isin(labels, [0, 8]).sum())  # QCD and Tbqq rows only
    assert m["n"] == expect


def test_reads_toptagging_h5_directly(tmp_path: Path, toptagging_h5) -> None:  # noqa: ANN001
    written = toptagging_h5(n=60)
    ck = _checkpoint(tmp_path / "ck", feature_set="kinematic")
    m = evaluate_checkpoint(ck, written.path, tmp_path / "m.json")
    assert m["n"] == 60 and 0.0 <= m["auc"] <= 1.0


def test_label_mapping_and_unknown_classes(tmp_path: Path) -> None:
    assert label_map(["QCD", "Tbqq"], ["QCD", "Tbqq"]) is None
    assert label_map(["QCD", "Tbqq"], ["QCD", "Top"]).tolist() == [0, 1]
    assert label_map(["QCD", "Tbqq"], ["Hbb", "QCD"]).tolist() == [-1, 0]
    write_synthetic_shards(tmp_path / "w", n=50, n_classes=2)
    manifest = json.loads((tmp_path / "w" / "manifest.json").read_text())
    manifest["classes"] = ["Hbb", "Hcc"]
    (tmp_path / "w" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="none of its classes"):
        evaluate_checkpoint(_checkpoint(tmp_path / "ck"), tmp_path / "w", None)
