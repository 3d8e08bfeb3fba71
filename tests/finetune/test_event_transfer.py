"""Masked object-id pretraining -> fine-tuning on events, end to end, in process.

The event loaders are stood in for by synthetic event batches: ``examples_per_pass``,
``data_classes`` and ``training_loader`` of the runners are replaced by in-memory versions,
everything else (objective, training loop, checkpoints, backbone transfer, modes) is the real
code path. The linear mode has no training loader (its probe embeds the examples once): it
reads the same synthetic events written as shards.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import torch
from synth_events import event_batches, synthetic_events, write_event_shards

from colliderfm.checkpoints import load_model
from colliderfm.config import load_config
from colliderfm.evaluate.metrics import auc
from colliderfm.pretrain.base import PretrainModel
from colliderfm.pretrain.masked_id import MaskedObjectId
from colliderfm.recipes import finetune as ft_run
from colliderfm.recipes import pretrain as pt_run
from colliderfm.recipes import runner
from colliderfm.train.checkpoint import load_state, read_meta

BATCH = 64


def _loader(labelled: bool, seed: int) -> tuple[Any, int]:
    batches = event_batches(512, BATCH, seed=seed, labelled=labelled)
    return itertools.cycle(batches), len(batches)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mid") / "run"
    mp = pytest.MonkeyPatch()
    mp.setattr(runner, "examples_per_pass", lambda path: 512)
    mp.setattr(runner, "training_loader", lambda src, n, cfg: _loader(False, 0))
    cfg = load_config(
        Path(__file__).resolve().parents[2] / "configs" / "pretrain" / "masked_id.yaml",
        [
            "data.train=synthetic",
            "objective.probe_data=null",
            "model.preset=tiny",
            "train.max_steps=30",
            "train.lr=3e-3",
            "train.log_every=5",
        ],
    )
    try:
        summary = pt_run.run_pretrain(cfg, out, progress=False)
    finally:
        mp.undo()
    assert summary["steps"] == 30
    return out


def _finetune(init: Path | str, out: Path, mode: str, *extra: str) -> ft_run.FitResult:
    mp = pytest.MonkeyPatch()
    mp.setattr(ft_run, "data_classes", lambda path: ["ttbar", "h2hdm"])
    source: str | Path = "synthetic"
    if mode == "linear":  # no training loader: the probe embeds the events (same ones) once
        source = out.parent / f"{out.name}-events"
        write_event_shards(source, n=512, seed=1)
    mp.setattr(ft_run, "_train_source", lambda cfg: (source, 512))
    mp.setattr(runner, "training_loader", lambda src, n, cfg: _loader(True, 1))
    cfg = load_config(
        Path(__file__).resolve().parents[2] / "configs" / "finetune" / "events.yaml",
        [
            "data.train=synthetic",
            "data.val=null",
            "data.test=null",
            "model.preset=tiny",
            f"finetune.init={init}",
            f"finetune.mode={mode}",
            "train.max_steps=40",
            "train.lr=3e-3",
            "train.early_stopping=null",
            *extra,
        ],
    )
    try:
        return ft_run.run_finetune(cfg, out, progress=False)
    finally:
        mp.undo()


def _test_auc(model: torch.nn.Module) -> float:
    b = synthetic_events(1000, seed=9)
    model.eval()
    with torch.no_grad():
        p = model(b.features, b.mask, b.vectors).softmax(-1)[:, 1]
    return auc(b.labels.numpy(), p.numpy())


def test_pretrain_checkpoint_rebuilds(pretrained: Path) -> None:
    model = load_model(pretrained)
    assert isinstance(model, PretrainModel) and isinstance(model.objective, MaskedObjectId)
    meta = read_meta(pretrained)["model"]
    assert (meta["name"], meta["in_dim"], meta["objective"]) == ("objt", 11, "masked_id")


@pytest.mark.parametrize("mode", ["frozen", "linear"])
def test_frozen_and_linear_keep_the_pretrained_backbone(
    pretrained: Path, tmp_path: Path, mode: str
) -> None:
    _finetune(pretrained, tmp_path / mode, mode)
    before = load_model(pretrained).backbone.state_dict()
    clf = load_model(tmp_path / mode)
    after = clf.backbone.state_dict()
    # masked object-id never trains the class-attention pooling: the frozen backbone pools its
    # tokens by their mean instead (finetune.frozen_pooling=auto), everything else is kept
    pooling = {k for k in before if k.startswith(("cls_token", "cls_blocks."))}
    assert pooling and after.keys() == before.keys() - pooling
    assert clf.backbone.pooling == "mean"
    assert all(torch.equal(before[k], after[k]) for k in after)
    assert clf.n_classes == 2
    assert (clf.head_hidden is None) == (mode == "linear")


def test_full_mode_transfers_embedding_and_blocks_and_learns(
    pretrained: Path, tmp_path: Path
) -> None:
    # with the backbone's lr at zero the backbone must stay exactly the pretrained one
    _finetune(pretrained, tmp_path / "still", "full", "finetune.backbone_lr_mult=0.0")
    before = load_model(pretrained).backbone.state_dict()
    still = load_model(tmp_path / "still").backbone.state_dict()
    for prefix in ("embedding.", "blocks.", "pair_embed.", "cls_blocks."):
        keys = [k for k in before if k.startswith(prefix)]
        assert keys and all(torch.equal(before[k], still[k]) for k in keys), prefix
    _finetune(pretrained, tmp_path / "full", "full", "train.optimizer=sgd", "train.lr=5e-2")
    model = load_model(tmp_path / "full")
    after = model.backbone.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the backbone trained
    assert _test_auc(model) > 0.8  # ~0.94 on this seed


def test_through_event_shards_with_probe_validation_and_test(tmp_path: Path) -> None:
    """The real data path: event shards -> pretrain (with probe) -> fine-tune -> evaluate."""
    from synth_events import write_event_shards

    for name, n, seed, labelled in (
        ("pretrain", 512, 0, False),
        ("train", 512, 1, True),
        ("val", 200, 2, True),
        ("test", 200, 3, True),
    ):
        write_event_shards(tmp_path / name, n, seed=seed, labelled=labelled)
    root = Path(__file__).resolve().parents[2] / "configs"
    cfg = load_config(
        root / "pretrain" / "masked_id.yaml",
        [
            f"data.train={tmp_path / 'pretrain'}",
            f"objective.probe_data={tmp_path / 'val'}",
            "objective.probe_n=200",
            "model.preset=tiny",
            "train.batch_size=128",
            "train.epochs=2",
            "train.lr=3e-3",
        ],
    )
    summary = pt_run.run_pretrain(cfg, tmp_path / "pre", progress=False)
    assert summary["steps"] == 8 and 0.0 <= summary["last"]["probe_auc"] <= 1.0
    cfg = load_config(
        root / "finetune" / "events_sgd.yaml",
        [
            f"data.train={tmp_path / 'train'}",
            f"data.val={tmp_path / 'val'}",
            f"data.test={tmp_path / 'test'}",
            "model.preset=tiny",
            f"finetune.init={tmp_path / 'pre'}",
            "train.batch_size=64",
            "train.epochs=2",
        ],
    )
    summary = ft_run.run_finetune(cfg, tmp_path / "ft", progress=False)
    assert summary["test"]["classes"] == ["ttbar", "h2hdm"]
    assert summary["test"]["auc"] > 0.8
    groups = load_state(tmp_path / "ft" / "last")["optimizer"]["param_groups"]
    assert all(g["lr"] == pytest.approx(1e-4) and g["momentum"] == 0.9 for g in groups)
