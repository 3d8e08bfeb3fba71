"""Helpers for tests that drive the ``colliderfm`` command line (in-process or as a process)."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from colliderfm.cli import main

#: particle slots of the tiny test models
MAX_PARTICLES = 16
#: the repository root (scripts/ lives there)
REPO_ROOT = Path(__file__).resolve().parents[1]


def load_script(filename: str, module: str) -> ModuleType:
    """Import ``scripts/FILENAME`` as the module ``MODULE`` (once; kept in ``sys.modules``).

    The scripts folder goes on ``sys.path`` so a script can import its sibling scripts, and the
    module is registered before it runs, as its dataclasses need.

    Args:
        filename: the script's file name (``zoo_pretrain.py``).
        module: the name to import it under.

    Returns:
        The module.
    """
    if module not in sys.modules:
        scripts = str(REPO_ROOT / "scripts")
        if scripts not in sys.path:
            sys.path.insert(0, scripts)
        spec = importlib.util.spec_from_file_location(module, REPO_ROOT / "scripts" / filename)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[module] = mod
        spec.loader.exec_module(mod)
    return sys.modules[module]


def run_cli(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """Run ``colliderfm ARGS`` in-process through the console entry point.

    Args:
        args: command-line arguments after ``colliderfm``.
        monkeypatch: pytest fixture (sets ``sys.argv``).
        capsys: pytest fixture (captures the output).

    Returns:
        (exit code, stdout, stderr).
    """
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["colliderfm", *args])
    # main() logs to the stderr of the moment; start from no handler so that is capsys's
    monkeypatch.setattr(logging.getLogger("colliderfm"), "handlers", [])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def run_subprocess(
    args: list[str], cwd: Path, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run the real ``python -m colliderfm ARGS`` with one torch thread.

    Args:
        args: command-line arguments after ``colliderfm``.
        cwd: working directory.
        timeout: seconds.

    Returns:
        The finished process (text output captured).
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "colliderfm", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


def assert_one_error_line(code: int, err: str, *needles: str) -> str:
    """Exit 2, a single ``colliderfm: error:`` line containing every needle, no traceback.

    Args:
        code: exit code.
        err: captured stderr.
        needles: case-insensitive substrings the error line must contain.

    Returns:
        The error line.
    """
    assert code == 2, err
    assert "Traceback" not in err, err
    errors = [ln for ln in err.splitlines() if ln.startswith("colliderfm: error:")]
    assert len(errors) == 1, err
    line = errors[0]
    for n in needles:
        assert n.lower() in line.lower(), (n, line)
    return line


def assert_no_output(out: Path) -> None:
    """Nothing at ``out`` and no hidden temporary sibling left behind.

    Args:
        out: the output path a failed command must not have created.
    """
    assert not out.exists(), sorted(p.name for p in out.iterdir()) if out.is_dir() else out
    debris = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.tmp")]
    assert not debris, debris


def assert_no_checkpoint(run: Path) -> None:
    """A failed training run leaves no weights that look like a result, and no temp dirs.

    Args:
        run: the run directory.
    """
    if run.exists():
        assert not (run / "model.safetensors").exists()
        assert not (run / "last").exists()
        assert not [p.name for p in run.iterdir() if ".tmp-" in p.name]


def tiny_config(path: Path, train: Path | str, extra: str = "", steps: int = 4) -> Path:
    """Write a YAML recipe for a tiny, fast run on ``train``.

    Args:
        path: YAML file to write.
        train: ``data.train``.
        extra: more YAML appended (whole sections, e.g. ``objective:``).
        steps: ``train.max_steps``.

    Returns:
        ``path``.
    """
    path.write_text(
        f"data:\n  train: {train}\n  max_particles: {MAX_PARTICLES}\n  shuffle_buffer: 64\n"
        "model:\n  name: part\n  preset: tiny\n  pair_features: false\n"
        f"train:\n  max_steps: {steps}\n  batch_size: 16\n  seed: 5\n  threads: 1\n"
        "  log_every: 1\n" + extra
    )
    return path


def make_classifier_ckpt(path: Path, classes: tuple[str, ...] = ("QCD", "Tbqq")) -> Path:
    """Save a tiny classifier checkpoint (random weights) the way ``finetune`` writes one.

    Args:
        path: checkpoint directory to create.
        classes: class names.

    Returns:
        ``path``.
    """
    import torch

    from colliderfm.config import load_config
    from colliderfm.finetune.classifier import build_classifier
    from colliderfm.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    m = {
        "name": "part",
        "preset": "tiny",
        "in_dim": 13,
        "kwargs": {"pair_features": False},
        "task": "classifier",
        "n_classes": len(classes),
        "classes": list(classes),
        "head_hidden": 8,
        "feature_set": "part",
    }
    cfg = load_config(None, [f"data.max_particles={MAX_PARTICLES}"])
    return save_checkpoint(path, build_classifier(m), {"model": m, "config": cfg.to_dict()})


def make_pretrain_ckpt(
    path: Path,
    objective: str = "contrastive",
    *,
    seed: int = 1,
    max_particles: int = 16,
    kwargs: dict | None = None,
) -> Path:
    """Save a tiny pretraining checkpoint (random weights) the way ``pretrain`` writes one.

    Args:
        path: checkpoint directory to create.
        objective: the recipe (its default settings).
        seed: torch seed of the weights.
        max_particles: ``data.max_particles`` recorded in its config.
        kwargs: backbone keyword arguments (default: no pair features).

    Returns:
        ``path``.
    """
    import torch

    from colliderfm.pretrain.base import build_pretrain_model, make_params, params_dict
    from colliderfm.train.checkpoint import save_checkpoint
    from colliderfm.train.meta import ModelSpec

    torch.manual_seed(seed)
    m = {
        "name": "part",
        "preset": "tiny",
        "in_dim": 13,
        "kwargs": {"pair_features": False} if kwargs is None else dict(kwargs),
        "task": "pretrain",
        "objective": objective,
        "params": params_dict(make_params(objective, {})),
        "feature_set": "part",
    }
    model = build_pretrain_model(ModelSpec.from_dict(m))
    cfg = {"data": {"max_particles": max_particles, "features": "part"}}
    return save_checkpoint(path, model, {"model": m, "config": cfg})
