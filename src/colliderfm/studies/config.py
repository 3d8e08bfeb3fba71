"""Typed study configuration: which arms, label counts, seeds and training budget to sweep.

A study YAML names a base fine-tuning recipe plus overrides, and the sweep around it::

    base: configs/finetune/top_tagging.yaml
    overrides: [model.preset=small, train.batch_size=128]
    arms:
      - {name: scratch, init: none, mode: full}
      - {name: clr-full, init: runs/clr, mode: full}
      - {name: mpm-full, init: runs/mpm, mode: full, n_train: [1000]}  # only at some N
    n_train: [100, 300, 1000, 3000]
    seeds: [0, 1, 2]
    seeds_by_n: {3000: [0]}    # optional: other seeds at some N (e.g. one at the costliest)
    budget: {mode: converge, eval_every: 50, patience: 5, max_epochs: 50, min_steps: 200}
    val: data/default/toptag/val
    test: data/default/toptag/test
    grid: {finetune.backbone_lr_mult: [0.1, 1.0]}
    grid_from: {3000: 1000}    # optional: at 3000, each arm runs only its setting chosen at 1000

``budget.mode`` is ``converge`` (the default: every point of every arm trains with early
stopping on validation AUC, at most ``max_epochs`` epochs of its N, at least ``min_steps``
steps, optionally capped at ``max_steps``) or ``fixed`` (every point runs exactly ``max_steps``
steps; reports call it "compute-matched"). ``grid`` (study-wide, scratch included, or per arm)
lists values of fine-tuning settings; every combination is trained and the one with the best
mean validation AUC over seeds is chosen per (arm, N). ``grid_from: {N: M}`` trains the grid at M
only: at N every arm runs the setting its validation chose at M (useful where N is costly and
run with one seed, whose own choice would rest on a single validation AUC).

An arm may name its own fine-tuning recipe (``base: configs/finetune/events_sgd.yaml``, e.g. an
SGD variant); every arm must still train on the same ``data.train``. The same code runs jets and
whole events (``data.features: event``, ``model.name: objt``, masked_id checkpoints as arms).

Unknown keys, wrong types and out-of-range values raise :class:`ConfigError` naming the key
(``arms[1].mode``, ``budget.max_steps``, ...), before any training starts.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from colliderfm.config import SEED_MAX, _build, parse_override, read_config_file
from colliderfm.errors import ConfigError
from colliderfm.finetune.modes import MODES

#: the data-efficiency default: 1e2 .. 1e5 labelled jets (or events) in half-decade steps
DEFAULT_N_TRAIN: tuple[int, ...] = (100, 300, 1_000, 3_000, 10_000, 30_000, 100_000)
#: sections of the fine-tuning config; ``--set train.lr=...`` on a study goes to the base config
BASE_SECTIONS = ("data", "model", "objective", "finetune", "train")
KINDS = ("data-efficiency", "scaling", "compute")
_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


@dataclass
class ArmConfig:
    """One arm of a study: an initialisation (``none``, a checkpoint directory or ``zoo:NAME``)
    and a fine-tuning mode (and optionally its own fine-tuning recipe ``base``, default: the
    study's). ``n_train`` (optional, a subset of the study's) restricts the arm to some label
    counts: a recipe screened at two N beside the arms that run the whole curve."""

    name: str = ""
    init: str = "none"
    mode: str = field(default="full", metadata={"choices": MODES})
    pretrain_size: int | None = field(default=None, metadata={"range": (1, None)})
    base: str | None = None
    overrides: list[str] = field(default_factory=list)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    n_train: list[int] = field(default_factory=list)


#: the budget modes: trained to convergence (early stopping) or a fixed number of steps
BUDGET_MODES = ("converge", "fixed")
#: steps of a ``fixed`` budget when ``max_steps`` is not given
FIXED_STEPS = 200
#: below this many validation examples, early stopping on validation AUC is mostly noise
MIN_VAL = 5000
#: fine-tuning keys a grid may not set: the point (init, mode, N, seed) and the budget own them
POINT_KEYS = (
    "finetune.init",
    "finetune.mode",
    "finetune.n_train",
    "train.seed",
    "train.max_steps",
    "train.epochs",
    "train.steps_per_epoch",
    "train.early_stopping",
    "train.patience",
    "data.train",
    "data.val",
    "data.test",
)


@dataclass
class BudgetConfig:
    """The training budget of every point (identical for every arm, scratch included).

    ``mode: converge`` (default): early stopping on validation AUC after ``patience``
    validations without improvement, validation every ``eval_every`` steps, at most
    ``max_epochs`` epochs of the point's N (never fewer than ``min_steps`` steps; ``max_steps``,
    when given, caps that), the learning-rate schedule defined over that maximum; the best
    validation checkpoint is tested. ``mode: fixed`` ("compute-matched"): exactly
    ``max_steps`` steps (default 200), checkpoint chosen by ``select``.
    """

    mode: str = field(default="converge", metadata={"choices": BUDGET_MODES})
    max_steps: int | None = field(default=None, metadata={"range": (1, None)})
    eval_every: int = field(default=50, metadata={"range": (1, None)})
    patience: int = field(default=5, metadata={"range": (1, None)})
    max_epochs: float = field(default=50.0, metadata={"range": (0.0, None)})
    min_steps: int = field(default=200, metadata={"range": (1, None)})
    batch_size: int | None = field(default=None, metadata={"range": (1, None)})
    lr: float | None = field(default=None, metadata={"range": (0.0, None)})
    select: str = field(default="val_auc", metadata={"choices": ("val_auc", "val_loss", "last")})

    def steps_for(self, n_train: int, batch_size: int) -> int:
        """The step budget of a point: what it runs (``fixed``) or may run at most (``converge``).

        Args:
            n_train: the point's labelled examples.
            batch_size: its batch size.

        Returns:
            ``max_steps`` (default 200) in ``fixed`` mode; in ``converge`` mode
            ``max(min_steps, ceil(max_epochs * n_train / batch_size))``, capped at ``max_steps``
            when that is given.
        """
        if self.mode == "fixed":
            return self.max_steps or FIXED_STEPS
        steps = max(self.min_steps, math.ceil(self.max_epochs * n_train / batch_size))
        return min(steps, self.max_steps) if self.max_steps is not None else steps


@dataclass
class PretrainRecipeConfig:
    """Scaling studies: pretrain on nested subsets of one data set (optional).

    Each size in ``sizes`` gives an arm ``<name>-p<size>`` initialised from a backbone pretrained
    with ``config`` (+ ``overrides``) on the first ``size`` jets (or events) of a seeded
    permutation of ``data`` (so smaller subsets are contained in larger ones).
    """

    config: str | None = None
    data: str | None = None
    sizes: list[int] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    name: str = "pretrained"
    mode: str = field(default="full", metadata={"choices": MODES})
    seed: int = field(default=0, metadata={"range": (0, SEED_MAX)})


@dataclass
class StudyConfig:
    """A whole study: base recipe, arms, label counts, seeds, budget, test set."""

    base: str = ""
    overrides: list[str] = field(default_factory=list)
    arms: list[ArmConfig] = field(default_factory=list)
    n_train: list[int] = field(default_factory=lambda: list(DEFAULT_N_TRAIN))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    seeds_by_n: dict[int, list[int]] = field(default_factory=dict)
    grid_from: dict[int, int] = field(default_factory=dict)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    val: str | None = None
    test: str | None = None
    grid: dict[str, list[Any]] = field(default_factory=dict)
    test_max: int | None = field(default=None, metadata={"range": (1, None)})
    pretrain: PretrainRecipeConfig = field(default_factory=PretrainRecipeConfig)
    keep_checkpoints: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON-serialisable).

        Returns:
            The study config as a dict.
        """
        return dataclasses.asdict(self)

    def seeds_for(self, n_train: int) -> list[int]:
        """The seeds run at one label count: ``seeds_by_n[N]`` where given, else ``seeds``.

        Args:
            n_train: the label count.

        Returns:
            The seeds.
        """
        return self.seeds_by_n.get(n_train, self.seeds)


def _int_list(value: Any, key: str, lo: int | None = None, hi: int | None = None) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"config key '{key}' must be a non-empty list of integers, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, float) and v.is_integer():  # 1e3 in YAML
            v = int(v)
        if isinstance(v, str):
            try:
                f = float(v)
            except ValueError:
                f = float("nan")
            if f.is_integer():
                v = int(f)
        if not isinstance(v, int) or isinstance(v, bool):
            raise ConfigError(f"config key '{key}' must hold integers, got {v!r}")
        if lo is not None and v < lo:
            raise ConfigError(f"config key '{key}' holds {v}, below the minimum {lo}")
        if hi is not None and v > hi:
            raise ConfigError(f"config key '{key}' holds {v}, above the maximum {hi}")
        out.append(v)
    if len(set(out)) != len(out):
        raise ConfigError(f"config key '{key}' holds duplicates: {out}")
    return out


def _seeds_by_n(value: Any, n_train: list[int]) -> dict[int, list[int]]:
    """Validate ``seeds_by_n``: ``{N: [seed, ...]}`` for label counts of ``n_train``.

    Args:
        value: the parsed mapping (None: every N runs ``seeds``).
        n_train: the study's label counts.

    Returns:
        ``{N: seeds}``.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(
            f"config key 'seeds_by_n' must map label counts to seed lists, got {value!r}"
        )
    out: dict[int, list[int]] = {}
    for k, v in value.items():
        n = _int_list([k], "seeds_by_n", lo=1)[0]
        if n not in n_train:
            raise ConfigError(f"config key 'seeds_by_n': {n} is not one of n_train {n_train}")
        out[n] = _int_list(v, f"seeds_by_n.{n}", lo=0, hi=SEED_MAX)
    return out


def _grid_from(value: Any, n_train: list[int]) -> dict[int, int]:
    """Validate ``grid_from``: ``{N: M}``, at N each arm runs only the setting chosen at M < N.

    An entry whose N is not run (``n_train`` narrowed by ``--set``, as in a screening stage) is
    kept and has no effect; an N that is run needs its M among ``n_train`` too.

    Args:
        value: the parsed mapping (None: every N runs the whole grid).
        n_train: the study's label counts.

    Returns:
        ``{N: M}``.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(
            "config key 'grid_from' must map a label count to the smaller label count whose "
            f"grid choice it reuses, got {value!r}"
        )
    out: dict[int, int] = {}
    for k, v in value.items():
        n = _int_list([k], "grid_from", lo=1)[0]
        m = _int_list([v], f"grid_from.{n}", lo=1)[0]
        if m >= n:
            raise ConfigError(
                f"config key 'grid_from.{n}' = {m}: the setting must come from a smaller N"
            )
        if n in n_train and m not in n_train:
            raise ConfigError(
                f"config key 'grid_from.{n}' = {m}: N = {m} is not run (n_train {n_train}), so "
                f"there is no choice at {m} for N = {n} to reuse"
            )
        if m in value or str(m) in value:
            raise ConfigError(
                f"config key 'grid_from.{n}' = {m}: N = {m} itself takes its setting from "
                "another N; name the N where the grid is trained"
            )
        out[n] = m
    return out


def _str_list(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"config key '{key}' must be a list of 'section.key=value' strings")
    for v in value:
        try:
            parse_override(v)  # early syntax check
        except ConfigError as exc:
            raise ConfigError(f"config key '{key}': {exc}") from exc
    return list(value)


def _grid(value: Any, key: str) -> dict[str, list[Any]]:
    """Validate a grid: ``{section.key: [value, ...]}`` over fine-tuning settings.

    Args:
        value: the parsed grid (None: no grid).
        key: config key, for errors (``grid``, ``arms[1].grid``).

    Returns:
        The grid (keys in the given order).
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"config key '{key}' must map 'section.key' to a list of values")
    out: dict[str, list[Any]] = {}
    for k, vals in value.items():
        name = f"{key}.{k}"
        parts = str(k).split(".")
        if len(parts) < 2 or parts[0] not in BASE_SECTIONS:
            raise ConfigError(
                f"config key '{name}' must name a fine-tuning setting "
                f"({', '.join(s + '.<key>' for s in BASE_SECTIONS)})"
            )
        if k in POINT_KEYS:
            raise ConfigError(
                f"config key '{name}': {k} is set by the point or the budget, not by a grid"
            )
        if not isinstance(vals, list) or not vals:
            raise ConfigError(f"config key '{name}' must be a non-empty list of values")
        if any(isinstance(v, (dict, list)) for v in vals):
            raise ConfigError(f"config key '{name}' must hold plain values, got {vals!r}")
        if len({json.dumps(v) for v in vals}) != len(vals):
            raise ConfigError(f"config key '{name}' holds duplicates: {vals}")
        out[str(k)] = list(vals)
    return out


#: settings a ``mode: linear`` arm never reads: its L-BFGS probe runs no training loop (no
#: optimizer, steps or learning rates), so a study-wide grid over them would only repeat it
PROBE_IGNORES = (
    "train.",
    "finetune.backbone_lr_mult",
    "finetune.head_lr_mult",
    "finetune.lp_fraction",
)


def arm_grid(study: StudyConfig, arm: ArmConfig) -> dict[str, list[Any]]:
    """The grid an arm is trained over: the study's (every arm, scratch included), then the
    arm's own (which wins for the keys it names).

    A linear-probe arm (``mode: linear``) leaves out the study-wide keys its probe never reads
    (:data:`PROBE_IGNORES`: training-loop settings), so it is not fitted once per value of
    them; its own grid applies as given.

    Args:
        study: the study.
        arm: the arm.

    Returns:
        ``{section.key: [values]}``; empty without a grid.
    """
    shared = study.grid
    if arm.mode == "linear":
        shared = {k: v for k, v in shared.items() if not k.startswith(PROBE_IGNORES)}
    return {**shared, **arm.grid}


def grid_settings(grid: dict[str, list[Any]]) -> list[tuple[tuple[str, Any], ...]]:
    """Every combination of a grid's values, in grid order.

    Args:
        grid: ``{section.key: [values]}``.

    Returns:
        One ``((key, value), ...)`` tuple per combination; ``[()]`` without a grid.
    """
    keys = list(grid)
    return [tuple(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def study_from_dict(data: dict[str, Any]) -> StudyConfig:
    """Validate a nested dict into a :class:`StudyConfig`.

    Args:
        data: the parsed YAML (with overrides applied).

    Returns:
        The validated study config.
    """
    if not isinstance(data, dict):
        raise ConfigError("a study config must be a mapping")
    data = dict(data)
    arms_raw = data.pop("arms", [])
    n_train = data.pop("n_train", None)
    seeds = data.pop("seeds", None)
    seeds_by_n = data.pop("seeds_by_n", None)
    grid_from = data.pop("grid_from", None)
    overrides = data.pop("overrides", None)
    pre_raw = data.pop("pretrain", None) or {}
    grid_raw = data.pop("grid", None)
    cfg: StudyConfig = _build(StudyConfig, data, "")
    cfg.grid = _grid(grid_raw, "grid")
    cfg.overrides = _str_list(overrides, "overrides")
    if n_train is not None:
        cfg.n_train = _int_list(n_train, "n_train", lo=1)
    if seeds is not None:
        cfg.seeds = _int_list(seeds, "seeds", lo=0, hi=SEED_MAX)
    cfg.seeds_by_n = _seeds_by_n(seeds_by_n, cfg.n_train)
    cfg.grid_from = _grid_from(grid_from, cfg.n_train)
    if not isinstance(pre_raw, dict):
        raise ConfigError("config key 'pretrain' must be a mapping")
    pre_raw = dict(pre_raw)
    sizes = pre_raw.pop("sizes", None)
    pre_over = pre_raw.pop("overrides", None)
    cfg.pretrain = _build(PretrainRecipeConfig, pre_raw, "pretrain")
    if sizes is not None:
        cfg.pretrain.sizes = _int_list(sizes, "pretrain.sizes", lo=1)
    cfg.pretrain.overrides = _str_list(pre_over, "pretrain.overrides")
    if not isinstance(arms_raw, list):
        raise ConfigError("config key 'arms' must be a list of {name, init, mode} mappings")
    arms: list[ArmConfig] = []
    for i, raw in enumerate(arms_raw):
        key = f"arms[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"config key '{key}' must be a mapping with name, init and mode")
        raw = dict(raw)
        arm_over = raw.pop("overrides", None)
        arm_grid_raw = raw.pop("grid", None)
        arm_n = raw.pop("n_train", None)
        arm: ArmConfig = _build(ArmConfig, raw, key)
        if arm_n is not None:
            arm.n_train = _int_list(arm_n, f"{key}.n_train", lo=1)
            extra = [n for n in arm.n_train if n not in cfg.n_train]
            if extra:
                raise ConfigError(
                    f"config key '{key}.n_train': {extra} not among the study's n_train "
                    f"{cfg.n_train}"
                )
        arm.overrides = _str_list(arm_over, f"{key}.overrides")
        arm.grid = _grid(arm_grid_raw, f"{key}.grid")
        if not arm.name:
            raise ConfigError(f"config key '{key}.name' is missing (every arm needs a name)")
        if not _NAME.match(arm.name):
            raise ConfigError(
                f"config key '{key}.name' = {arm.name!r} may only hold letters, digits and . _ + -"
            )
        arms.append(arm)
    names = [a.name for a in arms]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"config key 'arms' has duplicate names: {', '.join(dup)}")
    cfg.arms = arms
    for i, a in enumerate(arms):
        for n, m in cfg.grid_from.items():
            if a.n_train and n in a.n_train and m not in a.n_train:
                raise ConfigError(
                    f"config key 'arms[{i}].n_train': grid_from takes N = {n}'s setting from "
                    f"N = {m}, which arm {a.name!r} does not run"
                )
    if not cfg.base:
        raise ConfigError("config key 'base' is missing (the fine-tuning YAML to start from)")
    if cfg.pretrain.sizes and cfg.pretrain.config is None:
        raise ConfigError("config key 'pretrain.config' is missing (needed by pretrain.sizes)")
    if not cfg.arms and not cfg.pretrain.sizes:
        raise ConfigError("config key 'arms' is empty (give at least one arm)")
    _check_budget(cfg)
    return cfg


def _check_budget(cfg: StudyConfig) -> None:
    """Refuse budget settings that contradict the mode or a grid.

    Args:
        cfg: the study.

    Raises:
        ConfigError: ``budget.select`` other than ``val_auc`` in ``converge`` mode, or a grid
            over a setting the budget fixes (``train.lr`` with ``budget.lr``, ...).
    """
    b = cfg.budget
    if b.mode == "converge" and b.select != "val_auc":
        raise ConfigError(
            f"config key 'budget.select' = {b.select!r}: budget.mode=converge always early-stops "
            "on and keeps the best validation AUC (use budget.mode=fixed to select otherwise)"
        )
    fixed = {"train.lr": b.lr, "train.batch_size": b.batch_size}
    grids = [("grid", cfg.grid), *((f"arms[{i}].grid", a.grid) for i, a in enumerate(cfg.arms))]
    for where, grid in grids:
        for k in grid:
            if fixed.get(k) is not None:
                raise ConfigError(
                    f"config key '{where}.{k}': the budget already sets {k} "
                    f"(budget.{k.split('.')[1]}); drop one of them"
                )


def split_overrides(items: list[str] | None) -> tuple[list[str], list[str]]:
    """Split ``--set`` items into study keys and base fine-tuning-config keys.

    ``train.lr=1e-3`` (a fine-tuning config section) goes to the base recipe of every point;
    ``n_train=[100,1000]`` or ``budget.max_steps=50`` change the study itself.

    Args:
        items: ``key=value`` strings.

    Returns:
        (study overrides, base overrides).
    """
    study: list[str] = []
    base: list[str] = []
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value")
        head = item.split("=", 1)[0].strip().split(".")[0]
        (base if head in BASE_SECTIONS else study).append(item)
    return study, base


def load_study_config(path: str | Path, overrides: list[str] | None = None) -> StudyConfig:
    """Load and validate a study YAML, applying ``--set`` overrides.

    Study keys are set directly (``seeds=[0,1,2]``, ``budget.max_steps=100``); keys of a
    fine-tuning config section (``train.lr=3e-4``) are appended to the study's ``overrides``.
    A relative ``base`` (study or arm) is looked up from the working directory, then next to the
    study YAML.

    Args:
        path: study YAML.
        overrides: ``key=value`` strings.

    Returns:
        The validated study config.
    """
    p = Path(path)
    data = read_config_file(p, "study config")
    study_sets, base_sets = split_overrides(overrides)
    for item in study_sets:
        key, raw = item.split("=", 1)
        parts = [k for k in key.strip().split(".") if k]
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a section")
        node[parts[-1]] = value
    cfg = study_from_dict(data)
    cfg.overrides = [*cfg.overrides, *base_sets]
    cfg.base = _resolve_base(cfg.base, p.parent, "base")
    for i, arm in enumerate(cfg.arms):
        if arm.base is not None:
            arm.base = _resolve_base(arm.base, p.parent, f"arms[{i}].base")
    return cfg


def _resolve_base(base: str, here: Path, key: str) -> str:
    """A fine-tuning YAML path: as given (from the working directory), else next to the study.

    Args:
        base: the path from the study config.
        here: directory of the study YAML.
        key: config key, for the error.

    Returns:
        The path that exists.
    """
    path = Path(base)
    if not path.is_file() and not path.is_absolute() and (here / path).is_file():
        return str(here / path)
    if not path.is_file():
        raise ConfigError(f"config key '{key}': {base} is not a file")
    return base
