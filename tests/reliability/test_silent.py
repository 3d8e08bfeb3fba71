"""Nothing silent that changes results: inputs that look fine are refused, or kept and warned about.

Cases (principle 2 of issue 18):

- convert: a labelled ``.parquet`` without a manifest keeps its labels (was: all -1), warning
- convert: the same file with ``--unlabel``: every label -1, no warning
- convert: such a labelled file mixed with a shard directory naming its classes: refused
- convert: a shard directory with a label outside its classes (7 of 2): refused (was: -1)
- convert: event shards with a label outside ttbar/h2hdm: refused (was: copied as stored)
- convert: the same input twice, and an HDF5 file with its copy: refused (doubled the data)
- merge: ``merge D D``: refused (was: every row twice)
- merge: ``D`` and a copy of ``D``, and ``D`` through a symlink: refused
- evaluate: a 2-class model on labels 7 only: refused (was: accuracy 0, exit 0)
- evaluate: all labels -1: refused (was: accuracy 0 / rejection 1, exit 0)
- evaluate: some labels -1 or 7: those jets left out with a warning giving the counts
- evaluate: a label beyond the data's own class list (a traceback before): left out, warned
- evaluate: JetClass data on a QCD/Tbqq model: the classes left out are warned with counts
- evaluate: Top Tagging HDF5 with a 13-feature model warns that charge/type read as 0
- evaluate: the same file with the kinematic model: no such warning
- evaluate: shards converted from Top Tagging (stored zeros) warn the same, merged ones too
- finetune: Top Tagging HDF5 as training data with 13 features warns the same
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import (
    assert_no_output,
    assert_one_error_line,
    make_classifier_ckpt,
    run_cli,
    tiny_config,
)
from synth import synthetic_jets

from colliderfm.data.shards import ShardWriter, chunk_to_table

PID_WARNING = "no part_charge/part_pid"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 13-feature (``part``) QCD/Tbqq classifier."""
    return make_classifier_ckpt(tmp_path_factory.mktemp("ck") / "clf")


def _lone_parquet(path: Path, labels: list[int] | np.ndarray) -> Path:
    import pyarrow.parquet as pq

    jets = synthetic_jets(len(labels), seed=3, max_particles=12)
    jets.label = np.asarray(labels, dtype=np.int64)
    pq.write_table(chunk_to_table(jets), path)
    return path


def _shards(path: Path, labels: list[int] | np.ndarray, classes: list[str]) -> Path:
    jets = synthetic_jets(len(labels), seed=4, max_particles=12)
    jets.label = np.asarray(labels, dtype=np.int64)
    with ShardWriter(path, "jets", classes, {"generator": "synthetic"}) as w:
        w.write_chunk(jets)
    return path


# ---- convert ----


def test_convert_keeps_labels_of_a_lone_parquet(
    tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    src = _lone_parquet(tmp_path / "jets.parquet", [0, 1, 1, 0, 1])
    out = tmp_path / "conv"
    code, stdout, err = run_cli(["convert", str(src), "--out", str(out)], monkeypatch, capsys)
    assert code == 0, err
    mf = json.loads((out / "manifest.json").read_text())
    assert mf["counts"] == {"0": 2, "1": 3} and mf["classes"] == []
    assert "labels are kept as stored" in err and "--unlabel" in err
    out2 = tmp_path / "conv2"
    code, _, err = run_cli(
        ["convert", str(src), "--unlabel", "--out", str(out2)], monkeypatch, capsys
    )
    assert code == 0, err
    assert json.loads((out2 / "manifest.json").read_text())["counts"] == {"unlabelled": 5}
    assert "kept as stored" not in err


def test_convert_refuses_unnamed_labels_mixed_with_named(
    small_shards: Any, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    named = small_shards(n=20, rows_per_shard=20).path
    src = _lone_parquet(tmp_path / "jets.parquet", [0, 1, 1])
    out = tmp_path / "conv"
    args = ["convert", str(named), str(src), "--out", str(out)]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert_one_error_line(code, err, "jets.parquet", "no manifest naming its classes", "--unlabel")
    assert_no_output(out)


def test_convert_refuses_labels_outside_the_classes(
    tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    src = _shards(tmp_path / "seven", [0, 1, 7, 7, 1], ["QCD", "Tbqq"])
    out = tmp_path / "conv"
    code, _, err = run_cli(["convert", str(src), "--out", str(out)], monkeypatch, capsys)
    assert_one_error_line(code, err, "seven", "2 jets have labels outside its 2 classes", "7")
    assert_no_output(out)


def test_convert_refuses_event_labels_outside_the_classes(
    tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from colliderfm.data.shards import events_table

    table = events_table(
        np.array([2, 1]),
        np.array([30.0, 40.0, 50.0]),
        np.zeros(3),
        np.zeros(3),
        np.array([31.0, 41.0, 51.0]),
        np.array([1, 2, 2], np.int8),
        np.array([0, 5]),
    )
    src = tmp_path / "ev.parquet"
    pq.write_table(pa.Table.from_batches(table.to_batches()), src)
    out = tmp_path / "conv"
    code, _, err = run_cli(["convert", str(src), "--out", str(out)], monkeypatch, capsys)
    assert_one_error_line(code, err, "ev.parquet", "1 events have labels outside", "5")
    assert_no_output(out)


def test_convert_refuses_the_same_input_twice(
    small_shards: Any, toptagging_h5: Any, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    d = small_shards(n=20, rows_per_shard=20).path
    h5 = toptagging_h5(n=5, slots=5).path
    copy = shutil.copy(h5, tmp_path / "copy.h5")
    for inputs, needle in (
        ([d, d], "is given twice"),
        ([h5, Path(copy)], "has the same contents as"),
    ):
        out = tmp_path / "conv"
        args = ["convert", *map(str, inputs), "--out", str(out)]
        code, _, err = run_cli(args, monkeypatch, capsys)
        assert_one_error_line(code, err, needle, "doubled")
        assert_no_output(out)


# ---- merge ----


def test_merge_refuses_doubled_data(
    small_shards: Any, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    d = small_shards(n=40, rows_per_shard=20).path
    copy = tmp_path / "copy"
    shutil.copytree(d, copy)
    link = tmp_path / "link"
    link.symlink_to(d)
    for other, needle in (
        (d, "is given twice"),
        (copy, "holds the same rows as"),
        (link, "is given twice"),
    ):
        out = tmp_path / "merged"
        code, _, err = run_cli(
            ["merge", str(d), str(other), "--out", str(out)], monkeypatch, capsys
        )
        assert_one_error_line(code, err, needle, "doubled")
        assert_no_output(out)


# ---- evaluate: labels ----


def _evaluate(ckpt: Path, data: Path, out: Path, monkeypatch: Any, capsys: Any) -> Any:
    args = ["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(out)]
    return run_cli(args, monkeypatch, capsys)


def test_evaluate_refuses_labels_outside_the_model(
    ckpt: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    for src in (
        _lone_parquet(tmp_path / "seven.parquet", [7] * 6),
        _shards(tmp_path / "seven", [7] * 6, ["QCD", "Tbqq"]),
    ):
        out = tmp_path / "m.json"
        code, _, err = _evaluate(ckpt, src, out, monkeypatch, capsys)
        assert_one_error_line(code, err, src.name, "no jets with a label the model knows", "7: 6")
        assert not out.exists()


def test_evaluate_refuses_unlabelled_data(
    ckpt: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    for src in (
        _lone_parquet(tmp_path / "u.parquet", [-1] * 6),
        _shards(tmp_path / "u", [-1] * 6, ["QCD", "Tbqq"]),
    ):
        out = tmp_path / "m.json"
        code, _, err = _evaluate(ckpt, src, out, monkeypatch, capsys)
        assert_one_error_line(code, err, src.name, "all 6 are unlabelled (-1)")
        assert not out.exists()


def test_evaluate_warns_about_left_out_labels(
    ckpt: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    labels = [0, 1, -1, 7, 0, 1, 1, -1, -1, 0]
    src = _lone_parquet(tmp_path / "mixed.parquet", labels)
    out = tmp_path / "m.json"
    code, _, err = _evaluate(ckpt, src, out, monkeypatch, capsys)
    assert code == 0, err
    assert json.loads(out.read_text())["n"] == 6
    assert "evaluated 6 jets; left out 4" in err and "unlabelled (-1): 3, label 7: 1" in err


def test_evaluate_label_beyond_the_data_classes(
    ckpt: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    """Data classes that differ from the model's (a label map) and a label past the data's own
    list: was an IndexError traceback inside predict."""
    src = _shards(tmp_path / "d", [0, 2, 1, 0, 5, 2, 0], ["QCD", "Hbb", "Top"])
    out = tmp_path / "m.json"
    code, _, err = _evaluate(ckpt, src, out, monkeypatch, capsys)
    assert code == 0, err
    assert json.loads(out.read_text())["n"] == 5  # QCD 3, Top (= Tbqq) 2
    assert "left out 2" in err and "Hbb: 1, label 5: 1" in err


def test_evaluate_jetclass_warns_about_other_classes(
    jetclass_root: Any, ckpt: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    w = jetclass_root(n=40)
    out = tmp_path / "m.json"
    code, _, err = _evaluate(ckpt, w.path, out, monkeypatch, capsys)
    assert code == 0, err
    n_known = int(np.isin(w.kept.label, [0, 8]).sum())
    assert json.loads(out.read_text())["n"] == n_known
    assert f"evaluated {n_known} jets; left out {len(w.kept) - n_known}" in err


# ---- no particle ID read as zeros ----


def test_toptagging_with_13_features_warns(
    toptagging_h5: Any, ckpt: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    from colliderfm.data import stream

    monkeypatch.setattr(stream, "_WARNED_PID", set())
    h5 = toptagging_h5(n=30, slots=20).path
    code, _, err = _evaluate(ckpt, h5, tmp_path / "m.json", monkeypatch, capsys)
    assert code == 0, err
    assert PID_WARNING in err and "toptagging files have no particle ID" in err
    assert "data.features=kinematic" in err


def test_toptagging_with_kinematic_features_does_not_warn(
    toptagging_h5: Any, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    from colliderfm.data import stream
    from colliderfm.data.stream import warn_unknown_particle_id

    monkeypatch.setattr(stream, "_WARNED_PID", set())
    h5 = toptagging_h5(n=5, slots=5).path
    warn_unknown_particle_id(h5, "kinematic")
    assert not stream._WARNED_PID
    warn_unknown_particle_id(h5, "part")
    assert {str(h5)} == stream._WARNED_PID


def test_converted_toptagging_shards_warn(
    toptagging_h5: Any, ckpt: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    from colliderfm.data import stream

    monkeypatch.setattr(stream, "_WARNED_PID", set())
    h5 = toptagging_h5(n=30, slots=20).path
    conv, merged = tmp_path / "conv", tmp_path / "merged"
    code, _, err = run_cli(["convert", str(h5), "--out", str(conv)], monkeypatch, capsys)
    assert code == 0, err
    code, _, err = run_cli(["merge", str(conv), "--out", str(merged)], monkeypatch, capsys)
    assert code == 0, err
    for data in (conv, merged):
        code, _, err = _evaluate(ckpt, data, tmp_path / "m.json", monkeypatch, capsys)
        assert code == 0, err
        assert PID_WARNING in err and "converted from toptagging" in err


def test_finetune_on_toptagging_warns(
    toptagging_h5: Any, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    from colliderfm.data import stream

    monkeypatch.setattr(stream, "_WARNED_PID", set())
    h5 = toptagging_h5(n=40, slots=20).path
    cfg = tiny_config(tmp_path / "ft.yaml", h5, steps=1)
    run = tmp_path / "run"
    code, _, err = run_cli(
        ["finetune", "--config", str(cfg), "--out", str(run)], monkeypatch, capsys
    )
    assert code == 0, err
    assert PID_WARNING in err and "toptagging files have no particle ID" in err
