"""``kill -9`` during training, then ``--resume``: the final weights equal an uninterrupted run.

The interrupted runs are real ``colliderfm finetune`` processes killed with SIGKILL: once after
the first resumable checkpoint (``RUN/last``) exists, and twice *inside* a checkpoint write (a
helper script holds the process in ``save_checkpoint``: halfway through the weights file, and
between moving the old checkpoint aside and moving the new one in). Each time the previous
checkpoint must stay loadable, the resume must ignore the debris, and the result must be
bit-identical (CPU, one thread) to a run that was never interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from cli_helpers import run_cli, tiny_config
from safetensors.torch import load_file
from synth import write_synthetic_shards

from colliderfm.checkpoints import load_model
from colliderfm.train.checkpoint import load_state

STEPS = 24

#: runs ``colliderfm`` with a checkpoint write that stops halfway; argv: marker nth stage args...
HELPER = """
import os, sys, time
from pathlib import Path

import colliderfm.train.checkpoint as ck

marker, nth, stage = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
calls = {"n": 0}


def hang(what):
    marker.write_text(what)
    time.sleep(600)


if stage == "weights":  # the nth weights file is half written when the process dies
    real_save = ck.save_file

    def save_file(tensors, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == nth:
            Path(path).write_bytes(b"partial")
            hang("weights")
        return real_save(tensors, path, *args, **kwargs)

    ck.save_file = save_file
else:  # "swap": the old checkpoint is moved aside, the new one not yet in place
    real_replace = os.replace

    def replace(src, dst):
        real_replace(src, dst)
        if str(dst).endswith(".old"):
            calls["n"] += 1
            if calls["n"] == nth:
                hang("swap")

    ck.os.replace = replace

sys.argv = ["colliderfm", *sys.argv[4:]]
from colliderfm.cli import main

main()
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Shards, a config (checkpoint every 2 steps) and an uninterrupted reference run."""
    root = tmp_path_factory.mktemp("kill")
    write_synthetic_shards(root / "train", n=256, seed=1, rows_per_shard=64)
    cfg = tiny_config(root / "ft.yaml", root / "train", steps=STEPS)
    cfg.write_text(cfg.read_text() + "  checkpoint_every: 2\n  lr: 3.0e-3\n")
    (root / "helper.py").write_text(HELPER)
    ref = root / "reference"
    mp = pytest.MonkeyPatch()
    try:
        code, _, err = _finetune_in_process(cfg, ref, mp)
    finally:
        mp.undo()
    assert code == 0, err
    return {"root": root, "cfg": cfg, "ref": ref, "helper": root / "helper.py"}


def _finetune_in_process(
    cfg: Path, run: Path, monkeypatch: pytest.MonkeyPatch, resume: bool = False
) -> tuple[int, str, str]:
    class _Cap:  # run_cli wants a capsys; the module fixture has none
        def readouterr(self) -> tuple[str, str]:
            return "", ""

    args = ["finetune", "--config", str(cfg), "--out", str(run)] + (["--resume"] if resume else [])
    return run_cli(args, monkeypatch, _Cap())  # type: ignore[arg-type]


@pytest.fixture
def popen(tmp_path: Path) -> Any:
    """``subprocess.Popen`` (output to ``tmp_path/proc.log``) killed at teardown, whatever
    happened."""
    procs: list[subprocess.Popen[bytes]] = []
    log = open(tmp_path / "proc.log", "wb")  # noqa: SIM115  (closed at teardown)

    def start(args: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=_env())
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    log.close()


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _wait_for(proc: subprocess.Popen[bytes], ready: Any, timeout: float = 120) -> None:
    """Poll until ``ready()``; fail if the process ends first."""
    t0 = time.monotonic()
    while not ready():
        if proc.poll() is not None:
            pytest.fail(
                f"process ended (rc {proc.returncode}) before the kill point (see proc.log)"
            )
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail("timed out waiting for the kill point")
        time.sleep(0.01)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def assert_same_weights(a: Path, b: Path) -> None:
    """Bit-identical tensors in two ``model.safetensors`` files."""
    ta, tb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k


def _resume_and_compare(setup: dict[str, Path], run: Path, monkeypatch: Any) -> None:
    code, _, err = _finetune_in_process(setup["cfg"], run, monkeypatch, resume=True)
    assert code == 0, err
    state = load_state(run / "last")
    assert state["finished"] and state["step"] == STEPS
    assert_same_weights(run / "last", setup["ref"] / "last")
    assert_same_weights(run, setup["ref"])  # the best model in the run directory too
    assert not (run / "last.old").exists()
    assert not [p.name for p in run.iterdir() if ".tmp-" in p.name]


def test_sigkill_mid_run_then_resume_is_bit_identical(
    setup: dict[str, Path], tmp_path: Path, monkeypatch: Any, popen: Any
) -> None:
    run = tmp_path / "run"
    proc = popen(
        [sys.executable, "-m", "colliderfm", "finetune", "--config", str(setup["cfg"])]
        + ["--out", str(run)]
    )
    _wait_for(proc, lambda: (run / "last" / "state.pt").is_file())
    _kill(proc)
    state = load_state(run / "last")
    assert 2 <= state["step"] < STEPS and not state["finished"], state["step"]
    _resume_and_compare(setup, run, monkeypatch)


@pytest.mark.parametrize(("stage", "nth"), [("weights", 3), ("swap", 2)])
def test_sigkill_inside_a_checkpoint_write(
    stage: str, nth: int, setup: dict[str, Path], tmp_path: Path, monkeypatch: Any, popen: Any
) -> None:
    """Killed halfway through the 3rd ``last`` write (step 6): the step-4 one is still there."""
    run, marker = tmp_path / "run", tmp_path / "in-save"
    proc = popen(
        [sys.executable, str(setup["helper"]), str(marker), str(nth), stage]
        + ["finetune", "--config", str(setup["cfg"]), "--out", str(run)]
    )
    _wait_for(proc, marker.is_file)
    _kill(proc)
    if stage == "weights":  # the half-written copy is hidden; last is the previous checkpoint
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".last.tmp-")] == []
        assert [p.name for p in run.iterdir() if p.name.startswith(".last.tmp-")]
    else:  # last was moved aside: only last.old is there
        assert not (run / "last").exists() and (run / "last.old").is_dir()
    assert load_state(run / "last")["step"] == 4
    load_model(run / "last")
    _resume_and_compare(setup, run, monkeypatch)
