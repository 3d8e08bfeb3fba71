from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from synth import synthetic_jets, write_synthetic_shards
from train_helpers import train_on_batch

from colliderfm.checkpoints import load_model
from colliderfm.config import load_config
from colliderfm.data.stream import ConstituentStream
from colliderfm.errors import ConfigError
from colliderfm.models.registry import create_model
from colliderfm.pretrain.base import PretrainModel, create_objective
from colliderfm.pretrain.contrastive import concat_batches, nt_xent
from colliderfm.recipes.pretrain import run_pretrain

AUG = {
    "collinear_split": {"p": 1.0, "fraction": 0.1},
    "smear": {"p": 1.0},
    "rotate": {"p": 1.0},
    "translate": {"p": 1.0, "sigma": 0.1},
}


def _setup(loss: str = "ntxent") -> tuple[PretrainModel, object]:
    torch.manual_seed(0)
    backbone = create_model("part", "tiny", in_dim=13)
    obj = create_objective(
        "contrastive",
        {"loss": loss, "augment": AUG, "proj_dim": 32, "proj_hidden": 64},
        backbone.dim,
        13,
    )
    batch = next(iter(ConstituentStream(synthetic_jets(64, seed=2), batch_size=64, shuffle=False)))
    return PretrainModel(backbone, obj), batch


@pytest.mark.parametrize("loss", ["ntxent", "vicreg"])
def test_loss_decreases_on_fixed_batch(loss: str) -> None:
    model, batch = _setup(loss)
    losses, logs = train_on_batch(model, batch, 30, 2e-3)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    assert "align" in logs and "uniform" in logs


def test_augmented_view_closer_to_source_than_to_other_jets() -> None:
    model, batch = _setup()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(30):
        value, _ = model.loss(batch)
        opt.zero_grad()
        value.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        view = model.objective.augmenter(batch)
        both = concat_batches(batch, view)
        z = F.normalize(
            model.objective.projector(model.backbone.embed(both.features, both.mask, both.vectors)),
            dim=-1,
        )
        a, b = z.chunk(2)
        sim = a @ b.T  # [B, B]: source i vs view j
    top1 = (sim.argmax(1) == torch.arange(len(a))).float().mean().item()
    assert top1 > 0.5, top1


def test_nt_xent_perfect_pairs() -> None:
    z = torch.eye(8)
    loss, acc = nt_xent(z, z.clone(), 0.05)
    assert acc.item() == 1.0 and loss.item() < 1e-3


def test_event_views_use_the_event_augmentations_and_learn() -> None:
    from synth_events import synthetic_events

    from colliderfm.physics.augment_events import EVENT_DEFAULT, EventAugmenter

    torch.manual_seed(0)
    backbone = create_model("objt", "tiny")
    obj = create_objective("contrastive", {"proj_dim": 32, "proj_hidden": 64}, backbone.dim, 11)
    assert obj.views == "event" and isinstance(obj.augmenter, EventAugmenter)
    assert set(EVENT_DEFAULT) <= set(repr(obj.augmenter).replace("(", " ").split())
    model = PretrainModel(backbone, obj)
    batch = synthetic_events(64, seed=3, labelled=False)
    losses, logs = train_on_batch(model, batch, 30, 2e-3)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses
    assert 0.0 <= logs["pos_acc"] <= 1.0
    # jet features keep the jet augmentations; forcing event views on them is a config error
    assert create_objective("contrastive", {}, 32, 13).views == "jet"
    with pytest.raises(ConfigError, match="views=event needs the event features"):
        create_objective("contrastive", {"views": "event"}, 32, 13)
    with pytest.raises(ConfigError, match="auto, jet, event"):
        create_objective("contrastive", {"views": "events"}, 32, 11)


def test_bad_params_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="objective.params.temprature"):
        create_objective("contrastive", {"temprature": 0.1}, 32, 13)
    with pytest.raises(ConfigError, match="ntxent, vicreg"):
        create_objective("contrastive", {"loss": "triplet"}, 32, 13)
    with pytest.raises(ConfigError, match="unknown objective 'simclr'"):
        create_objective("simclr", {}, 32, 13)


def test_pretrain_run_writes_loadable_checkpoint_and_probe(tmp_path: Path) -> None:
    write_synthetic_shards(tmp_path / "unl", n=256)
    write_synthetic_shards(tmp_path / "lab", n=200, seed=5)
    cfg = load_config(
        None,
        [
            f"data.train={tmp_path / 'unl'}",
            "model.preset=tiny",
            "objective.name=contrastive",
            f"objective.probe_data={tmp_path / 'lab'}",
            "objective.probe_n=200",
            "train.batch_size=64",
            "train.epochs=1",
            "train.log_every=1",
        ],
    )
    cfg.objective.params = {"augment": AUG, "proj_dim": 16, "proj_hidden": 32}
    summary = run_pretrain(cfg, tmp_path / "run", progress=False)
    assert summary["steps"] == 4 and 0.0 <= summary["probe_auc_random"] <= 1.0
    assert 0.0 <= summary["last"]["probe_auc"] <= 1.0
    model = load_model(tmp_path / "run")
    assert isinstance(model, PretrainModel)


def test_checkpoint_records_the_default_augmentations_it_ran_with(tmp_path: Path) -> None:
    from colliderfm.physics.augment import JETCLR_DEFAULT
    from colliderfm.train.checkpoint import read_meta

    write_synthetic_shards(tmp_path / "unl", n=64)
    cfg = load_config(
        None,
        [
            f"data.train={tmp_path / 'unl'}",
            "model.preset=tiny",
            "objective.name=contrastive",
            "train.batch_size=32",
            "train.max_steps=1",
        ],
    )
    cfg.objective.params = {"proj_dim": 16, "proj_hidden": 32}  # augment: null -> defaults
    run_pretrain(cfg, tmp_path / "run", progress=False)
    params = read_meta(tmp_path / "run")["model"]["params"]
    assert params["views"] == "jet"
    assert params["augment"] == {k: dict(v) for k, v in JETCLR_DEFAULT.items()}
    assert isinstance(load_model(tmp_path / "run"), PretrainModel)
