"""Outputs that cannot be written: disk full (ENOSPC, simulated) or a read-only directory.

Every verb that writes (``convert``, ``generate jets``, ``merge``, ``finetune``/``pretrain``
checkpoints, ``evaluate --out``, ``export onnx --out``) must fail with one clear error line and
exit code 2, leave no half-written file that looks valid, and keep whatever was there before.
Disk-full is simulated by making the lowest-level write raise ``OSError(ENOSPC)`` after writing
part of the data; read-only directories need permissions to be enforced (skipped as root).
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import (
    assert_no_checkpoint,
    assert_no_output,
    assert_one_error_line,
    make_classifier_ckpt,
    run_cli,
    tiny_config,
)
from synth import synthetic_jets, write_synthetic_shards

from colliderfm.checkpoints import load_model

NO_SPACE = os.strerror(errno.ENOSPC)


def disk_full(*args: Any, **kwargs: Any) -> None:
    """Stand-in for a write call on a full disk."""
    raise OSError(errno.ENOSPC, NO_SPACE)


def half_then_full(real: Any, path_arg: int = 1) -> Any:
    """Wrap a ``write(obj, path, ...)``-like function: write a few bytes to the path, then fail."""

    def write(*args: Any, **kwargs: Any) -> None:
        Path(str(args[path_arg])).write_bytes(b"\0partial")
        raise OSError(errno.ENOSPC, NO_SPACE)

    return write


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small two-class shard directory."""
    path = tmp_path_factory.mktemp("data") / "train"
    write_synthetic_shards(path, n=96, seed=1, rows_per_shard=48)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny classifier checkpoint."""
    return make_classifier_ckpt(tmp_path_factory.mktemp("ckpt") / "clf")


# ---- convert / merge / generate: Parquet shards ----


def test_convert_disk_full_while_writing_a_shard(
    shards: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    import pyarrow.parquet as pq

    monkeypatch.setattr(pq.ParquetWriter, "write_table", disk_full)
    out = tmp_path / "conv"
    code, _, err = run_cli(["convert", str(shards), "--out", str(out)], monkeypatch, capsys)
    assert_one_error_line(code, err, "conv", NO_SPACE)
    assert_no_output(out)


def test_convert_disk_full_at_the_manifest_keeps_the_old_output(
    shards: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    import colliderfm.data.shards as parquet

    out = tmp_path / "conv"
    code, _, _ = run_cli(["convert", str(shards), "--out", str(out)], monkeypatch, capsys)
    assert code == 0
    before = (out / "manifest.json").read_text()
    monkeypatch.setattr(parquet.json, "dump", disk_full)
    args = ["convert", str(shards), "--out", str(out), "--overwrite"]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert_one_error_line(code, err, "conv", NO_SPACE)
    assert (out / "manifest.json").read_text() == before  # the previous output is untouched
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".conv.tmp")]


def test_convert_disk_full_when_closing_a_shard(
    shards: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    import colliderfm.data.shards as parquet

    real_close = parquet._LazyWriter.close

    def close(self: Any) -> None:
        real_close(self)
        raise OSError(errno.ENOSPC, NO_SPACE)

    monkeypatch.setattr(parquet._LazyWriter, "close", close)
    out = tmp_path / "conv"
    code, _, err = run_cli(["convert", str(shards), "--out", str(out)], monkeypatch, capsys)
    assert_one_error_line(code, err, "conv", NO_SPACE)
    assert_no_output(out)


def test_merge_disk_full(shards: Path, tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    import pyarrow.parquet as pq

    monkeypatch.setattr(pq.ParquetWriter, "write_table", disk_full)
    out = tmp_path / "merged"
    code, _, err = run_cli(["merge", str(shards), "--out", str(out)], monkeypatch, capsys)
    assert_one_error_line(code, err, "merged", NO_SPACE)
    assert_no_output(out)


def _fake_generator(monkeypatch: Any) -> None:
    """Replace Pythia + FastJet by synthetic jets (same unit structure, instant)."""
    import colliderfm.data.generate.jets as jets

    def run_unit(unit: Any, progress: Any = None) -> tuple[int, Any, tuple[int, int]]:
        chunk = synthetic_jets(unit.n, seed=unit.index)
        chunk.label = np.full(unit.n, unit.label, dtype=np.int64)
        return unit.index, chunk, (unit.n, unit.n)

    monkeypatch.setattr(jets, "_run_unit", run_unit)


def test_generate_jets_disk_full(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    import pyarrow.parquet as pq

    _fake_generator(monkeypatch)
    args = ["generate", "jets", "--process", "top,qcd", "--n", "10", "--jets-per-shard", "8"]
    code, _, err = run_cli([*args, "--out", str(tmp_path / "ok")], monkeypatch, capsys)
    assert code == 0, err  # the stand-in generator works
    assert json.loads((tmp_path / "ok" / "manifest.json").read_text())["n"] == 20
    monkeypatch.setattr(pq.ParquetWriter, "write_table", disk_full)
    out = tmp_path / "gen"
    code, _, err = run_cli([*args, "--out", str(out)], monkeypatch, capsys)
    assert_one_error_line(code, err, "gen", NO_SPACE)
    assert_no_output(out)


# ---- training checkpoints ----


def _train(
    verb: str, shards: Path, run: Path, monkeypatch: Any, capsys: Any, resume: bool = False
) -> tuple[int, str, str]:
    extra = "objective:\n  name: contrastive\n" if verb == "pretrain" else ""
    cfg = tiny_config(run.parent / f"{verb}.yaml", shards, extra + "", steps=4)
    text = cfg.read_text().replace("  log_every: 1\n", "  log_every: 1\n  checkpoint_every: 1\n")
    cfg.write_text(text)
    args = [verb, "--config", str(cfg), "--out", str(run)] + (["--resume"] if resume else [])
    return run_cli(args, monkeypatch, capsys)


@pytest.mark.parametrize("verb", ["finetune", "pretrain"])
def test_checkpoint_disk_full_from_the_start(
    verb: str, shards: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    import colliderfm.train.checkpoint as ck

    monkeypatch.setattr(ck, "save_file", half_then_full(ck.save_file))
    run = tmp_path / "run"
    code, _, err = _train(verb, shards, run, monkeypatch, capsys)
    assert_one_error_line(code, err, "run", "cannot write checkpoint", NO_SPACE)
    assert_no_checkpoint(run)
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("verb", ["finetune", "pretrain"])
def test_checkpoint_disk_full_later_keeps_the_last_good_one(
    verb: str, shards: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    """The disk fills up at the third checkpoint: the second stays loadable and resumable."""
    import colliderfm.train.checkpoint as ck

    real = ck.save_file
    calls = {"n": 0}

    def save_file(tensors: Any, path: str, *a: Any, **k: Any) -> None:
        calls["n"] += 1
        if calls["n"] >= 3:
            half_then_full(real)(tensors, path)
        real(tensors, path, *a, **k)

    monkeypatch.setattr(ck, "save_file", save_file)
    run = tmp_path / "run"
    code, _, err = _train(verb, shards, run, monkeypatch, capsys)
    assert_one_error_line(code, err, "cannot write checkpoint", NO_SPACE)
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert not [p.name for p in run.iterdir() if ".tmp-" in p.name]
    state = ck.load_state(run / "last")
    assert 1 <= state["step"] < 4 and not state["finished"]
    load_model(run / "last")  # loadable
    monkeypatch.setattr(ck, "save_file", real)  # space freed: the run resumes and finishes
    code, _, err = _train(verb, shards, run, monkeypatch, capsys, resume=True)
    assert code == 0, err
    assert ck.load_state(run / "last")["finished"]


# ---- evaluate --out, export onnx --out ----


def test_evaluate_out_disk_full(
    ckpt: Path, shards: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    out = tmp_path / "ev" / "metrics.json"
    real = Path.write_text

    def write_text(self: Path, data: str, *a: Any, **k: Any) -> int:
        if self.parent == out.parent:
            real(self, data[: len(data) // 2], *a, **k)
            raise OSError(errno.ENOSPC, NO_SPACE)
        return real(self, data, *a, **k)

    monkeypatch.setattr(Path, "write_text", write_text)
    args = ["evaluate", "--checkpoint", str(ckpt), "--data", str(shards), "--out", str(out)]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert_one_error_line(code, err, "metrics.json", NO_SPACE)
    assert not out.exists()
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".")]


def test_evaluate_plots_disk_full(
    ckpt: Path, shards: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    from matplotlib.figure import Figure

    def savefig(self: Any, fname: Any, *a: Any, **k: Any) -> None:
        Path(fname).write_bytes(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, NO_SPACE)

    monkeypatch.setattr(Figure, "savefig", savefig)
    out = tmp_path / "ev" / "metrics.json"
    args = ["evaluate", "--checkpoint", str(ckpt), "--data", str(shards), "--out", str(out)]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert_one_error_line(code, err, "ev", NO_SPACE)
    assert not out.exists()  # metrics.json is written last: its presence means success
    assert sorted(p.name for p in out.parent.iterdir()) == []


@pytest.mark.parametrize("where", ["model", "sidecar"])
def test_export_onnx_disk_full(
    where: str, ckpt: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import onnx

    import colliderfm.export.onnx as ex

    if where == "model":
        monkeypatch.setattr(onnx, "save", half_then_full(onnx.save))
    else:
        monkeypatch.setattr(ex, "write_text", disk_full)  # the sidecar write
    out = tmp_path / "model.onnx"
    args = ["export", "onnx", "--checkpoint", str(ckpt), "--out", str(out)]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert_one_error_line(code, err, "model.onnx", NO_SPACE)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ---- read-only output directories (needs a non-root user) ----


def _permissions_enforced(d: Path) -> bool:
    """Whether a 0o500 directory really refuses writes (not for root with CAP_DAC_OVERRIDE)."""
    try:
        (d / ".probe").write_text("x")
    except PermissionError:
        return True
    (d / ".probe").unlink()
    return False


def test_read_only_parent_directory(
    ckpt: Path, shards: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if not _permissions_enforced(ro):
            pytest.skip(f"directory permissions are not enforced (euid {os.geteuid()})")
        cfg = tiny_config(tmp_path / "ft.yaml", shards)
        cases = [
            ["convert", str(shards), "--out", str(ro / "conv")],
            ["merge", str(shards), "--out", str(ro / "merged")],
            ["evaluate", "--checkpoint", str(ckpt), "--data", str(shards)]
            + ["--out", str(ro / "m.json")],
            ["export", "onnx", "--checkpoint", str(ckpt), "--out", str(ro / "m.onnx")],
            ["finetune", "--config", str(cfg), "--out", str(ro / "run")],
        ]
        for args in cases:
            code, _, err = run_cli(args, monkeypatch, capsys)
            assert_one_error_line(code, err, str(ro))
            assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)
