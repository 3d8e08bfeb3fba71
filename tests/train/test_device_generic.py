"""Device-generic tests: models, every pretraining objective, and a fine-tune with resume, run on
every available device. The CPU always runs; the CUDA cases are marked ``gpu`` (skipped without
CUDA), so a GPU machine runs the same checks with ``pytest -m gpu``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from synth import synthetic_jets, tiny_finetune_config, write_splits
from synth_events import synthetic_events

from colliderfm.checkpoints import load_model
from colliderfm.data.stream import ConstituentStream
from colliderfm.models.registry import create_model, registered
from colliderfm.pretrain.base import PretrainModel, create_objective
from colliderfm.recipes.finetune import run_finetune

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
#: float32 agreement between devices (kernels and summation orders differ; TF32 is off here)
ATOL = 1e-4


def _jets(n: int = 32, seed: int = 1):  # noqa: ANN202
    stream = ConstituentStream(synthetic_jets(n, seed=seed), batch_size=n, shuffle=False)
    return next(iter(stream))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_splits(tmp_path_factory.mktemp("generic"), (256, 128, 128), seed=5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(registered()))
def test_every_model_runs_and_trains_on(device: str, name: str) -> None:
    torch.manual_seed(0)
    batch = synthetic_events(16, seed=3) if name == "objt" else _jets(16)
    model = create_model(name, "tiny", in_dim=batch.features.shape[-1])
    with torch.no_grad():
        ref_tokens, ref_pooled = model.eval().forward_both(
            batch.features, batch.mask, batch.vectors
        )
    model.to(device).train()
    on = batch.to(device)
    tokens, pooled = model.forward_both(on.features, on.mask, on.vectors)  # [B, P, D], [B, D]
    assert tokens.device.type == device and pooled.device.type == device
    (pooled.square().mean() + tokens[on.mask].square().mean()).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.device.type == device, pname
        assert torch.isfinite(p.grad).all(), pname
    model.eval()
    with torch.no_grad():
        tokens, pooled = model.forward_both(on.features, on.mask, on.vectors)
    mask = batch.mask
    torch.testing.assert_close(tokens.cpu()[mask], ref_tokens[mask], atol=ATOL, rtol=ATOL)
    torch.testing.assert_close(pooled.cpu(), ref_pooled, atol=ATOL, rtol=ATOL)


def _objective(kind: str) -> tuple[PretrainModel, object]:
    torch.manual_seed(0)
    if kind == "masked_id":
        backbone = create_model("objt", "tiny")
        return PretrainModel(backbone, create_objective(kind, {}, backbone.dim, 11)), (
            synthetic_events(32, seed=4, labelled=False)
        )
    backbone = create_model("part", "tiny", in_dim=13)
    params: dict = {"proj_dim": 16, "proj_hidden": 32}
    if kind == "mpm":
        params = {"codebook_size": 16, "code_dim": 4, "tokenizer_hidden": 16, "tokenizer_layers": 0}
    return PretrainModel(backbone, create_objective(kind, params, backbone.dim, 13)), _jets(32)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["contrastive", "mpm", "masked_id"])
def test_every_pretraining_objective_steps_on(device: str, kind: str) -> None:
    """Augmentations, the projector / decoder / tokenizer / heads and the loss all on the device."""
    model, batch = _objective(kind)
    model.to(device).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    on = batch.to(device)  # type: ignore[attr-defined]
    for _ in range(2):
        loss, logs = model.loss(on)
        assert loss.device.type == device and torch.isfinite(loss)
        assert all(isinstance(v, float) for v in logs.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    params = [p for p in model.parameters() if p.requires_grad]
    assert all(p.device.type == device and torch.isfinite(p).all() for p in params)


@pytest.mark.parametrize("device", DEVICES)
def test_finetune_pauses_and_resumes_on(device: str, data: Path, tmp_path: Path) -> None:
    """A fine-tune on the device, paused at step 3 and resumed to 6, ends where the straight
    run does (bit-identical on CPU; within float tolerance on CUDA)."""
    sets = [f"train.device={device}", "train.max_steps=6", "train.early_stopping=null"]
    straight = run_finetune(tiny_finetune_config(data, *sets), tmp_path / "a", progress=False)
    cfg = tiny_finetune_config(data, *sets, "train.stop_at_step=3")
    paused = run_finetune(cfg, tmp_path / "b", progress=False)
    assert paused.get("paused") and paused["steps"] == 3
    done = run_finetune(
        tiny_finetune_config(data, *sets), tmp_path / "b", resume=True, progress=False
    )
    assert straight["steps"] == done["steps"] == 6
    a = load_model(tmp_path / "a" / "last").state_dict()
    b = load_model(tmp_path / "b" / "last").state_dict()
    for k in a:
        if device == "cpu":
            assert torch.equal(a[k], b[k]), k
        else:
            torch.testing.assert_close(a[k], b[k], atol=ATOL, rtol=ATOL)
