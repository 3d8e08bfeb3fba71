"""Ctrl-C (SIGINT) and SIGTERM during a verb: one line, exit 130 / 143, and a state to go on from.

Cases (each a real ``colliderfm`` process that signals itself at a chosen point, so the
interrupt lands in the same place every time):

* finetune, SIGINT inside a training step's forward pass -> 130, "continue with --resume";
  ``--resume`` then finishes bit-identical to a run never interrupted;
* finetune, SIGTERM at the same point -> 143, the same resumable state;
* finetune, SIGINT in the very first step -> 130, a resumable state at step 0;
* finetune, SIGINT during the final test evaluation -> 130, the best model and the finished
  state are on disk, ``--resume`` writes the test metrics;
* pretrain (contrastive), SIGTERM inside a step -> 143, ``--resume`` finishes;
* convert, SIGINT while writing shards -> 130, no output directory and no temporary files;
* forked workers (generation pools, DataLoader workers) keep the default SIGTERM, so
  ``Pool.terminate`` ends them (a worker raising instead hung ``generate``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import run_cli, tiny_config
from safetensors.torch import load_file
from synth import write_synthetic_shards

from colliderfm.train.checkpoint import load_state

STEPS = 12

#: runs ``colliderfm ARGS`` and sends itself SIGNAL at the nth call of module:attr
HELPER = """
import importlib, os, signal, sys

target, nth, sig = sys.argv[1], int(sys.argv[2]), getattr(signal, sys.argv[3])
mod_name, attr = target.split(":")
owner = importlib.import_module(mod_name)
*path, name = attr.split(".")
for p in path:
    owner = getattr(owner, p)
real, calls = getattr(owner, name), {"n": 0}


def wrapper(*args, **kwargs):
    calls["n"] += 1
    if calls["n"] == nth:
        os.kill(os.getpid(), sig)
    return real(*args, **kwargs)


setattr(owner, name, wrapper)
sys.argv = ["colliderfm", *sys.argv[4:]]
from colliderfm.cli import main

main()
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sig")
    write_synthetic_shards(root / "train", n=128, seed=1, rows_per_shard=64)
    write_synthetic_shards(root / "test", n=64, seed=2, rows_per_shard=64)
    cfg = tiny_config(root / "ft.yaml", root / "train", steps=STEPS)
    cfg.write_text(cfg.read_text() + "  checkpoint_every: 2\n  lr: 3.0e-3\n")
    (root / "helper.py").write_text(HELPER)
    return root


def _interrupt(root: Path, target: str, nth: int, sig: str, *args: str) -> tuple[int, str]:
    res = subprocess.run(
        [sys.executable, str(root / "helper.py"), target, str(nth), sig, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("colliderfm:")]
    assert "Traceback" not in res.stderr, res.stderr
    assert len(lines) == 1, res.stderr
    return res.returncode, lines[0]


def _finetune(cfg: Path, run: Path, mp: pytest.MonkeyPatch, cap: object, *extra: str) -> int:
    code, _, err = run_cli(["finetune", "--config", str(cfg), "--out", str(run), *extra], mp, cap)
    assert code == 0, err
    return code


def _same(a: Path, b: Path) -> None:
    ta, tb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert ta.keys() == tb.keys() and all((ta[k] == tb[k]).all() for k in ta)


@pytest.mark.parametrize(("sig", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_finetune_interrupted_mid_step_resumes_bit_identical(
    sig: str, code: int, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: object
) -> None:
    run = tmp_path / "run"
    target = "colliderfm.recipes.finetune:classification_loss"
    rc, line = _interrupt(root, target, 6, sig, "finetune", "--config", str(root / "ft.yaml"),
                          "--out", str(run))  # fmt: skip
    assert rc == code
    assert line.startswith(f"colliderfm: interrupted ({sig})") and "--resume (from step 5)" in line
    state = load_state(run / "last")
    assert state["step"] == 5 and not state["finished"]
    assert not (run / ".colliderfm.lock").exists()
    _finetune(root / "ft.yaml", run, monkeypatch, capsys, "--resume")
    assert load_state(run / "last")["step"] == STEPS
    _finetune(root / "ft.yaml", tmp_path / "ref", monkeypatch, capsys)
    _same(run / "last", tmp_path / "ref" / "last")


def test_interrupt_in_the_first_step_is_resumable_from_step_0(root: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    target = "colliderfm.recipes.finetune:classification_loss"
    rc, line = _interrupt(root, target, 1, "SIGINT", "finetune", "--config",
                          str(root / "ft.yaml"), "--out", str(run))  # fmt: skip
    assert rc == 130 and "--resume (from step 0)" in line
    assert load_state(run / "last")["step"] == 0


def test_interrupt_during_test_evaluation_keeps_the_model(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: object
) -> None:
    run = tmp_path / "run"
    rc, line = _interrupt(root, "colliderfm.evaluate.run:evaluate_checkpoint", 1, "SIGINT",
                          "finetune", "--config", str(root / "ft.yaml"), "--out", str(run),
                          "--set", f"data.test={root / 'test'}")  # fmt: skip
    assert rc == 130 and line.startswith("colliderfm: interrupted (SIGINT)")
    assert (run / "model.safetensors").is_file() and load_state(run / "last")["finished"]
    assert not (run / "test_metrics.json").exists()
    _finetune(root / "ft.yaml", run, monkeypatch, capsys, "--resume", "--set",
              f"data.test={root / 'test'}")  # fmt: skip
    assert (run / "test_metrics.json").is_file()


def test_pretrain_sigterm_resumes(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: object
) -> None:
    extra = "  checkpoint_every: 2\nobjective:\n  name: contrastive\n"
    cfg = tiny_config(tmp_path / "pt.yaml", root / "train", extra, steps=8)
    run = tmp_path / "run"
    rc, line = _interrupt(root, "colliderfm.recipes.pretrain:own_loss", 4, "SIGTERM", "pretrain",
                          "--config", str(cfg), "--out", str(run))  # fmt: skip
    assert rc == 143 and "--resume (from step 3)" in line
    code, _, err = run_cli(["pretrain", "--config", str(cfg), "--out", str(run), "--resume"],
                           monkeypatch, capsys)  # fmt: skip
    assert code == 0, err
    assert load_state(run / "last")["step"] == 8


def test_convert_interrupted_leaves_nothing(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "conv"
    rc, line = _interrupt(root, "colliderfm.data.shards:ShardWriter.write_chunk", 1, "SIGINT",
                          "convert", str(root / "train" / "part-00000.parquet"),
                          "--out", str(out))  # fmt: skip
    assert rc == 130 and line == "colliderfm: interrupted (SIGINT)"
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["conv"] or list(tmp_path.iterdir()) == []


def _child_sigterm(q: object) -> None:
    q.put(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)  # type: ignore[attr-defined]


def test_forked_workers_keep_the_default_sigterm() -> None:
    """Pools stop their workers with SIGTERM: in a child it must still end the process."""
    import multiprocessing as mp

    from colliderfm.runtime import raise_on_sigterm

    before = signal.getsignal(signal.SIGTERM)
    try:
        raise_on_sigterm()
        assert signal.getsignal(signal.SIGTERM) != signal.SIG_DFL  # the parent raises
        ctx = mp.get_context("fork")
        q = ctx.SimpleQueue()
        p = ctx.Process(target=_child_sigterm, args=(q,))
        p.start()
        p.join(30)
        assert q.get() is True
        with ctx.Pool(2) as pool:  # terminate() (SIGTERM) must not hang
            pool.map_async(abs, range(4)).get(30)
            pool.terminate()
    finally:
        signal.signal(signal.SIGTERM, before)
