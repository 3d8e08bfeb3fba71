"""Checkpoint files under crashes and damage: atomic swaps, stale temporaries, clear errors."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn

import colliderfm.train.checkpoint as ck
from colliderfm.errors import CheckpointError

META = {"model": {"task": "test"}}


def _module(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(4, 3)


def _same(a: nn.Module, b: nn.Module) -> bool:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.equal(x, y) for x, y in pairs)


def _loaded(path: Path) -> nn.Module:
    m = nn.Linear(4, 3)
    ck.load_weights(m, path)
    return m


def test_a_second_crash_during_recovery_keeps_the_old_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only ``ck.old`` survived a first crash; a crash in the next write must not lose it."""
    first = _module(0)
    ck.save_checkpoint(tmp_path / "ck", first, META, state={"step": 1})
    os.replace(tmp_path / "ck", tmp_path / "ck.old")  # the first crash, mid-swap
    assert _same(_loaded(tmp_path / "ck"), first)  # resolve() falls back to .old

    real = os.replace

    def replace(src: Any, dst: Any) -> None:
        if Path(dst) == tmp_path / "ck":  # dies before the new copy is in place
            raise OSError(errno.EIO, "simulated crash")
        real(src, dst)

    monkeypatch.setattr(ck.os, "replace", replace)
    with pytest.raises(CheckpointError):
        ck.save_checkpoint(tmp_path / "ck", _module(1), META, state={"step": 2})
    monkeypatch.setattr(ck.os, "replace", real)
    assert _same(_loaded(tmp_path / "ck"), first)
    assert ck.load_state(tmp_path / "ck")["step"] == 1
    ck.save_checkpoint(tmp_path / "ck", _module(2), META, state={"step": 3})  # recovers
    assert ck.load_state(tmp_path / "ck")["step"] == 3 and not (tmp_path / "ck.old").exists()


@pytest.mark.parametrize("inplace", [False, True])
def test_stale_temporaries_of_a_killed_write_are_cleaned(tmp_path: Path, inplace: bool) -> None:
    target = tmp_path / "run" if inplace else tmp_path / "last"
    where = target if inplace else tmp_path
    where.mkdir(parents=True, exist_ok=True)
    stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=where))
    (stale / ck.WEIGHTS).write_bytes(b"half")
    other = tmp_path / ".unrelated.tmp-x"
    other.mkdir()
    ck.save_checkpoint(target, _module(0), META, inplace=inplace)
    assert not stale.exists() and other.exists()
    assert _same(_loaded(target), _module(0))


def test_unwritable_location_is_a_checkpoint_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*a: Any, **k: Any) -> str:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ck.tempfile, "mkdtemp", full)
    with pytest.raises(CheckpointError, match="cannot write checkpoint.*No space left"):
        ck.save_checkpoint(tmp_path / "ck", _module(0), META)
    assert not (tmp_path / "ck").exists()


@pytest.mark.parametrize("cut", [0, 10, 0.5])
def test_damaged_weights_are_a_checkpoint_error(tmp_path: Path, cut: float) -> None:
    path = ck.save_checkpoint(tmp_path / "ck", _module(0), META, state={"step": 1})
    data = (path / ck.WEIGHTS).read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else cut
    (path / ck.WEIGHTS).write_bytes(data[:n])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: unreadable weights"):
        ck.load_weights(nn.Linear(4, 3), path)


def test_damaged_resume_state_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = ck.save_checkpoint(tmp_path / "ck", _module(0), META, state={"step": 1})
    data = (path / ck.STATE).read_bytes()
    (path / ck.STATE).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"state\.pt: unreadable resume state"):
        ck.load_state(path)
    (path / ck.STATE).unlink()
    with pytest.raises(CheckpointError, match="cannot be resumed"):
        ck.load_state(path)


def test_newer_schema_and_mismatched_model(tmp_path: Path) -> None:
    path = ck.save_checkpoint(tmp_path / "ck", _module(0), META)
    meta = yaml.safe_load((path / ck.META).read_text())
    assert meta["checkpoint_schema"] == ck.CHECKPOINT_SCHEMA
    with pytest.raises(CheckpointError, match="weights do not match the model") as info:
        ck.load_weights(nn.Linear(5, 3), path)
    assert "e.g. weight: saved [3, 4], model [3, 5]" in str(info.value)
    with pytest.raises(CheckpointError, match=r"4 missing, e\.g\. 0\.weight; 2 unexpected") as info:
        ck.load_weights(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 3)), path)
    assert "another model config" in str(info.value)
    meta["checkpoint_schema"] = ck.CHECKPOINT_SCHEMA + 1
    (path / ck.META).write_text(yaml.safe_dump(meta))
    with pytest.raises(CheckpointError, match="newer than this colliderfm supports"):
        ck.read_meta(path)
