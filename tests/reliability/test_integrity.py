"""Integrity: a shard that is not what its manifest says is one error line naming it, exit 2.

Cases (principle 3 of issue 18):

- row counts: a shard with 100 rows where the manifest says 1000, read by a training stream
- row counts: the same shard read by ``inspect`` (every read of a shard directory checks them)
- row counts: a manifest whose total ``n`` is not the sum of its shards' rows
- sha256: a shard with one flipped byte, ``evaluate`` (the first read of a directory by a run)
- sha256: the flipped byte, ``convert`` of the directory
- sha256: the flipped byte, ``merge`` of the directory
- sha256: the flipped byte, ``inspect --verify`` (plain ``inspect`` does not hash)
- sha256: the flipped byte, ``finetune`` on it (through the training loader)
- ``inspect --verify`` of a good directory reports every shard hashed; a foreign file says
  it has no checksums; a checkpoint with ``--verify`` is an error
- the verification is cached: a second stream in the same process, and a new process (the
  marker file), do not hash again; a rewritten shard (new mtime/ctime) is hashed again
- a shard replaced after it was verified (same size, new content) is caught on the next read
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import (
    assert_no_checkpoint,
    assert_no_output,
    assert_one_error_line,
    make_classifier_ckpt,
    run_cli,
    tiny_config,
)

from colliderfm.data import shards as shards_mod
from colliderfm.data.readers.parquet import ParquetReader
from colliderfm.errors import DataError


def _flip_byte(shard: Path, at: float = 0.5) -> None:
    """Flip one bit in the middle of a shard (a data page: the footer still reads)."""
    data = bytearray(shard.read_bytes())
    data[int(len(data) * at)] ^= 0x01
    shard.write_bytes(bytes(data))


def _short_shard(shards: Path, name: str = "part-00000.parquet", rows: int = 100) -> None:
    """Rewrite one shard with only its first ``rows`` rows, the manifest left as it was."""
    import pyarrow.parquet as pq

    f = shards / name
    pq.write_table(pq.read_table(f).slice(0, rows), f)


@pytest.fixture
def thousand(small_shards: Any) -> Path:
    """Two shards of 1000 jets each."""
    return small_shards("thousand", n=2000, rows_per_shard=1000).path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_classifier_ckpt(tmp_path_factory.mktemp("ck") / "clf")


def test_short_shard_is_refused_by_a_stream(thousand: Path) -> None:
    from colliderfm.data.stream import evaluation_stream

    _short_shard(thousand)
    with pytest.raises(DataError, match="holds 100 rows but the manifest says 1000") as e:
        evaluation_stream(thousand, batch_size=64, max_particles=16)
    assert "part-00000.parquet" in str(e.value)


def test_short_shard_is_refused_by_inspect(thousand: Path, monkeypatch: Any, capsys: Any) -> None:
    _short_shard(thousand, "part-00001.parquet")
    code, _, err = run_cli(["inspect", str(thousand)], monkeypatch, capsys)
    assert_one_error_line(code, err, "part-00001.parquet", "holds 100 rows", "says 1000")


def test_manifest_total_must_match_its_shards(thousand: Path) -> None:
    from colliderfm.data.shards import read_manifest

    mf = json.loads((thousand / "manifest.json").read_text())
    mf["n"] = 5000
    (thousand / "manifest.json").write_text(json.dumps(mf))
    with pytest.raises(DataError, match=r"n=5000 is not the sum of its shards' rows \(2000\)"):
        read_manifest(thousand)


def test_flipped_byte_evaluate(
    small_shards: Any, ckpt: Path, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    data = small_shards(n=200, rows_per_shard=100).path
    _flip_byte(data / "part-00001.parquet")
    out = tmp_path / "m.json"
    args = ["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(out)]
    code, _, err = run_cli(args, monkeypatch, capsys)
    line = assert_one_error_line(code, err, "part-00001.parquet: checksum mismatch")
    assert line.startswith(f"colliderfm: error: {data / 'part-00001.parquet'}: checksum mismatch")
    assert not out.exists()


def test_flipped_byte_convert(
    small_shards: Any, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    data = small_shards(n=200, rows_per_shard=100).path
    _flip_byte(data / "part-00000.parquet")
    out = tmp_path / "conv"
    code, _, err = run_cli(["convert", str(data), "--out", str(out)], monkeypatch, capsys)
    assert_one_error_line(code, err, "part-00000.parquet: checksum mismatch")
    assert_no_output(out)


def test_flipped_byte_merge(
    small_shards: Any, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    good = small_shards("good", n=100, seed=1, rows_per_shard=100).path
    data = small_shards(n=200, rows_per_shard=100).path
    _flip_byte(data / "part-00001.parquet")
    out = tmp_path / "merged"
    args = ["merge", str(good), str(data), "--out", str(out)]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert_one_error_line(code, err, "part-00001.parquet: checksum mismatch")
    assert_no_output(out)


def test_flipped_byte_inspect_verify(small_shards: Any, monkeypatch: Any, capsys: Any) -> None:
    data = small_shards(n=200, rows_per_shard=100).path
    _flip_byte(data / "part-00000.parquet")
    code, _, err = run_cli(["inspect", str(data), "--verify"], monkeypatch, capsys)
    assert_one_error_line(code, err, "part-00000.parquet: checksum mismatch")


def test_flipped_byte_finetune(
    small_shards: Any, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    data = small_shards(n=200, rows_per_shard=100).path
    _flip_byte(data / "part-00001.parquet")
    cfg = tiny_config(tmp_path / "ft.yaml", data)
    run = tmp_path / "run"
    code, _, err = run_cli(
        ["finetune", "--config", str(cfg), "--out", str(run)], monkeypatch, capsys
    )
    assert_one_error_line(code, err, "part-00001.parquet: checksum mismatch")
    assert_no_checkpoint(run)


def test_inspect_verify_reports(
    small_shards: Any, toptagging_h5: Any, ckpt: Path, monkeypatch: Any, capsys: Any
) -> None:
    data = small_shards(n=300, rows_per_shard=100).path
    code, out, err = run_cli(["inspect", str(data), "--verify", "--json"], monkeypatch, capsys)
    assert code == 0, err
    assert json.loads(out)["verified"] == {"shards": 3, "hashed": 3, "cached": 0, "unchecked": 0}
    code, out, err = run_cli(["inspect", str(data), "--verify"], monkeypatch, capsys)
    assert code == 0 and "verified: sha256 of 3 of 3 shards matches the manifest" in out
    h5 = toptagging_h5(n=5, slots=5).path
    code, out, err = run_cli(["inspect", str(h5), "--verify"], monkeypatch, capsys)
    assert code == 0 and "verified: no checksums recorded for this format" in out
    code, _, err = run_cli(["inspect", str(ckpt), "--verify"], monkeypatch, capsys)
    assert_one_error_line(code, err, "--verify checks data")


def _count_hashes(monkeypatch: Any) -> list[Path]:
    calls: list[Path] = []
    real = shards_mod.sha256_file

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(shards_mod, "sha256_file", counting)
    return calls


def test_verification_is_cached(small_shards: Any, monkeypatch: Any) -> None:
    from colliderfm.data.shards import VERIFIED, verify_shards

    data = small_shards(n=300, rows_per_shard=100).path
    calls = _count_hashes(monkeypatch)
    reader = ParquetReader()
    reader.units(data)
    assert len(calls) == 3 and (data / VERIFIED).is_file()
    reader.units(data)  # the same process: no hashing
    reader.labels(data)
    assert len(calls) == 3
    monkeypatch.setattr(shards_mod, "_HASHED", {})  # a new process: the marker is enough
    assert verify_shards(data)["cached"] == 3 and len(calls) == 3
    # rewriting a shard (same bytes) gives it a new mtime/ctime: hashed again, still good
    shard = data / "part-00002.parquet"
    shard.write_bytes(shard.read_bytes())
    assert verify_shards(data) == {"shards": 3, "hashed": 1, "cached": 2, "unchecked": 0}
    assert calls[-1] == shard
    assert verify_shards(data, force=True)["hashed"] == 3  # inspect --verify, convert, merge


def test_shard_replaced_after_verification_is_caught(small_shards: Any) -> None:
    from colliderfm.data.stream import evaluation_stream

    data = small_shards(n=200, rows_per_shard=100).path
    evaluation_stream(data, batch_size=64, max_particles=16)  # verified and cached
    _flip_byte(data / "part-00000.parquet", at=0.4)
    with pytest.raises(DataError, match="part-00000.parquet: checksum mismatch"):
        evaluation_stream(data, batch_size=64, max_particles=16)
