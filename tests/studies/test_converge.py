"""The converged-study protocol: ``budget.mode: converge``, validation rules, grid selection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from synth import write_synthetic_shards

import colliderfm.recipes.finetune as finetune_recipe
import colliderfm.studies.sweep as sweep
from colliderfm.config import load_config
from colliderfm.errors import ConfigError
from colliderfm.recipes.finetune import run_finetune
from colliderfm.studies import run_study
from colliderfm.studies.config import load_study_config
from colliderfm.studies.results import select_grid
from colliderfm.studies.sweep import make_points, point_config

#: the fine-tuning keys the budget sets
BUDGET_KEYS = ("max_steps", "steps_per_epoch", "early_stopping", "patience", "batch_size", "lr")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny labelled data, a base fine-tuning YAML and a tiny 'pretrained' checkpoint."""
    root = tmp_path_factory.mktemp("converge")
    write_synthetic_shards(root / "train", n=400, seed=1, rows_per_shard=250)
    write_synthetic_shards(root / "val", n=120, seed=2)
    write_synthetic_shards(root / "test", n=150, seed=3)
    base = {
        "data": {"train": str(root / "train"), "max_particles": 32},
        "model": {"name": "part", "preset": "tiny", "pair_features": False},
        "train": {"batch_size": 32, "lr": 3e-3, "epochs": 1, "log_every": 1},
    }
    (root / "base.yaml").write_text(yaml.safe_dump(base))  # no data.val: the study gives it
    cfg = load_config(root / "base.yaml", ["train.max_steps=3"])
    run_finetune(cfg, root / "pre", progress=False)
    return root


def _study(root: Path, name: str, **extra: Any) -> Path:
    study = {
        "base": "base.yaml",
        "arms": [
            {"name": "scratch", "init": "none", "mode": "full"},
            {"name": "pre-full", "init": str(root / "pre"), "mode": "full"},
        ],
        "n_train": [60, 300],
        "seeds": [0],
        "budget": {"eval_every": 2, "patience": 2, "max_epochs": 2, "min_steps": 2},
        "val": str(root / "val"),
        "test": str(root / "test"),
        **extra,
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def _scripted_validation(monkeypatch: pytest.MonkeyPatch, aucs: list[float]) -> None:
    """Every fine-tuning run sees the validation AUCs ``aucs`` (then the last one repeated),
    while the rest of validation (the loss) is real."""
    real = finetune_recipe.make_validate

    def make(cfg: Any, classes: list[str], val: Any) -> Any:
        fn = real(cfg, classes, val)
        calls = iter(range(10**6))

        def validate(module: Any) -> dict[str, float]:
            out = dict(fn(module))
            out["val_auc"] = aucs[min(next(calls), len(aucs) - 1)]
            return out

        return validate

    monkeypatch.setattr(finetune_recipe, "make_validate", make)


def test_converge_is_the_default_and_every_arm_gets_the_same_budget(setup: Path) -> None:
    study = load_study_config(_study(setup, "rules"))
    assert study.budget.mode == "converge"
    points = make_points(study.arms, study.n_train, study.seeds, study)
    cfgs = {(p.arm.name, p.n_train): point_config(study, p).train for p in points}
    for n in study.n_train:
        scratch, pre = cfgs[("scratch", n)], cfgs[("pre-full", n)]
        # the same rules reach every arm, scratch included
        assert {k: getattr(scratch, k) for k in BUDGET_KEYS} == {
            k: getattr(pre, k) for k in BUDGET_KEYS
        }
        assert scratch.early_stopping == "val_auc" and scratch.patience == 2
        assert scratch.steps_per_epoch == 2  # the validation cadence
    # at most max_epochs epochs of N: ceil(2 * 60 / 32) = 4, ceil(2 * 300 / 32) = 19
    assert cfgs[("scratch", 60)].max_steps == 4 and cfgs[("scratch", 300)].max_steps == 19
    # the floor and the cap
    floor = load_study_config(_study(setup, "floor"), ["budget.min_steps=10"])
    assert point_config(floor, make_points(floor.arms, [60], [0])[0]).train.max_steps == 10
    cap = load_study_config(_study(setup, "cap"), ["budget.max_steps=7"])
    assert point_config(cap, make_points(cap.arms, [300], [0])[0]).train.max_steps == 7
    # the old fixed budget is kept: exactly max_steps, never stopped early
    fixed = load_study_config(_study(setup, "fixed"), ["budget.mode=fixed", "budget.max_steps=5"])
    t = point_config(fixed, make_points(fixed.arms, [300], [0])[0]).train
    assert t.max_steps == 5 and t.patience == 1_000_000_000


def test_steps_differ_across_n_while_validation_improves(
    setup: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _scripted_validation(monkeypatch, [0.5 + 0.01 * i for i in range(100)])  # always improving
    res = run_study("data-efficiency", _study(setup, "improving"), tmp_path / "up")
    steps = {(r["arm"], r["n_train"]): r["steps"] for r in res["points"]}
    assert steps == {("scratch", 60): 4, ("pre-full", 60): 4, ("scratch", 300): 19,
                     ("pre-full", 300): 19}  # fmt: skip
    for r in res["points"]:
        assert r["max_steps"] == r["steps"] and r["budget_mode"] == "converge"
        assert r["epochs"] == pytest.approx(r["steps"] * 32 / r["n_train"], abs=1e-3)
    assert res["data"]["max_steps_by_n"] == {"60": 4, "300": 19}
    assert res["data"]["val_size"] == 120
    report = (tmp_path / "up" / "report.md").read_text()
    assert "trained to convergence (`budget.mode: converge`)" in report
    assert "120 labelled jets used" in report and "## Every point" in report
    assert "| scratch | 300 | 0 | 19 (19) |" in report


def test_early_stopping_fires_when_validation_stops_improving(
    setup: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # best at the 2nd validation (step 4), then 2 validations without improvement: stop at 8
    _scripted_validation(monkeypatch, [0.6, 0.7, 0.65, 0.64, 0.63])
    res = run_study("data-efficiency", _study(setup, "peak", n_train=[300]), tmp_path / "peak")
    for r in res["points"]:
        assert r["max_steps"] == 19 and r["steps"] == 8 < r["max_steps"]
        assert r["best_step"] == 4 and r["best_val_auc"] == pytest.approx(0.7)
        assert r["curve"]["step"] == [2.0, 4.0, 6.0, 8.0]


def _fake_row(point: Any, val_auc: float, auc: float) -> dict[str, Any]:
    return {
        "key": point.key,
        "arm": point.arm.name,
        "init": point.arm.init,
        "mode": point.arm.mode,
        "pretrain_size": None,
        "n_train": point.n_train,
        "seed": point.seed,
        "setting": dict(point.setting),
        "budget_mode": "converge",
        "max_steps": 10,
        "epochs": 1.0,
        "auc": auc,
        "accuracy": 0.7,
        "rej0.3": 10.0,
        "rej0.5": 5.0,
        "sic0.3": 1.0,
        "sic0.5": 1.0,
        "n_test": 150,
        "steps": 8,
        "best_step": 4,
        "best_val_auc": val_auc,
        "train_wall_s": 1.0,
        "eval_wall_s": 0.5,
        "curve": {"step": [4.0], "val_auc": [val_auc], "val_loss": [0.5]},
        "fingerprint": "x",
    }


def test_grid_selection_follows_validation_not_test(
    setup: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fake point runner where validation prefers lr=0.01 and test prefers lr=0.001: the
    choice (and so every reported test number) follows validation, for every arm."""
    calls: list[Any] = []

    def fake(study: Any, point: Any, pdir: Path, test: str) -> dict[str, Any]:
        calls.append(point)
        lr = dict(point.setting)["train.lr"]
        good = lr == 0.01
        bonus = 0.01 * point.seed
        return _fake_row(point, (0.9 if good else 0.8) + bonus, (0.7 if good else 0.95) + bonus)

    monkeypatch.setattr(sweep, "run_point", fake)
    path = _study(setup, "grid", seeds=[0, 1], grid={"train.lr": [0.001, 0.01]})
    res = run_study("data-efficiency", path, tmp_path / "grid")
    # every arm, scratch included, trained every grid value: 2 arms x 2 N x 2 seeds x 2 lr
    assert len(calls) == 16 and len(res["grid_points"]) == 16
    assert {(p.arm.name, dict(p.setting)["train.lr"]) for p in calls} == {
        (a, lr) for a in ("scratch", "pre-full") for lr in (0.001, 0.01)
    }
    # the points reported are the validation choice, with its (worse) test AUC
    assert len(res["points"]) == 8
    assert all(r["setting"] == {"train.lr": 0.01} for r in res["points"])
    assert {round(r["auc_mean"], 3) for r in res["summary"]} == {0.705}
    assert len(res["selection"]) == 4
    assert all(s["chosen"] == {"train.lr": 0.01} for s in res["selection"])
    # the grid settings reach the fine-tuning config; the budget keys stay the arm's
    study = load_study_config(path)
    p0, p1 = make_points(study.arms[:1], [60], [0], study)
    assert (point_config(study, p0).train.lr, point_config(study, p1).train.lr) == (0.001, 0.01)
    assert p0.key != p1.key and p0.key.startswith("scratch-n60-s0-g")
    report = (tmp_path / "grid" / "report.md").read_text()
    assert "## Settings chosen on validation" in report
    assert "- `scratch`: `train.lr` in [0.001, 0.01]" in report
    assert "| pre-full | 300 | train.lr=0.01 | train.lr=0.001: 0.8050; train.lr=0.01: 0.9050 |" in (
        report
    )
    assert "(mean ± standard error over seeds)" in report
    assert "Difference to `scratch`" in report and "n/a SE" in report  # equal arms: diff 0


def test_select_grid_per_arm_grid_and_ties() -> None:
    def row(arm: str, lr: float, seed: int, val: float | None, auc: float) -> dict[str, Any]:
        return {"arm": arm, "n_train": 100, "seed": seed, "setting": {"train.lr": lr},
                "best_val_auc": val, "auc": auc}  # fmt: skip

    rows = [
        row("a", 0.1, 0, 0.80, 0.99),
        row("a", 0.1, 1, 0.90, 0.99),  # mean val 0.85
        row("a", 1.0, 0, 0.86, 0.50),
        row("a", 1.0, 1, 0.86, 0.50),  # mean val 0.86: chosen despite its test AUC
        row("b", 0.1, 0, 0.70, 0.6),
        row("b", 1.0, 0, 0.70, 0.9),  # a tie goes to the first setting
        row("c", 0.1, 0, None, 0.9),
        row("c", 1.0, 0, 0.60, 0.5),  # no validation AUC is never chosen
    ]
    picked, selection = select_grid(rows)
    assert [(r["arm"], r["setting"]["train.lr"]) for r in picked] == [
        ("a", 1.0), ("a", 1.0), ("b", 0.1), ("c", 1.0)
    ]  # fmt: skip
    assert [s["chosen"]["train.lr"] for s in selection] == [1.0, 0.1, 1.0]
    plain = [{"arm": "a", "n_train": 1, "seed": 0, "best_val_auc": 0.5}]
    assert select_grid(plain) == (plain, [])


def test_arm_grid_overrides_the_study_grid(setup: Path) -> None:
    path = _study(
        setup,
        "armgrid",
        grid={"train.lr": [0.001, 0.01], "finetune.backbone_lr_mult": [0.1, 1.0]},
    )
    cfg = yaml.safe_load(path.read_text())
    cfg["arms"][1]["grid"] = {"finetune.backbone_lr_mult": [0.3]}
    path.write_text(yaml.safe_dump(cfg))
    study = load_study_config(path)
    points = make_points(study.arms, [60], [0], study)
    by_arm = {
        a: [dict(p.setting) for p in points if p.arm.name == a] for a in ("scratch", "pre-full")
    }
    assert len(by_arm["scratch"]) == 4  # the study-wide grid, scratch included
    assert by_arm["pre-full"] == [
        {"train.lr": 0.001, "finetune.backbone_lr_mult": 0.3},
        {"train.lr": 0.01, "finetune.backbone_lr_mult": 0.3},
    ]
    ft = point_config(study, next(p for p in points if p.arm.name == "pre-full"))
    assert ft.finetune.backbone_lr_mult == 0.3


def test_grid_from_reuses_the_choice_at_a_smaller_n_without_training_the_grid(
    setup: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``grid_from: {300: 60}``: the grid is trained at N = 60 only; at 300 every arm runs the
    setting its validation chose at 60, even where the other setting would validate better
    there (it is never trained, so never looked at)."""
    calls: list[Any] = []
    prefer = {("scratch", 60): 0.01, ("pre-full", 60): 0.001, ("scratch", 300): 0.001,
              ("pre-full", 300): 0.01}  # fmt: skip

    def fake(study: Any, point: Any, pdir: Path, test: str) -> dict[str, Any]:
        calls.append(point)
        good = dict(point.setting)["train.lr"] == prefer[(point.arm.name, point.n_train)]
        return _fake_row(point, (0.9 if good else 0.8) + 0.01 * point.seed, 0.75)

    monkeypatch.setattr(sweep, "run_point", fake)
    path = _study(
        setup, "gridfrom", seeds=[0, 1], grid={"train.lr": [0.001, 0.01]}, grid_from={300: 60}
    )
    res = run_study("data-efficiency", path, tmp_path / "gf")
    trained = [(p.arm.name, p.n_train, dict(p.setting)["train.lr"]) for p in calls]
    assert len(calls) == 8 + 4  # N = 60: 2 arms x 2 seeds x 2 lr; N = 300: one lr per arm
    assert sorted({t for t in trained if t[1] == 300}) == [
        ("pre-full", 300, 0.001), ("scratch", 300, 0.01)
    ]  # fmt: skip
    assert [t[1] for t in trained] == [60] * 8 + [300] * 4  # the grid first, then the carry
    picked = {(r["arm"], r["n_train"]): r["setting"]["train.lr"] for r in res["points"]}
    assert picked == {("scratch", 60): 0.01, ("pre-full", 60): 0.001, ("scratch", 300): 0.01,
                      ("pre-full", 300): 0.001}  # fmt: skip
    carried = [s for s in res["selection"] if s.get("from_n") is not None]
    assert [(s["arm"], s["n_train"], s["from_n"]) for s in carried] == [
        ("scratch", 300, 60), ("pre-full", 300, 60)
    ]  # fmt: skip
    report = (tmp_path / "gf" / "report.md").read_text()
    assert "| scratch | 300 | train.lr=0.01 | the choice at N = 60 (`grid_from`" in report
    assert "| scratch | 60 | train.lr=0.01 | train.lr=0.001: 0.8050; train.lr=0.01: 0.9050 |" in (
        report
    )
    # narrowed to the N where the grid is trained (a screening stage), the entry does nothing
    calls.clear()
    res = run_study("data-efficiency", path, tmp_path / "gf60", ["n_train=[60]"])
    assert len(calls) == 8 and all(s.get("from_n") is None for s in res["selection"])


@pytest.mark.parametrize(
    ("extra", "sets", "match"),
    [
        ({"val": None}, [], "budget.mode=converge needs a validation set"),
        ({}, ["val=TEST"], "the validation set and the test set are the same"),
        ({}, ["budget.select=last"], "'budget.select'"),
        ({"grid": {"train.max_steps": [1, 2]}}, [], "'grid.train.max_steps'"),
        ({"grid": {"lr": [1, 2]}}, [], "'grid.lr'"),
        ({"grid": {"train.lr": []}}, [], "'grid.train.lr'"),
        ({"grid": {"train.lr": [0.1]}}, ["budget.lr=0.1"], "'grid.train.lr'"),
        ({"budget": {"mode": "forever"}}, [], "'budget.mode'"),
        ({"grid_from": {60: 300}}, [], "'grid_from.60' = 300: the setting must come from a"),
        ({"grid_from": {300: 100}}, [], "N = 100 is not run"),
        ({"grid_from": {300: 60, 60: 30}}, ["n_train=[30,60,300]"], "itself takes its setting"),
        ({"grid_from": [300, 60]}, [], "'grid_from' must map"),
        (
            {"grid_from": {300: 60}, "arms": [{"name": "s", "init": "none", "n_train": [300]}]},
            [],
            r"'arms\[0\].n_train': grid_from",
        ),  # fmt: skip
    ],
)
def test_bad_converge_studies_are_refused(
    setup: Path, tmp_path: Path, extra: dict[str, Any], sets: list[str], match: str
) -> None:
    path = _study(setup, "bad", **extra)
    sets = [s.replace("TEST", str(setup / "test")) for s in sets]
    with pytest.raises(ConfigError, match=match):
        run_study("data-efficiency", path, tmp_path / "bad", sets)
    assert not (tmp_path / "bad" / "points").exists()  # nothing ran


def test_fixed_study_without_validation_still_runs_with_select_last(
    setup: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweep, "run_point", lambda s, p, d, t: _fake_row(p, 0.8, 0.8))
    path = _study(setup, "fixed-noval", val=None, n_train=[60])
    res = run_study(
        "data-efficiency",
        path,
        tmp_path / "fx",
        ["budget.mode=fixed", "budget.max_steps=3", "budget.select=last"],
    )
    assert len(res["points"]) == 2 and res["selection"] == []
    report = (tmp_path / "fx" / "report.md").read_text()
    assert "compute-matched (`budget.mode: fixed`" in report
