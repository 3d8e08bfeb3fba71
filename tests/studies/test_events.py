"""Studies on whole events: masked_id-pretrained ObjectTransformer arms vs scratch, AdamW and SGD.

Everything runs the real code path on tiny synthetic event shards (``write_event_shards``): a
few-step masked object-id pretraining of a tiny ``objt``, then the study sweeps.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from synth_events import write_event_shards
from typer.testing import CliRunner

from colliderfm.cli import app
from colliderfm.config import load_config
from colliderfm.errors import ColliderFMError, ConfigError
from colliderfm.recipes.pretrain import run_pretrain
from colliderfm.studies import run_study
from colliderfm.studies.config import ArmConfig, load_study_config
from colliderfm.studies.sweep import Point, make_points, point_config
from colliderfm.train.checkpoint import load_state

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
#: tiny pretraining: the shipped masked_id recipe, 3 steps of a tiny objt, no probe
PRETRAIN_SETS = [
    "model.preset=tiny",
    "objective.probe_data=null",
    "train.batch_size=64",
    "train.max_steps=3",
    "train.epochs=1",
]


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Labelled train/val/test event shards, an unlabelled pretraining mix, a tiny masked_id
    checkpoint and the overrides that point the shipped event presets at them."""
    root = tmp_path_factory.mktemp("events")
    for name, n, seed, labelled in (
        ("pretrain", 400, 0, False),
        ("train", 400, 1, True),
        ("val", 120, 2, True),
        ("test", 160, 3, True),
    ):
        write_event_shards(root / name, n, seed=seed, labelled=labelled, rows_per_shard=150)
    cfg = load_config(
        CONFIGS / "pretrain" / "masked_id.yaml",
        [f"data.train={root / 'pretrain'}", *PRETRAIN_SETS],
    )
    run_pretrain(cfg, root / "mid", progress=False)
    return root


def _overrides(root: Path) -> list[str]:
    return [
        f"data.train={root / 'train'}",
        f"data.val={root / 'val'}",
        "model.preset=tiny",
        "train.val_max=100",
        "train.log_every=1",
    ]


def _rows(shards: Path) -> list[tuple[Any, ...]]:
    """Rows of an event shard directory (as hashable tuples); checks its kind."""
    mf = json.loads((shards / "manifest.json").read_text())
    assert mf["kind"] == "events"
    return [
        tuple(tuple(v) if isinstance(v, list) else v for v in r.values())
        for s in mf["shards"]
        for r in pq.read_table(shards / s["file"]).to_pylist()
    ]


def _study(root: Path, name: str, **extra: Any) -> Path:
    """A tiny study on the event presets: scratch, masked_id (AdamW) and masked_id (SGD)."""
    study = {
        "base": str(CONFIGS / "finetune" / "events.yaml"),
        "overrides": _overrides(root),
        "arms": [
            {"name": "scratch", "init": "none", "mode": "full"},
            {"name": "mid-full", "init": str(root / "mid"), "mode": "full"},
            {
                "name": "mid-sgd",
                "init": str(root / "mid"),
                "mode": "full",
                "base": str(CONFIGS / "finetune" / "events_sgd.yaml"),
            },
        ],
        "n_train": [60, 120],
        "seeds": [0, 1],
        "budget": {"mode": "fixed", "max_steps": 4, "eval_every": 2, "batch_size": 32},
        "test": str(root / "test"),
        **extra,
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_event_data_efficiency_study(events: Path, tmp_path: Path) -> None:
    out = tmp_path / "de"
    res = run_study("data-efficiency", _study(events, "de"), out, command="colliderfm study ev")
    assert len(res["points"]) == 3 * 2 * 2 and len(res["summary"]) == 3 * 2
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["arm"] for r in rows} == {"scratch", "mid-full", "mid-sgd"}
    assert all(0.0 <= float(r["auc"]) <= 1.0 and r["steps"] == "4" for r in rows)
    assert all(r["n_test"] == "160" for r in rows)
    saved = json.loads((out / "results.json").read_text())
    facts = saved["data"]
    assert facts["unit"] == "events" and facts["features"] == "event"
    assert facts["model"] == "objt/tiny" and facts["train_labelled"] == 400
    for p in saved["points"]:
        assert p["curve"]["step"] == [2.0, 4.0] and p["n_train_used"] == p["n_train"]
    # the SGD arm ran the SGD preset (momentum, cosine to min_lr 1e-4), the others AdamW
    sgd = load_state(out / "points" / "mid-sgd-n60-s0" / "run" / "last")["optimizer"]
    assert all(g["momentum"] == 0.9 and g["lr"] == pytest.approx(1e-4) for g in sgd["param_groups"])
    adamw = load_state(out / "points" / "mid-full-n60-s0" / "run" / "last")["optimizer"]
    assert all("betas" in g for g in adamw["param_groups"])
    for png in ("auc_vs_n.png", "rejection_vs_n.png"):
        assert (out / png).stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "(400 labelled events)" in report and "(160 events)" in report
    assert "labelled jets" not in report
    assert "| mid-sgd | " in report and "N=120" in report and "colliderfm study ev" in report
    assert "events_sgd.yaml" in report  # the arm's own recipe is in the resolved study config
    assert "`mid-sgd`: sgd (momentum 0.9), batch 32, lr 0.01 -> 0.0001" in report
    assert "`mid-full`: adamw, batch 32, lr 0.001 -> 1e-05" in report


def test_event_compute_study_via_cli(events: Path, tmp_path: Path) -> None:
    path = _study(
        events,
        "compute",
        n_train=[120],
        budget={"mode": "fixed", "max_steps": 4, "eval_every": 2, "batch_size": 32},
        arms=[
            {"name": "scratch", "init": "none", "mode": "full"},
            {"name": "mid-full", "init": str(events / "mid"), "mode": "full"},
        ],
    )
    out = tmp_path / "cmp"
    res = CliRunner().invoke(app, ["study", "compute", "--config", str(path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = (out / "report.md").read_text()
    assert "| scratch | 120 | 2/2 |" in report
    assert (out / "val_auc_vs_step.png").is_file() and (out / "val_auc_vs_time.png").is_file()


def test_event_scaling_study_pretrains_masked_id_on_nested_subsets(
    events: Path, tmp_path: Path
) -> None:
    path = _study(
        events,
        "scaling",
        arms=[{"name": "scratch", "init": "none", "mode": "full"}],
        n_train=[60],
        pretrain={
            "config": str(CONFIGS / "pretrain" / "masked_id.yaml"),
            "data": str(events / "pretrain"),
            "sizes": [100, 300],
            "name": "mid",
            "overrides": PRETRAIN_SETS,
        },
    )
    out = tmp_path / "sc"
    res = run_study("scaling", path, out)
    assert {r["arm"] for r in res["summary"]} == {"scratch", "mid-p100", "mid-p300"}
    assert [r["steps"] for r in res["pretrain_runs"]] == [3, 3]

    small, big, everything = (
        _rows(d)
        for d in (
            out / "pretrain" / "data-p100",
            out / "pretrain" / "data-p300",
            events / "pretrain",
        )
    )
    assert len(set(small)) == 100 and len(set(big)) == 300
    assert set(small) <= set(big) <= set(everything)  # nested, and copied exactly as stored
    report = (out / "report.md").read_text()
    assert "| arm | pretraining events | mode |" in report and "| mid-p300 | 300 |" in report
    assert (out / "auc_vs_pretrain_size.png").is_file()
    # the recipe must build the backbone the fine-tuning config asks for, before anything runs
    with pytest.raises(ConfigError, match="'pretrain.config'.*objt/tiny.*objt/small"):
        run_study("scaling", path, tmp_path / "bad", ["model.preset=small"])
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    ("sets", "match"),
    [
        # event shards read with jet features: refused before any point runs
        (["data.features=part", "model.name=part"], "holds events, but data.features is 'part'"),
        # a masked_id objt/tiny checkpoint as an arm of an objt/small study
        (["model.preset=small"], "arm 'mid-full'.*objt/tiny.*objt/small"),
    ],
)
def test_event_study_mismatches_fail_before_training(
    events: Path, tmp_path: Path, sets: list[str], match: str
) -> None:
    with pytest.raises(ColliderFMError, match=match):
        run_study("data-efficiency", _study(events, "mismatch"), tmp_path / "o", sets)
    assert not (tmp_path / "o" / "points").exists()


@pytest.mark.parametrize("name", ["events_data_efficiency", "events_scaling"])
def test_shipped_event_study_configs_load(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the shipped configs name their files from the repository root
    cfg = load_study_config(CONFIGS / "study" / f"{name}.yaml")
    assert len(cfg.seeds) >= 3 and cfg.budget.max_steps >= 1
    assert any(a.init == "none" for a in cfg.arms)  # every study has the scratch control
    if name == "events_data_efficiency":
        assert cfg.n_train == [100, 300, 1000, 3000, 10000]
        assert {a.base for a in cfg.arms} == {None, "configs/finetune/events_sgd.yaml"}
    # every arm's fine-tuning config resolves (unknown keys would raise here)
    for p in make_points(cfg.arms, cfg.n_train[:1], cfg.seeds[:1]):
        ft = point_config(cfg, p)
        assert (ft.data.features, ft.model.name) == ("event", "objt")
        assert ft.train.optimizer == ("sgd" if p.arm.base else "adamw")
        assert ft.train.max_steps == cfg.budget.max_steps
        assert ft.data.train == "data/default/events/train"
    assert cfg.test == "data/default/events/test"
    if cfg.pretrain.sizes:
        assert cfg.pretrain.config is not None
        pre = load_config(cfg.pretrain.config, cfg.pretrain.overrides)
        ft = point_config(cfg, Point(ArmConfig(name="x"), cfg.n_train[0], cfg.seeds[0]))
        assert pre.objective.name == "masked_id" and pre.data.features == "event"
        assert (pre.model.name, pre.model.preset) == (ft.model.name, ft.model.preset)
        assert cfg.pretrain.data == pre.data.train == "data/default/events/pretrain"
