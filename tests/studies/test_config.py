from pathlib import Path

import pytest

from colliderfm.errors import ConfigError
from colliderfm.studies.config import DEFAULT_N_TRAIN, load_study_config, split_overrides

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "name",
    [
        "data_efficiency",
        "scaling",
        "compute",
        "jets-data-efficiency-converged",
        "jets-cwola-converged",
        "jets-new-domain-converged",
        "jets-zoo-scaling",
        "events-data-efficiency-converged",
        "events-scaling-converged",
        "events-mh400-converged",
        "events-mh1000-converged",
    ],
)
def test_shipped_study_configs_load(name: str) -> None:
    cfg = load_study_config(ROOT / "configs" / "study" / f"{name}.yaml")
    assert cfg.arms and len(cfg.seeds) >= 3 and cfg.budget.max_steps >= 1
    assert any(a.init == "none" for a in cfg.arms)  # every study has the scratch control


def test_defaults_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("train: {lr: 1.0e-3}\n")
    (tmp_path / "s.yaml").write_text("base: base.yaml\narms: [{name: a}]\n")
    cfg = load_study_config(tmp_path / "s.yaml")
    assert cfg.n_train == list(DEFAULT_N_TRAIN) and cfg.seeds == [0, 1, 2]
    assert cfg.arms[0].init == "none" and cfg.arms[0].mode == "full"
    assert cfg.base == str(tmp_path / "base.yaml")  # found next to the study YAML
    cfg = load_study_config(
        tmp_path / "s.yaml",
        ["n_train=[1e2, 1000]", "budget.max_steps=7", "train.lr=5e-4", "seeds=[4,5,6]"],
    )
    assert cfg.n_train == [100, 1000] and cfg.budget.max_steps == 7 and cfg.seeds == [4, 5, 6]
    assert cfg.overrides == ["train.lr=5e-4"]
    assert split_overrides(["model.preset=tiny", "test=x"]) == (["test=x"], ["model.preset=tiny"])
    with pytest.raises(ConfigError, match="'budget.select'"):
        load_study_config(tmp_path / "s.yaml", ["budget.select=best"])
    with pytest.raises(ConfigError, match="'arms\\[0\\].overrides'"):
        load_study_config(tmp_path / "s.yaml", ["arms=[{name: a, overrides: [nokey]}]"])


def test_seeds_by_n_sets_the_seeds_of_some_label_counts(tmp_path: Path) -> None:
    from colliderfm.studies.sweep import make_points

    (tmp_path / "base.yaml").write_text("train: {lr: 1.0e-3}\n")
    (tmp_path / "s.yaml").write_text(
        "base: base.yaml\narms: [{name: a}, {name: b}]\nn_train: [100, 1e5]\n"
        "seeds: [0, 1, 2]\nseeds_by_n: {1e5: [7]}\n"
    )
    cfg = load_study_config(tmp_path / "s.yaml")
    assert cfg.seeds_by_n == {100_000: [7]}
    assert cfg.seeds_for(100) == [0, 1, 2] and cfg.seeds_for(100_000) == [7]
    points = make_points(cfg.arms, cfg.n_train, cfg.seeds, cfg)
    assert [(p.n_train, p.seed) for p in points if p.arm.name == "a"] == [
        (100, 0),
        (100, 1),
        (100, 2),
        (100_000, 7),
    ]
    assert cfg.to_dict()["seeds_by_n"] == {100_000: [7]}
    for bad, key in [
        ("seeds_by_n: {300: [0]}", "300 is not one of n_train"),
        ("seeds_by_n: [1]", "must map label counts"),
        ("seeds_by_n: {100: []}", "seeds_by_n.100"),
    ]:
        (tmp_path / "bad.yaml").write_text(
            f"base: base.yaml\narms: [{{name: a}}]\nn_train: [100]\n{bad}\n"
        )
        with pytest.raises(ConfigError, match=key):
            load_study_config(tmp_path / "bad.yaml")


def test_linear_arms_skip_the_training_settings_of_a_study_grid(tmp_path: Path) -> None:
    from colliderfm.studies.config import arm_grid

    (tmp_path / "base.yaml").write_text("train: {lr: 1.0e-3}\n")
    (tmp_path / "s.yaml").write_text(
        "base: base.yaml\narms: [{name: s}, {name: p, init: x, mode: linear, "
        "grid: {finetune.probe_max_iter: [50, 100]}}]\n"
        "grid: {finetune.backbone_lr_mult: [0.1, 1.0], train.lr: [1e-3, 3e-3], "
        "data.max_particles: [64, 128]}\n"
    )
    cfg = load_study_config(tmp_path / "s.yaml")
    scratch, probe = cfg.arms
    assert set(arm_grid(cfg, scratch)) == {
        "finetune.backbone_lr_mult",
        "train.lr",
        "data.max_particles",
    }
    # the probe reads the inputs but no training-loop setting; its own grid still applies
    assert arm_grid(cfg, probe) == {
        "data.max_particles": [64, 128],
        "finetune.probe_max_iter": [50, 100],
    }


def test_an_arm_may_run_at_some_of_the_label_counts_only(tmp_path: Path) -> None:
    from colliderfm.studies.sweep import make_points

    (tmp_path / "base.yaml").write_text("train: {lr: 1.0e-3}\n")
    (tmp_path / "s.yaml").write_text(
        "base: base.yaml\nn_train: [100, 1000, 1e4]\nseeds: [0, 1]\n"
        "arms: [{name: scratch}, {name: screened, init: runs/x, n_train: [1000, 1e4]}]\n"
    )
    cfg = load_study_config(tmp_path / "s.yaml")
    assert cfg.arms[0].n_train == [] and cfg.arms[1].n_train == [1000, 10_000]
    points = make_points(cfg.arms, cfg.n_train, cfg.seeds, cfg)
    assert sorted({p.n_train for p in points if p.arm.name == "scratch"}) == [100, 1000, 10_000]
    assert sorted({p.n_train for p in points if p.arm.name == "screened"}) == [1000, 10_000]
    assert len(points) == 2 * 3 + 2 * 2
    (tmp_path / "bad.yaml").write_text(
        "base: base.yaml\nn_train: [100]\narms: [{name: a, n_train: [100, 300]}]\n"
    )
    with pytest.raises(ConfigError, match=r"arms\[0\]\.n_train.*\[300\] not among"):
        load_study_config(tmp_path / "bad.yaml")
