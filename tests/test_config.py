from pathlib import Path

import pytest

from colliderfm.config import Config, config_from_dict, dump_config, load_config
from colliderfm.errors import ConfigError


def test_defaults_and_overrides() -> None:
    cfg = load_config(
        None,
        [
            "train.lr=3e-4",
            "model.preset=tiny",
            "data.train=/x",
            "train.early_stopping=val_auc",
            "finetune.n_train=100",
        ],
    )
    assert cfg.train.lr == pytest.approx(3e-4) and cfg.model.preset == "tiny"
    assert cfg.data.train == "/x" and cfg.finetune.n_train == 100
    assert (cfg.train.optimizer, cfg.train.momentum, cfg.train.min_lr) == ("adamw", 0.9, 0.0)
    sgd = load_config(None, ["train.optimizer=sgd", "train.momentum=0.8", "train.min_lr=1e-5"])
    assert (sgd.train.optimizer, sgd.train.momentum, sgd.train.min_lr) == ("sgd", 0.8, 1e-5)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lrr=1", "unknown config key 'train.lrr' .*valid keys: .*lr"),
        ("nosection.key=1", "unknown config key 'nosection'"),
        ("model.preset=huge", "'model.preset' = 'huge' is not one of tiny, small, base"),
        ("train.epochs=0", "'train.epochs' = 0 is out of range"),
        ("train.epochs=ten", "'train.epochs' must be int"),
        ("train.precision=fp8", "not one of fp32, bf16"),
        ("trainlr", "must look like section.key=value"),
        ("train.optimizer=adam", "'train.optimizer' = 'adam' is not one of adamw, sgd"),
        ("train.device=gpu", "'train.device' = 'gpu' is not one of auto, cpu, cuda, cuda:N, mps"),
        ("train.device=cuda:x", "'train.device' = 'cuda:x' is not one of auto, cpu"),
        ("train.momentum=1.5", "'train.momentum' = 1.5 is out of range"),
        ("train.min_lr=-1e-4", "'train.min_lr' = -0.0001 is out of range"),
    ],
)
def test_bad_values_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = load_config(None, ["train.seed=7", "objective.name=contrastive"])
    p = tmp_path / "c.yaml"
    p.write_text(dump_config(cfg))
    assert load_config(p) == cfg
    assert config_from_dict(cfg.to_dict()) == cfg


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("train:\n  bogus: 1\n")
    with pytest.raises(ConfigError, match="train.bogus"):
        load_config(bad)


def test_shipped_configs_load() -> None:
    root = Path(__file__).resolve().parents[1] / "configs"
    # configs/study/ holds study configs (tests/studies/test_config.py loads those)
    files = sorted(f for f in root.rglob("*.yaml") if f.parent.name != "study")
    assert files
    for f in files:
        assert isinstance(load_config(f), Config)


def test_data_unit_names_what_an_example_is() -> None:
    assert load_config(None, ["data.features=event"]).data.unit == "events"
    assert load_config(None, ["data.features=part"]).data.unit == "jets"
    assert load_config(None, ["data.features=kinematic"]).data.unit == "jets"
