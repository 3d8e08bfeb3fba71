"""Device placement and precision: ``train.device``, ``train.precision``, ``evaluate --device``.

The CPU tests run everywhere. The ``gpu`` tests need CUDA (the ``gpu`` marker skips them
without it, see ``tests/conftest.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from cli_helpers import run_cli
from synth import synthetic_jets, tiny_finetune_config, write_splits, write_synthetic_shards
from torch import nn

import colliderfm
from colliderfm.config import load_config
from colliderfm.data.schema import Batch
from colliderfm.data.stream import CUDA_PREFETCH, ConstituentStream, training_loader
from colliderfm.errors import ConfigError
from colliderfm.recipes import finetune as ft_recipe
from colliderfm.recipes import pretrain as pt_recipe
from colliderfm.runtime import check_precision, module_device, resolve_device
from colliderfm.train.checkpoint import load_state, load_weights
from colliderfm.train.loop import fit

CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_splits(tmp_path_factory.mktemp("dev"), (300, 100, 100), seed=5, rows_per_shard=150)


def _no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


# ---------------------------------------------------------------- resolution, before any work


def test_auto_is_cuda_when_available_else_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")
    _no_cuda(monkeypatch)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert load_config(None, []).train.device == "auto"


def test_missing_devices_are_one_line_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_cuda(monkeypatch)
    for spec in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match=f"train.device={spec} but .*use train.device=cpu"):
            resolve_device(spec)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ConfigError, match=r"cuda:2 but this machine has 2 CUDA GPU\(s\)"):
        resolve_device("cuda:2")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="train.device=mps but .*no usable Apple GPU"):
        resolve_device("mps")
    with pytest.raises(ConfigError, match="--device = 'tpu' is not one of auto, cpu"):
        resolve_device("tpu", what="--device")
    try:
        resolve_device("cuda:7")
    except ConfigError as exc:
        assert "\n" not in str(exc)


def test_fp16_needs_cuda() -> None:
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device.*use train.precision=bf16 or"):
        check_precision("fp16", torch.device("cpu"))
    check_precision("bf16", torch.device("cpu"))
    check_precision("fp32", torch.device("cpu"))
    check_precision("fp16", torch.device("cuda"))


def test_runs_on_a_missing_device_stop_before_any_work(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_cuda(monkeypatch)
    with pytest.raises(ConfigError, match="train.device=cuda but"):
        ft_recipe.run_finetune(
            tiny_finetune_config(data, "train.device=cuda"), tmp_path / "a", progress=False
        )
    with pytest.raises(ConfigError, match="train.precision=fp16 needs a CUDA device"):
        ft_recipe.run_finetune(
            tiny_finetune_config(data, "train.device=cpu", "train.precision=fp16"),
            tmp_path / "b",
            progress=False,
        )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    args = ["finetune", "--config", "configs/finetune/top_tagging.yaml", "--out"]
    args += [str(tmp_path / "c"), "--set", f"data.train={data / 'train'}"]
    code, out, err = run_cli([*args, "--set", "train.device=cuda"], monkeypatch, capsys)
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and "train.device=cuda but" in lines[0], err
    assert not (tmp_path / "c").exists()


# ---------------------------------------------------------------- batches and loaders


def _full_batch() -> Batch:
    b, p = 3, 5
    return Batch(
        features=torch.randn(b, p, 13),
        mask=torch.ones(b, p, dtype=torch.bool),
        labels=torch.zeros(b, dtype=torch.long),
        weights=torch.ones(b),
        vectors=torch.randn(b, p, 4),
        charge=torch.zeros(b, p),
        type_id=torch.zeros(b, p, dtype=torch.long),
    )


def test_batch_to_moves_every_tensor() -> None:
    batch = _full_batch()
    moved = batch.to("meta")  # a device without storage: shows that every field moves
    for name, v in vars(moved).items():
        assert isinstance(v, torch.Tensor) and v.device.type == "meta", name
    same = batch.to("cpu")
    assert all(getattr(same, k) is v for k, v in vars(batch).items())  # no copy on CPU
    no_vec = Batch(batch.features, batch.mask, batch.labels, batch.weights).to("meta")
    assert no_vec.vectors is None and no_vec.features.device.type == "meta"


def test_training_loader_pins_only_for_cuda(data: Path) -> None:
    cfg = load_config(None, [f"data.train={data / 'train'}", "train.workers=2"])
    cpu, _ = training_loader(data / "train", 300, cfg)
    assert not cpu.pin_memory and cpu.prefetch_factor == 2 and cpu.persistent_workers
    same, _ = training_loader(data / "train", 300, cfg, device=torch.device("cpu"))
    assert not same.pin_memory and same.prefetch_factor == 2
    gpu, _ = training_loader(data / "train", 300, cfg, device=torch.device("cuda", 0))
    assert gpu.pin_memory and gpu.prefetch_factor == CUDA_PREFETCH and gpu.persistent_workers
    cfg0 = load_config(None, [f"data.train={data / 'train'}"])
    gpu0, _ = training_loader(data / "train", 300, cfg0, device=torch.device("cuda", 0))
    assert gpu0.pin_memory and not gpu0.persistent_workers


# ---------------------------------------------------------------- the recipes on a device


def _spy_batches(monkeypatch: pytest.MonkeyPatch) -> list[torch.device]:
    """Record the device of every ``Batch.to`` call."""
    calls: list[torch.device] = []
    original = Batch.to

    def spy(self: Batch, device: Any, non_blocking: bool = True) -> Batch:
        calls.append(torch.device(device))
        return original(self, device, non_blocking)

    monkeypatch.setattr(Batch, "to", spy)
    return calls


def _assert_on(batch: Batch, device: torch.device) -> None:
    for name, v in vars(batch).items():
        if isinstance(v, torch.Tensor):
            assert v.device == device, (name, v.device, device)


def test_finetune_on_cpu_feeds_the_loss_batches_on_the_module_device(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[torch.device, torch.device]] = []
    original = ft_recipe.classification_loss

    def spy_loss(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        dev = module_device(model)
        _assert_on(batch, dev)
        seen.append((dev, batch.features.device))
        return original(model, batch)

    monkeypatch.setattr(ft_recipe, "classification_loss", spy_loss)
    calls = _spy_batches(monkeypatch)
    cfg = tiny_finetune_config(data, "train.device=cpu", "train.max_steps=3", "data.test=null")
    summary = ft_recipe.run_finetune(cfg, tmp_path / "run", progress=False)
    assert summary["steps"] == 3 and len(seen) == 3
    assert all(d == torch.device("cpu") for pair in seen for d in pair)
    # every training batch and every validation batch went through Batch.to(the device)
    assert len(calls) >= 3 and set(calls) == {torch.device("cpu")}
    model = colliderfm.load(str(tmp_path / "run"), device="auto")
    assert module_device(model) == resolve_device("auto")


def test_pretrain_on_cpu_feeds_the_objective_batches_on_the_module_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shards = tmp_path / "shards"
    write_synthetic_shards(shards, n=200, seed=2, rows_per_shard=100)
    devices: list[torch.device] = []

    def spy_loss(module: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        _assert_on(batch, module_device(module))
        devices.append(batch.features.device)
        return module.loss(batch)

    monkeypatch.setattr(pt_recipe, "own_loss", spy_loss)
    calls = _spy_batches(monkeypatch)
    cfg = load_config(
        "configs/pretrain/contrastive.yaml",
        [
            f"data.train={shards}",
            "data.max_particles=30",
            "data.shuffle_buffer=64",
            f"objective.probe_data={shards}",
            "objective.probe_n=40",
            "objective.probe_every=2",
            "model.preset=tiny",
            "model.embed_dim=32",
            "model.depth=1",
            "model.num_heads=4",
            "train.max_steps=3",
            "train.batch_size=32",
            "train.device=cpu",
        ],
    )
    summary = pt_recipe.run_pretrain(cfg, tmp_path / "run", progress=False)
    assert summary["steps"] == 3 and devices == [torch.device("cpu")] * 3
    assert 0.0 <= summary["probe_auc"] <= 1.0
    assert len(calls) > 3 and set(calls) == {torch.device("cpu")}  # training + probe batches


def test_evaluate_device_option(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny_finetune_config(data, "train.max_steps=2", "data.test=null")
    ft_recipe.run_finetune(cfg, tmp_path / "run", progress=False)
    base = ["evaluate", "--checkpoint", str(tmp_path / "run"), "--data", str(data / "test")]
    code, out, err = run_cli([*base, "--device", "cpu"], monkeypatch, capsys)
    assert code == 0 and '"auc"' in out, err
    _no_cuda(monkeypatch)
    code, out, err = run_cli([*base, "--device", "cuda"], monkeypatch, capsys)
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and "--device=cuda but" in lines[0], err


# ---------------------------------------------------------------- CUDA (skipped without it)


class _DeepSet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(13, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, vectors: Any = None) -> torch.Tensor:
        h = self.backbone(x) * mask.unsqueeze(-1)  # [B, P, D]
        return self.head(h.sum(1) / mask.sum(1, keepdim=True).clamp_min(1))  # [B, 2]


def _fit(out: Path, steps: int, *extra: str, resume: bool = False) -> tuple[nn.Module, list[float]]:
    losses: list[float] = []

    def loss_fn(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        loss = F.cross_entropy(model(batch.features, batch.mask).float(), batch.labels)
        losses.append(float(loss))
        return loss, {}

    cfg = load_config(
        None, [f"train.max_steps={steps}", "train.batch_size=64", "train.seed=3", *extra]
    )
    torch.manual_seed(0)
    model = _DeepSet()
    stream = ConstituentStream(
        synthetic_jets(600, seed=1), batch_size=64, seed=3, infinite=True, buffer_size=128
    )
    meta = {"model": {"task": "test"}}
    fit(model, loss_fn, stream, cfg, out, 10, meta, resume=resume, progress=False)
    return model, losses


@pytest.mark.gpu
def test_finetune_on_cuda_and_load_on_cpu(data: Path, tmp_path: Path) -> None:
    cfg = tiny_finetune_config(data, "train.device=cuda", "train.max_steps=6")
    summary = ft_recipe.run_finetune(cfg, tmp_path / "run", progress=False)
    assert summary["steps"] == 6 and 0.0 <= summary["test"]["auc"] <= 1.0
    cpu = colliderfm.load(str(tmp_path / "run"), device="cpu")
    gpu = colliderfm.load(str(tmp_path / "run"), device="cuda")
    assert module_device(cpu).type == "cpu" and module_device(gpu).type == "cuda"
    for (k, a), b in zip(cpu.state_dict().items(), gpu.state_dict().values(), strict=True):
        assert torch.equal(a, b.cpu()), k


@pytest.mark.gpu
def test_cuda_checkpoint_loads_on_cpu_with_identical_weights(tmp_path: Path) -> None:
    model, _ = _fit(tmp_path / "run", 5, "train.device=cuda")
    assert module_device(model).type == "cuda"
    fresh = _DeepSet()
    load_weights(fresh, tmp_path / "run" / "last")
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert b.device.type == "cpu" and torch.equal(a.cpu(), b), k
    state = load_state(tmp_path / "run" / "last")  # map_location="cpu"
    exp_avg = next(iter(state["optimizer"]["state"].values()))["exp_avg"]
    assert exp_avg.device.type == "cpu" and "cuda" in state["rng"]


@pytest.mark.gpu
def test_fp16_and_bf16_losses_track_fp32(tmp_path: Path) -> None:
    _, fp32 = _fit(tmp_path / "fp32", 30, "train.device=cuda")
    _, fp16 = _fit(tmp_path / "fp16", 30, "train.device=cuda", "train.precision=fp16")
    _, bf16 = _fit(tmp_path / "bf16", 30, "train.device=cuda", "train.precision=bf16")
    # stated tolerance: the mean loss of the last 5 steps within 5% (fp16) / 10% (bf16) of fp32
    ref = sum(fp32[-5:]) / 5
    assert abs(sum(fp16[-5:]) / 5 - ref) <= 0.05 * ref, (fp16[-5:], fp32[-5:])
    assert abs(sum(bf16[-5:]) / 5 - ref) <= 0.10 * ref, (bf16[-5:], fp32[-5:])
    state = load_state(tmp_path / "fp16" / "last")
    assert state["scaler"]["scale"] > 0 and "scaler" not in load_state(tmp_path / "fp32" / "last")


@pytest.mark.gpu
def test_resume_restores_the_grad_scaler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    _fit(out, 4, "train.device=cuda", "train.precision=fp16")
    saved = load_state(out / "last")["scaler"]
    loaded: list[dict[str, Any]] = []
    original = torch.amp.GradScaler.load_state_dict

    def spy(self: torch.amp.GradScaler, state: dict[str, Any]) -> None:
        loaded.append(dict(state))
        original(self, state)

    monkeypatch.setattr(torch.amp.GradScaler, "load_state_dict", spy)
    state = load_state(out / "last")
    state["finished"] = False
    torch.save(state, out / "last" / "state.pt")
    _fit(out, 8, "train.device=cuda", "train.precision=fp16", resume=True)
    assert loaded and loaded[0]["scale"] == saved["scale"]
    assert loaded[0]["_growth_tracker"] == saved["_growth_tracker"]


@pytest.mark.gpu
def test_pinned_loader_feeds_cuda(data: Path) -> None:
    assert _full_batch().pin_memory().features.is_pinned()
    cfg = load_config(None, [f"data.train={data / 'train'}", "train.batch_size=32"])
    loader, _ = training_loader(data / "train", 300, cfg, device=torch.device("cuda", 0))
    batch = next(iter(loader))
    assert batch.features.is_pinned() and batch.mask.is_pinned()
    _assert_on(batch.to("cuda:0"), torch.device("cuda", 0))
