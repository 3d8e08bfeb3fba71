from pathlib import Path

import pytest

from colliderfm.errors import ConfigError
from colliderfm.studies.config import DEFAULT_N_TRAIN, load_study_config, split_overrides

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["data_efficiency", "scaling", "compute"])
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
