"""Two-process (gloo, CPU) training equals one process on the same global batches.

Each rank gets its half of every global batch, so after N steps the averaged gradients (and hence
the parameters) must match a single process trained on the whole batches. Also checked: only rank
0 validates and writes (logs, checkpoints), and the process-group helper is a no-op without
torchrun.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from synth import synthetic_jets

from colliderfm.config import load_config
from colliderfm.data.schema import Batch
from colliderfm.data.stream import ConstituentStream
from colliderfm.train.distributed import distributed, init_distributed, launched_by_torchrun

STEPS, PER_RANK, WORLD = 4, 6, 2
TIMEOUT_S = 120


def _global_batches() -> list[Batch]:
    jets = synthetic_jets(STEPS * PER_RANK * WORLD, seed=7, max_particles=30)
    stream = ConstituentStream(
        jets, batch_size=PER_RANK * WORLD, max_particles=30, shuffle=False, rank=0, world_size=1
    )
    # float64 (see _model): rounding, not the loop, would otherwise set the tolerance
    return [
        dataclasses.replace(b, features=b.features.double(), vectors=b.vectors.double())
        for b in list(stream)[:STEPS]
    ]  # [B = 2b, P, ...] each


def _half(batch: Batch, rank: int, world: int) -> Batch:
    """This rank's share of a global batch (same padding length P)."""
    n = len(batch) // world
    kw = {
        f.name: getattr(batch, f.name)[rank * n : (rank + 1) * n]
        for f in dataclasses.fields(batch)
        if getattr(batch, f.name) is not None
    }
    return dataclasses.replace(batch, **kw)


def _model() -> torch.nn.Module:
    """Tiny ParT classifier in float64 without dropout.

    Pair features are off: they are computed in float32 inside the model, and Adam turns the
    rounding noise of near-zero gradients into lr-sized steps, which would hide the comparison.
    """
    from colliderfm.finetune.classifier import build_classifier

    torch.manual_seed(0)
    kwargs = {"dropout": 0.0, "pair_features": False}
    return build_classifier(
        {
            "name": "part",
            "preset": "tiny",
            "in_dim": 13,
            "n_classes": 2,
            "kwargs": kwargs,
            "head_hidden": 16,
        }
    ).double()


def _train(batches: list[Batch], out: Path, marks: Path, batch_size: int) -> torch.nn.Module:
    from colliderfm.recipes.finetune import classification_loss
    from colliderfm.runtime import rank_world as dist_info
    from colliderfm.train.loop import fit

    cfg = load_config(
        None,
        [
            f"train.max_steps={STEPS}",
            f"train.batch_size={batch_size}",
            "train.lr=1e-3",
            "train.warmup=0",
            "train.log_every=1",
            "train.early_stopping=val_loss",
            "train.patience=5",
            "train.seed=0",
        ],
    )
    calls = iter(range(100))

    def validate(module: torch.nn.Module) -> dict[str, float]:
        rank = dist_info()[0]
        (marks / f"validate-rank{rank}").write_text("called")
        return {"val_loss": float(10 - next(calls))}  # improves every epoch

    model = _model()
    fit(
        model,
        classification_loss,
        iter(batches),
        cfg,
        out,
        steps_per_epoch=2,
        meta={"model": {"task": "test"}},
        validate=validate,
        progress=False,
    )
    return model


def _grads(model: torch.nn.Module, batch: Batch, world: int) -> dict[str, torch.Tensor]:
    """Gradients of the loss on ``batch``, averaged over ranks the way the loop does it (DDP)."""
    from colliderfm.recipes.finetune import classification_loss
    from colliderfm.train.loop import LossModule

    model.zero_grad()
    if world > 1:
        # the backbone's final norm gets no gradient through the classifier: the loop finds that
        ddp = torch.nn.parallel.DistributedDataParallel(
            LossModule(model, classification_loss), find_unused_parameters=True
        )
        ddp(batch)[0].backward()
    else:
        classification_loss(model, batch)[0].backward()
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def _worker(rank: int, world: int, port: int, tmp: str, batches: list[Batch]) -> None:
    _env(rank, world, port)
    with distributed(backend="gloo") as (r, w):
        assert (r, w) == (rank, world)
        local = [_half(b, rank, world) for b in batches]
        model = _train(local, Path(tmp) / f"out-rank{rank}", Path(tmp), PER_RANK)
        torch.save(model.state_dict(), Path(tmp) / f"params-rank{rank}.pt")
        torch.save(_grads(model, local[0], world), Path(tmp) / f"grads-rank{rank}.pt")
    assert not torch.distributed.is_initialized()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(tmp: Path, batches: list[Batch]) -> None:
    _spawn_fn(_worker, (WORLD, _free_port(), str(tmp), batches))


def _spawn_fn(fn: Any, args: tuple[Any, ...]) -> None:
    """Run ``fn(rank, *args)`` on WORLD spawned processes; fail after TIMEOUT_S."""
    ctx = mp.start_processes(fn, args=args, nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not ctx.join(timeout=1.0):
            if time.monotonic() > deadline:
                pytest.fail(f"two-process run did not finish in {TIMEOUT_S} s (deadlock?)")
    finally:
        for p in ctx.processes:  # only the processes started here
            if p.is_alive():
                p.kill()


def _env(rank: int, world: int, port: int) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)


def _train_mode(batches: list[Batch], out: Path, batch_size: int, mode: str) -> torch.nn.Module:
    """Fine-tune in ``mode`` (``frozen``, ``linear`` or ``lp-ft`` = linear, then full)."""
    from colliderfm.finetune.classifier import build_classifier
    from colliderfm.finetune.modes import apply_mode
    from colliderfm.recipes.finetune import classification_loss
    from colliderfm.train.loop import fit

    cfg = load_config(
        None,
        [
            f"train.max_steps={STEPS}",
            f"train.batch_size={batch_size}",
            "train.lr=1e-3",
            "train.warmup=0",
            "train.seed=0",
        ],
    )
    torch.manual_seed(0)
    spec = {
        "name": "part",
        "preset": "tiny",
        "in_dim": 13,
        "n_classes": 2,
        "kwargs": {"dropout": 0.0, "pair_features": False},
        "head_hidden": 16 if mode == "frozen" else None,
    }
    model = build_classifier(spec).double()
    phases = ["linear", "full"] if mode == "lp-ft" else [mode]
    for i, phase in enumerate(phases):
        mults = apply_mode(model, phase, cfg.finetune)
        fit(
            model,
            classification_loss,
            iter(batches),
            cfg,
            out / f"phase{i}",
            steps_per_epoch=STEPS,
            meta={"model": {"task": "test"}},
            lr_mults=mults,
            progress=False,
        )
    return model


MODES = ("frozen", "linear", "lp-ft")


def _modes_worker(rank: int, world: int, port: int, tmp: str, batches: list[Batch]) -> None:
    _env(rank, world, port)
    with distributed(backend="gloo"):
        local = [_half(b, rank, world) for b in batches]
        for mode in MODES:
            model = _train_mode(local, Path(tmp) / f"{mode}-rank{rank}", PER_RANK, mode)
            torch.save(model.state_dict(), Path(tmp) / f"{mode}-params-rank{rank}.pt")


def _ntxent_worker(rank: int, world: int, port: int, tmp: str, sizes: list[int]) -> None:
    from colliderfm.pretrain.contrastive import nt_xent

    _env(rank, world, port)
    z1, z2 = _projections(sum(sizes))
    start = sum(sizes[:rank])
    a = z1[start : start + sizes[rank]].clone().requires_grad_()
    b = z2[start : start + sizes[rank]].clone().requires_grad_()
    with distributed(backend="gloo"):
        loss, acc = nt_xent(a, b, 0.1, gather=True)
        loss.backward()
        mean = loss.detach().clone()
        torch.distributed.all_reduce(mean)
        mean /= world  # what DDP's gradient averaging optimises
        # d(mean)/dz: the backward already summed every rank's loss, DDP divides by world
        torch.save(
            {"loss": mean, "g1": a.grad / world, "g2": b.grad / world, "acc": acc},
            Path(tmp) / f"ntxent-rank{rank}.pt",
        )


def _projections(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    z1 = torch.randn(n, 8, generator=g, dtype=torch.float64)  # [N, K]
    return z1, z1 + 0.5 * torch.randn(n, 8, generator=g, dtype=torch.float64)


def test_two_ranks_match_one_process_with_double_batch(tmp_path: Path) -> None:
    batches = _global_batches()
    assert len(batches) == STEPS and all(len(b) == PER_RANK * WORLD for b in batches)
    _spawn(tmp_path, batches)
    single = _train(batches, tmp_path / "single", tmp_path / "single", PER_RANK * WORLD)
    want = single.state_dict()
    ranks = [torch.load(tmp_path / f"params-rank{r}.pt") for r in range(WORLD)]
    init = _model().state_dict()
    moved = max((want[k] - init[k]).abs().max().item() for k in want)
    assert moved > 1e-3  # the runs really trained
    for got in ranks:
        diff = max((got[k] - want[k]).abs().max().item() for k in want)
        assert diff < 1e-9, diff  # measured ~2e-15
    # the all-reduced gradient is the mean over the global batch (not the sum)
    full = _grads(single, batches[0], 1)
    for r in range(WORLD):
        avg = torch.load(tmp_path / f"grads-rank{r}.pt")
        assert avg.keys() == full.keys()
        for k in full:
            torch.testing.assert_close(avg[k], full[k], rtol=1e-9, atol=1e-15)
    # rank 0 wrote the checkpoints and logs; rank 1 wrote nothing and never validated
    out0 = tmp_path / "out-rank0"
    assert (out0 / "model.safetensors").is_file() and (out0 / "last" / "state.pt").is_file()
    assert (out0 / "metrics.csv").is_file()
    assert not (tmp_path / "out-rank1").exists()
    assert (tmp_path / "validate-rank0").exists() and not (tmp_path / "validate-rank1").exists()


def test_single_process_without_torchrun_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    assert not launched_by_torchrun()
    assert init_distributed() == (0, 1)
    with distributed() as (rank, world):
        assert (rank, world) == (0, 1) and not torch.distributed.is_initialized()


def test_failing_rank_does_not_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """An error inside ``distributed()`` tears down without the final barrier."""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    calls: list[Any] = []
    monkeypatch.setattr(torch.distributed, "barrier", lambda *a, **k: calls.append(a))
    with pytest.raises(RuntimeError, match="boom"), distributed(backend="gloo"):
        assert torch.distributed.is_initialized()
        raise RuntimeError("boom")
    assert not torch.distributed.is_initialized() and calls == []


def _torchrun_finetune(tmp_path: Path, out: Path) -> list[str]:
    """Synthetic train/val/test shards under ``tmp_path`` and the command line of a 2-rank
    ``torchrun -m colliderfm finetune`` into ``out`` (8 steps: 2 epochs of 4)."""
    import sys

    from synth import write_synthetic_shards

    for name, n, seed in (("train", 256, 0), ("val", 64, 1), ("test", 64, 2)):
        if not (tmp_path / name).exists():
            write_synthetic_shards(tmp_path / name, n=n, seed=seed, rows_per_shard=64)
    sets = [
        f"data.train={tmp_path / 'train'}",
        f"data.val={tmp_path / 'val'}",
        f"data.test={tmp_path / 'test'}",
        "model.preset=tiny",
        "train.batch_size=32",
        "train.epochs=2",
        "data.max_particles=32",
    ]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        str(_free_port()),
        "-m",
        "colliderfm",
        "finetune",
        "--config",
        str(Path(__file__).parents[2] / "configs" / "finetune" / "top_tagging.yaml"),
        "--init",
        "none",
        "--out",
        str(out),
    ]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def _run(cmd: list[str]) -> dict[str, Any]:
    """Run a torchrun command; its rank-0 summary."""
    import json
    import subprocess

    res = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout[res.stdout.index("{") :])  # one summary: rank 0 only
    summary["_stderr"] = res.stderr
    return summary


def test_torchrun_finetune_cli(tmp_path: Path) -> None:
    """``torchrun --nproc-per-node 2 -m colliderfm finetune`` with validation and a test set."""
    out = tmp_path / "run"
    summary = _run(_torchrun_finetune(tmp_path, out))
    assert summary["steps"] == 2 * 4 and "auc" in summary["test"]  # 256 jets / (32 * 2 ranks)
    assert summary["_stderr"].count("training jets") == 1  # rank 1 logs warnings only
    for name in ("model.safetensors", "config.yaml", "metrics.csv", "test_metrics.json"):
        assert (out / name).is_file()


@pytest.mark.slow
def test_torchrun_pause_and_resume_match_a_straight_run(tmp_path: Path) -> None:
    """Paused at step 4 and resumed, both under torchrun: the straight run's weights exactly
    (rank 0 saves the state, every rank resumes from it)."""
    from colliderfm.checkpoints import load_model

    straight = _run(_torchrun_finetune(tmp_path, tmp_path / "a"))
    paused = _run([*_torchrun_finetune(tmp_path, tmp_path / "b"), "--set", "train.stop_at_step=4"])
    assert paused["paused"] is True and paused["steps"] == 4
    done = _run([*_torchrun_finetune(tmp_path, tmp_path / "b"), "--resume"])
    assert straight["steps"] == done["steps"] == 8
    a = load_model(tmp_path / "a" / "last").state_dict()
    b = load_model(tmp_path / "b" / "last").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_frozen_linear_and_lp_ft_under_two_ranks(tmp_path: Path) -> None:
    """Frozen backbones (no gradients) and linear heads train under DDP like one process."""
    batches = _global_batches()
    _spawn_fn(_modes_worker, (WORLD, _free_port(), str(tmp_path), batches))
    for mode in MODES:
        single = _train_mode(batches, tmp_path / f"{mode}-single", PER_RANK * WORLD, mode)
        want = single.state_dict()
        for r in range(WORLD):
            got = torch.load(tmp_path / f"{mode}-params-rank{r}.pt")
            assert got.keys() == want.keys()  # no "module." prefix anywhere
            diff = max((got[k] - want[k]).abs().max().item() for k in want)
            assert diff < 1e-9, (mode, diff)
        init = _model().state_dict()
        frozen = [k for k in want if k.startswith("backbone.")]
        if mode != "lp-ft":  # the backbone never moved
            assert all(torch.equal(want[k], init[k]) for k in frozen)
        saved = tmp_path / f"{mode}-rank0" / "phase0" / "model.safetensors"
        assert saved.is_file() and not (tmp_path / f"{mode}-rank1").exists()


@pytest.mark.parametrize("sizes", [[6, 6], [5, 3]])
def test_contrastive_negatives_gathered_across_ranks(tmp_path: Path, sizes: list[int]) -> None:
    """NT-Xent under 2 ranks equals one process on the concatenated batch: loss and gradients."""
    from colliderfm.pretrain.contrastive import nt_xent

    _spawn_fn(_ntxent_worker, (WORLD, _free_port(), str(tmp_path), sizes))
    z1, z2 = _projections(sum(sizes))
    z1.requires_grad_()
    z2.requires_grad_()
    loss, _ = nt_xent(z1, z2, 0.1, gather=True)  # one process: gather is a no-op
    loss.backward()
    start = 0
    for r, n in enumerate(sizes):
        got = torch.load(tmp_path / f"ntxent-rank{r}.pt")
        torch.testing.assert_close(got["loss"], loss.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got["g1"], z1.grad[start : start + n], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(got["g2"], z2.grad[start : start + n], rtol=1e-10, atol=1e-12)
        start += n
    # without gathering, each rank's loss would see only its own negatives: a different number
    local, _ = nt_xent(z1[: sizes[0]].detach(), z2[: sizes[0]].detach(), 0.1)
    assert abs(local.item() - loss.item()) > 1e-3
