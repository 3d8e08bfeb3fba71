"""``finetune.signal_class`` by name, and the same task on our shards and on JetClass ROOT files.

Cases:

- :func:`signal_index` resolves names and indices and names the classes in its errors
- a top-vs-QCD linear probe on shards and on the same jets written as JetClass ROOT files by
  ``scripts/write_jetclass_root.py`` (an independent writer, no colliderfm code): with
  ``signal_class: Tbqq`` both give the same test AUC and real rejections; with the index 1
  the JetClass run would test ``Hbb``, which has no jets: that is one clear error, not
  rejection 1
- the writer's bad input: one error line, exit 2, no output file
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from cli_helpers import load_script
from synth import tiny_finetune_config, write_splits

from colliderfm.config import signal_index
from colliderfm.data.readers.dispatch import iter_chunks
from colliderfm.data.schema import ConstituentChunk
from colliderfm.errors import ConfigError
from colliderfm.recipes.finetune import run_finetune

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["QCD", "Hbb", "Hcc", "Hgg", "H4q", "Hqql", "Zqq", "Wqq", "Tbqq", "Tbl"]


def _writer() -> ModuleType:
    return load_script("write_jetclass_root.py", "wjr")


def test_signal_index() -> None:
    assert signal_index("Tbqq", CLASSES) == 8
    assert signal_index("Tbqq", ["QCD", "Tbqq"]) == 1
    assert signal_index(1, ["QCD", "Tbqq"]) == 1
    assert signal_index("1", ["QCD", "Tbqq"]) == 1
    with pytest.raises(ConfigError, match=r"'Hbb' is not one of the classes \['QCD', 'Tbqq'\]"):
        signal_index("Hbb", ["QCD", "Tbqq"])
    with pytest.raises(ConfigError, match="out of range for the 2 classes"):
        signal_index(2, ["QCD", "Tbqq"])


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Synthetic QCD/Tbqq shards and the same jets as JetClass ROOT files."""
    root = tmp_path_factory.mktemp("sig")
    shards = write_splits(root / "shards", (800, 300, 400), seed=3)
    w = _writer()
    for split in ("train", "val", "test"):
        assert w.main([str(shards / split), str(root / "root" / f"{split}.root")]) == 0
    return shards, root / "root"


def test_writer_keeps_the_jets(splits: tuple[Path, Path]) -> None:
    shards, rootdir = splits
    a = ConstituentChunk.concat(list(iter_chunks(shards / "test")))
    b = ConstituentChunk.concat(list(iter_chunks(rootdir / "test.root")))
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.px, b.px)
    np.testing.assert_array_equal(a.energy, b.energy)
    np.testing.assert_array_equal(a.charge, b.charge)
    # shard labels 0/1 are QCD/Tbqq; JetClass numbers them 0 and 8
    np.testing.assert_array_equal(np.where(a.label == 1, 8, 0), b.label)
    # the five JetClass particle categories give back the same representative ids here
    np.testing.assert_array_equal(a.type_id, b.type_id)
    np.testing.assert_allclose(a.jet["jet_mass"], b.jet["jet_mass"])


def _probe(train: Path, val: Path, test: Path, out: Path, *extra: str) -> dict:
    cfg = tiny_finetune_config(
        train.parent,
        f"data.train={train}",
        f"data.val={val}",
        f"data.test={test}",
        "data.max_particles=32",
        "finetune.mode=linear",
        "finetune.probe_l2=[0.01]",
        *extra,
    )
    run_finetune(cfg, out, progress=False)
    return json.loads((out / "test_metrics.json").read_text())


def test_same_probe_on_shards_and_jetclass_root(splits: tuple[Path, Path], tmp_path: Path) -> None:
    shards, rootdir = splits
    a = _probe(shards / "train", shards / "val", shards / "test", tmp_path / "a")
    b = _probe(
        *(rootdir / f"{s}.root" for s in ("train", "val", "test")),
        tmp_path / "b",
        "finetune.signal_class=Tbqq",
    )
    assert a["classes"] == ["QCD", "Tbqq"] and b["classes"] == CLASSES
    assert b["signal_class"] == "Tbqq"
    # the ten-way head of the ROOT run scores Tbqq against QCD, as the binary head does
    assert abs(a["auc"] - b["auc"]) < 0.01, (a["auc"], b["auc"])
    # (the bug this guards against: with the index 1 = Hbb, rejection 1 and SIC = eps_S)
    for eff in ("0.3", "0.5"):
        ra, rb = a["rejection"][eff], b["rejection"][eff]  # None: no background passes
        assert (ra is None and rb is None) or abs(np.log(ra / rb)) < 0.3, (eff, ra, rb)
        assert (rb is None or rb > 5) and b["sic"][eff] != float(eff)


def test_signal_class_without_jets_is_one_error(splits: tuple[Path, Path], tmp_path: Path) -> None:
    _, rootdir = splits
    with pytest.raises(ConfigError, match="no validation jets of the signal class 'Hbb'"):
        _probe(*(rootdir / f"{s}.root" for s in ("train", "val", "test")), tmp_path / "c")
    with pytest.raises(ConfigError, match="'Xbb' is not one of the classes"):
        _probe(
            *(rootdir / f"{s}.root" for s in ("train", "val", "test")),
            tmp_path / "d",
            "finetune.signal_class=Xbb",
        )
    assert not (tmp_path / "d" / "model.safetensors").exists()


def test_writer_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = _writer()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as info:
        w.main([str(tmp_path / "empty"), str(tmp_path / "x.root")])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no .parquet files" in err and str(tmp_path / "empty") in err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "part-00000.parquet").write_bytes(b"not parquet")
    with pytest.raises(SystemExit) as info:
        w.main([str(bad), str(tmp_path / "y.root")])
    assert info.value.code == 2 and "not a jet shard" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.root*"))
