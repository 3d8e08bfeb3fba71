"""Configs are strict before work starts: every bad config is one error line naming key or file.

Cases (principle 4 of issue 18):

- ``train.lr=nan`` / ``train.weight_decay=nan``: refused at load time (were torch tracebacks)
- ``train.lr=inf`` / ``train.grad_clip=nan``: refused before training (training started)
- every float field of every section, NaN and +-inf, by ``--set`` and in YAML (``.nan``)
- NaN inside lists and nested mappings (``finetune.cwola_fractions``, ``objective.params``)
- every float field of every objective and tokenizer params dataclass, NaN and inf
- a study's ``budget.lr=nan``, ``seeds: [-1]``, ``pretrain.seed: -1``
- ``train.seed=-1`` and a seed above 2**32 - 1 (NumPy traceback)
- ``train.warmup=inf`` (OverflowError), ``train.momentum=nan`` (trained silently)
- contrastive ``proj_dim: 0`` and a negative VICReg weight (no range before)
- a config file that is not UTF-8 text (UnicodeDecodeError traceback)
- ``train: null`` names the file and the section (was: defaults, then an unrelated error)
- a directory given as ``--config`` says it is a directory (was: "not found")
- an empty file and a comments-only file (were: defaults, then an unrelated error)
- a YAML list and a YAML scalar at top level
- a key given twice in one mapping (PyYAML kept the last silently)
- a config file too large to be one (a data file given as ``--config``)
- a FIFO as ``--config`` (would block reading) and a symbolic link loop
- study configs: the same file checks (not UTF-8, directory, empty)
- through the CLI: one ``colliderfm: error:`` line, exit 2, no run directory
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from pathlib import Path

import pytest
from cli_helpers import assert_no_checkpoint, assert_one_error_line, run_cli, tiny_config
from synth import write_synthetic_shards

from colliderfm.config import (
    Config,
    DataConfig,
    FinetuneConfig,
    ModelConfig,
    ObjectiveConfig,
    TrainConfig,
    load_config,
)
from colliderfm.errors import ConfigError
from colliderfm.pretrain.base import OBJECTIVES, make_params
from colliderfm.studies.config import load_study_config
from colliderfm.tokenizers.base import TOKENIZERS, tokenizer_params

SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "objective": ObjectiveConfig,
    "finetune": FinetuneConfig,
    "train": TrainConfig,
}


def _float_fields(cls: type) -> list[str]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        args = (tp,) if typing.get_origin(tp) in (list, dict) else typing.get_args(tp) or (tp,)
        if float in args:
            out.append(f.name)
    return out


FLOAT_KEYS = [f"{s}.{k}" for s, cls in SECTIONS.items() for k in _float_fields(cls)]


def test_every_section_has_float_fields_listed() -> None:
    assert {"train.lr", "train.weight_decay", "train.grad_clip", "model.dropout"} <= set(FLOAT_KEYS)


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", ".nan", ".inf", "NaN"])
def test_non_finite_numbers_are_refused_everywhere(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"'{key}' = .* is not a finite number"):
        load_config(None, [f"{key}={value}"])


def test_non_finite_in_yaml_file_names_file_and_key(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  lr: .nan\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: config key 'train\.lr' = nan"):
        load_config(p)


@pytest.mark.parametrize(
    ("override", "where"),
    [
        ("finetune.cwola_fractions=[.nan, 0.2]", "finetune.cwola_fractions[0]"),
        ("objective.params={temperature: .inf}", "objective.params.temperature"),
        ("objective.params={augment: {smear: {p: .nan}}}", "objective.params.augment.smear.p"),
    ],
)
def test_non_finite_inside_lists_and_mappings(override: str, where: str) -> None:
    with pytest.raises(ConfigError, match=rf"'{re.escape(where)}' = .*not a finite number"):
        load_config(None, [override])


def _params_classes() -> list[tuple[str, str, type]]:
    out = [("objective", n, o.Params) for n, o in OBJECTIVES.items()]
    return out + [("tokenizer", n, cls) for n, cls in TOKENIZERS.items()]


@pytest.mark.parametrize(
    ("kind", "name", "key"),
    [(k, n, f) for k, n, cls in _params_classes() for f in _float_fields(cls)],
)
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_params_dataclasses_refuse_non_finite(kind: str, name: str, key: str, value: float) -> None:
    build = make_params if kind == "objective" else tokenizer_params
    with pytest.raises(ConfigError, match=rf"objective\.params\.{key}' = .*not a finite"):
        build(name, {key: value})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"proj_dim": 0}, "proj_dim' = 0 is out of range"),
        ({"vicreg_var": -1.0}, "vicreg_var' = -1.0 is out of range"),
    ],
)
def test_contrastive_params_ranges(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_params("contrastive", params)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.seed=-1", "'train.seed' = -1 is out of range"),
        ("train.seed=4294967296", "'train.seed' = 4294967296 is out of range"),
        ("train.warmup=inf", "'train.warmup' = inf is not a finite number"),
        ("train.momentum=nan", "'train.momentum' = nan is not a finite number"),
    ],
)
def test_more_numeric_cases(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


# ---- the config file itself ----


def _write(tmp_path: Path, name: str, content: bytes | str | None) -> Path:
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    elif isinstance(content, str):
        p.write_text(content)
    return p


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("latin1.yaml", "train:\n  lr: 1e-3  # \xe9t\xe9\n".encode("latin-1"), "not UTF-8 text"),
        ("binary.yaml", b"\x89HDF\r\n\x1a\n\x00\x00\xff", "not UTF-8 text"),
        ("null.yaml", "data:\n  train: x\ntrain: null\n", "null.yaml: config section 'train'"),
        ("empty.yaml", "", "empty.yaml: the config file is empty"),
        ("comments.yaml", "# nothing here\n", "comments.yaml: the config file is empty"),
        ("list.yaml", "- train\n- data\n", "list.yaml: .*got a YAML list"),
        ("scalar.yaml", "train\n", "scalar.yaml: .*got a YAML str"),
        (
            "twice.yaml",
            "train:\n  lr: 1.0\n  lr: 2.0\n",
            "twice.yaml: not valid YAML .*given twice",
        ),
        ("section.yaml", "train: 5\n", "section.yaml: config section 'train' must be a mapping"),
    ],
)
def test_bad_config_files(tmp_path: Path, name: str, content: bytes | str, message: str) -> None:
    p = _write(tmp_path, name, content)
    with pytest.raises(ConfigError, match=message):
        load_config(p)


def test_directory_as_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory, not a file"):
        load_config(tmp_path)


def test_fifo_and_link_loop_as_config(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.yaml")
    with pytest.raises(ConfigError, match="named pipe"):
        load_config(tmp_path / "fifo.yaml")  # must not block
    os.symlink(tmp_path / "b.yaml", tmp_path / "a.yaml")
    os.symlink(tmp_path / "a.yaml", tmp_path / "b.yaml")
    with pytest.raises(ConfigError, match="symbolic link loop"):
        load_config(tmp_path / "a.yaml")


def test_huge_file_as_config(tmp_path: Path) -> None:
    p = tmp_path / "data.yaml"
    with open(p, "wb") as f:
        f.truncate(11 * 2**20)
    with pytest.raises(ConfigError, match="too large for a YAML config file"):
        load_config(p)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe base: x\n", "not UTF-8 text"),
        (b"", "the study config file is empty"),
        (b"base: x\narms: []\nbudget: null\n", "config section 'budget' is empty"),
        (b"base: x\nseeds: [-1]\n", "'seeds' holds -1, below the minimum 0"),
        (b"base: x\nbudget: {lr: .nan}\n", "'budget.lr' = nan is not a finite number"),
        (b"base: x\npretrain: {seed: -1}\n", "'pretrain.seed' = -1 is out of range"),
    ],
)
def test_bad_study_config_files(tmp_path: Path, content: bytes, message: str) -> None:
    p = _write(tmp_path, "study.yaml", content)
    with pytest.raises(ConfigError, match=message):
        load_study_config(p)
    with pytest.raises(ConfigError, match="is a directory"):
        load_study_config(tmp_path)


def test_defaults_still_load() -> None:
    assert isinstance(load_config(None), Config)


# ---- through the command line: one line, exit 2, nothing trained ----


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("train.lr=nan", "train.lr"),
        ("train.weight_decay=nan", "train.weight_decay"),
        ("train.lr=inf", "train.lr"),
        ("train.grad_clip=nan", "train.grad_clip"),
        ("train.seed=-1", "train.seed"),
    ],
)
def test_cli_refuses_before_training(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    override: str,
    needle: str,
) -> None:
    write_synthetic_shards(tmp_path / "train", n=64)
    cfg = tiny_config(tmp_path / "c.yaml", tmp_path / "train", steps=2)
    run = tmp_path / "run"
    code, _, err = run_cli(
        ["finetune", "--config", str(cfg), "--init", "none", "--set", override, "--out", str(run)],
        monkeypatch,
        capsys,
    )
    assert_one_error_line(code, err, needle, "finite" if "seed" not in needle else "range")
    assert_no_checkpoint(run)
    assert not run.exists()


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (b"\xff\xfe\x00train: 1\n", ("not UTF-8",)),
        (b"train: null\n", ("c.yaml", "'train'", "null")),
        (b"", ("c.yaml", "empty")),
        (b"- a\n", ("c.yaml", "list")),
    ],
)
def test_cli_bad_config_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
    needles: tuple[str, ...],
) -> None:
    p = _write(tmp_path, "c.yaml", content)
    args = ["pretrain", "--config", str(p), "--out", str(tmp_path / "run")]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert_one_error_line(code, err, *needles)
    code, _, err = run_cli(
        ["pretrain", "--config", str(tmp_path), "--out", str(tmp_path / "run")], monkeypatch, capsys
    )
    assert_one_error_line(code, err, "is a directory")
