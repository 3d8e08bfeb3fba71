"""One writer per output: a run directory held by a live run is refused, a stale lock taken over.

Cases:

* a second ``finetune`` into an ``--out`` a live ``finetune`` holds -> one error line naming the
  holder's pid, exit 2; the first run finishes normally;
* ``--resume`` into a directory a live process holds -> refused the same way;
* a lock left by a process that no longer exists -> taken over, the run succeeds;
* an unreadable (half-written) lock -> treated as stale;
* a finished run leaves no lock behind; a run refused before any work leaves no directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import assert_one_error_line, run_cli, tiny_config
from synth import write_synthetic_shards

LOCK = ".colliderfm.lock"


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lock")
    write_synthetic_shards(root / "train", n=128, seed=1, rows_per_shard=64)
    return tiny_config(root / "ft.yaml", root / "train", steps=3)


def _finetune(cfg: Path, run: Path, mp: pytest.MonkeyPatch, cap: object, *extra: str):  # noqa: ANN202
    return run_cli(["finetune", "--config", str(cfg), "--out", str(run), *extra], mp, cap)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_live_holder_is_refused(
    cfg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: object
) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = tmp_path / "run"
        run.mkdir()
        (run / LOCK).write_text(f"{holder.pid}\n")
        code, _, err = _finetune(cfg, run, monkeypatch, capsys)
        assert_one_error_line(code, err, str(run), f"pid {holder.pid}", "another colliderfm run")
        code, _, err = _finetune(cfg, run, monkeypatch, capsys, "--resume")
        assert_one_error_line(code, err, f"pid {holder.pid}")
        assert sorted(p.name for p in run.iterdir()) == [LOCK]  # nothing written beside it
    finally:
        holder.kill()
        holder.wait()


def test_live_holder_with_a_checkpoint_is_named(
    cfg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: object
) -> None:
    """A live run that has written ``last`` already: the refusal names it, not "run exists"."""
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = tmp_path / "run"
        (run / "last").mkdir(parents=True)
        (run / LOCK).write_text(f"{holder.pid}\n")
        code, _, err = _finetune(cfg, run, monkeypatch, capsys)
        assert_one_error_line(code, err, f"pid {holder.pid}", "another colliderfm run")
        assert (run / LOCK).read_text() == f"{holder.pid}\n"  # the holder's lock stays
    finally:
        holder.kill()
        holder.wait()
    code, _, err = _finetune(cfg, run, monkeypatch, capsys)  # holder gone: the run exists
    assert_one_error_line(code, err, "a run already exists there")
    assert not (run / LOCK).exists()  # the stale lock was taken over, then released


@pytest.mark.parametrize("content", ["dead", "garbage"])
def test_stale_lock_is_taken_over(
    content: str, cfg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: object
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK).write_text(f"{_dead_pid()}\n" if content == "dead" else "12ab")
    code, _, err = _finetune(cfg, run, monkeypatch, capsys)
    assert code == 0, err
    assert (run / "model.safetensors").is_file() and not (run / LOCK).exists()


def test_concurrent_runs_into_one_directory(cfg: Path, tmp_path: Path) -> None:
    long_cfg = tiny_config(tmp_path / "long.yaml", cfg.parent / "train", steps=400)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "colliderfm", "finetune", "--config", str(long_cfg)]
    first = subprocess.Popen([*cmd, "--out", str(run)], env=env, stderr=subprocess.PIPE)
    try:
        t0 = time.monotonic()
        while not (run / LOCK).exists():
            assert first.poll() is None and time.monotonic() - t0 < 120
            time.sleep(0.02)
        second = subprocess.run(
            [*cmd, "--out", str(run)], env=env, capture_output=True, text=True, timeout=120
        )
        assert_one_error_line(second.returncode, second.stderr, f"pid {first.pid}")
    finally:
        first.terminate()
        first.wait(timeout=60)
    assert first.returncode == 143  # SIGTERM: interrupted like Ctrl-C
    assert not (run / LOCK).exists()


def test_refused_before_work_leaves_no_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: object
) -> None:
    bad = tiny_config(tmp_path / "bad.yaml", tmp_path / "missing")
    run = tmp_path / "run"
    code, _, err = _finetune(bad, run, monkeypatch, capsys)
    assert code == 2 and "missing" in err
    assert not run.exists()
