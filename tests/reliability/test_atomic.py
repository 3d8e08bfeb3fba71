"""Every output atomic, every verb: a failure leaves the previous state or nothing.

Cases:

* ``evaluate --out DIR`` where DIR is a directory -> one error line before any work, no plots
  left beside DIR (they were written next to it before the JSON failed);
* ``evaluate`` whose metrics JSON cannot be written (disk full) -> one error line, and the plots
  of that evaluation are removed too (no half set of outputs);
* a full disk while the first checkpoint's weights are written (safetensors raises its own
  ``SafetensorError``, not ``OSError``) -> one error line, no traceback, and the run directory
  this run created (``metrics.csv``, ``tb/``) is gone;
* the same with an ``--out`` that existed before -> the directory stays, with no checkpoint;
* null values in a Parquet input (``label``, a jet scalar, an entry of a particle list) ->
  ``inspect`` and ``evaluate`` say which column, instead of an ``ArrowInvalid`` traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cli_helpers import (
    assert_no_checkpoint,
    assert_one_error_line,
    make_classifier_ckpt,
    run_cli,
    tiny_config,
)
from safetensors import SafetensorError
from synth import write_synthetic_shards

FULL = 'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space" })'


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("at") / "train"
    write_synthetic_shards(path, n=96, seed=1, rows_per_shard=48)
    return path


def test_evaluate_out_is_a_directory(
    shards: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    ckpt = make_classifier_ckpt(tmp_path / "clf")
    out = tmp_path / "results"
    out.mkdir()
    args = ["evaluate", "--checkpoint", str(ckpt), "--data", str(shards), "--out", str(out)]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert_one_error_line(code, err, "results", "is a directory")
    assert list(out.iterdir()) == []
    assert not (tmp_path / "roc.png").exists() and not (tmp_path / "scores.png").exists()


def test_evaluate_failed_json_removes_its_plots(
    shards: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    import colliderfm.evaluate.run as ev
    from colliderfm.errors import DataError

    def full(obj: Any, path: Any) -> None:
        raise DataError(path, "cannot write (No space left on device)")

    monkeypatch.setattr(ev, "write_json", full)
    ckpt = make_classifier_ckpt(tmp_path / "clf")
    out = tmp_path / "ev" / "metrics.json"
    args = ["evaluate", "--checkpoint", str(ckpt), "--data", str(shards), "--out", str(out)]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert_one_error_line(code, err, "metrics.json", "No space")
    assert sorted(p.name for p in out.parent.iterdir()) == []


@pytest.mark.parametrize("existed", [False, True])
def test_checkpoint_safetensors_disk_full(
    existed: bool, shards: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    import colliderfm.train.checkpoint as ck

    def save_file(tensors: Any, path: str, *a: Any, **k: Any) -> None:
        Path(path).write_bytes(b"\0partial")
        raise SafetensorError(FULL)

    monkeypatch.setattr(ck, "save_file", save_file)
    run = tmp_path / "run"
    if existed:
        run.mkdir()
    cfg = tiny_config(tmp_path / "ft.yaml", shards)
    code, _, err = run_cli(["finetune", "--config", str(cfg), "--out", str(run)], monkeypatch,
                           capsys)  # fmt: skip
    assert_one_error_line(code, err, "run", "cannot write checkpoint", "StorageFull")
    assert "Traceback" not in err
    if existed:
        assert run.is_dir()
        assert_no_checkpoint(run)
    else:
        assert not run.exists()


@pytest.mark.parametrize("column", ["label", "jet_pt", "part_px"])
def test_null_values_are_one_error(
    column: str, shards: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(shards / "part-00000.parquet")
    values = table.column(column).to_pylist()
    if column == "part_px":
        values[3] = [None, *values[3][1:]]
    else:
        values[3] = None
    i = table.schema.get_field_index(column)
    table = table.set_column(i, column, pa.array(values, type=table.schema.field(column).type))
    lone = tmp_path / "nulls.parquet"
    pq.write_table(table, lone)
    ckpt = make_classifier_ckpt(tmp_path / "clf")
    for args in (
        ["inspect", str(lone)],
        ["evaluate", "--checkpoint", str(ckpt), "--data", str(lone)],
    ):
        code, _, err = run_cli(args, monkeypatch, capsys)
        assert_one_error_line(code, err, "nulls.parquet", f"column '{column}'", "null")
