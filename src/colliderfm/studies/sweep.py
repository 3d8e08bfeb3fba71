"""The sweep runner shared by every study: one fine-tuning run + test evaluation per point.

Running only: the results it produces are aggregated and written by
:mod:`colliderfm.studies.results`, and reported by :mod:`colliderfm.studies.report`.

Jets and whole events run through the same code (``data.features`` decides; reports then count
"events" instead of "jets").

A point is (arm, N_train, seed). Its run lives in ``DIR/points/<arm>-n<N>-s<seed>/run`` and its
result in ``.../metrics.json``, written atomically once the point is finished; a rerun skips
finished points and resumes an interrupted one from its ``run/last`` checkpoint. Every point
gets the same budget (steps, schedule, validation cadence, checkpoint selection), whatever its
initialisation: the from-scratch control is trained exactly like the pretrained arms.

The budget is translated into each point's fine-tuning config (:func:`point_config`):

* ``budget.mode: converge`` (default): ``train.early_stopping=val_auc``,
  ``train.patience=<patience>``, ``train.steps_per_epoch=<eval_every>`` (the validation cadence)
  and ``train.max_steps`` = at most ``max_epochs`` epochs of the point's N, never fewer than
  ``min_steps`` (:meth:`~colliderfm.studies.config.BudgetConfig.steps_for`); the cosine schedule
  runs over that maximum, the loop stops after ``patience`` validations without a better AUC and
  keeps the best-validation checkpoint, which is tested;
* ``budget.mode: fixed`` ("compute-matched"): exactly ``max_steps`` steps, the checkpoint picked
  by ``select``, never stopped early.

Linear-probe arms (``mode: linear``) take no training steps, so no budget applies to them: each
point fits the L-BFGS probe to convergence with its L2 strength chosen on validation
(:mod:`colliderfm.finetune.probe`). Their rows record ``steps`` 0, ``max_steps`` and ``epochs``
empty, ``lbfgs_iters``, ``probe_l2`` and the whole ``probe`` section, and a one-point curve
(step 0, the chosen strength's validation AUC). A linear point finished before the probe
existed (a few-step linear head) does not match its fingerprint and is refused, not mixed in.

With a ``grid``, a point (arm, N, seed) is trained once per grid setting (its directory gets a
``-g<hash>`` suffix); :func:`~colliderfm.studies.results.select_grid` then picks per (arm, N) the
setting with the best mean validation AUC over seeds, on validation only. At an N named by the
study's ``grid_from`` ({N: M}), the grid is not trained: once every other point is finished,
each arm runs only the setting chosen at M (:func:`carried_points`).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from colliderfm.config import Config, load_config
from colliderfm.data.features import feature_kind
from colliderfm.errors import ConfigError
from colliderfm.evaluate.baselines import simple_baselines
from colliderfm.evaluate.run import evaluate_checkpoint
from colliderfm.fileio import sha256_file, write_json
from colliderfm.recipes import run_finetune
from colliderfm.runtime import check_precision, resolve_device
from colliderfm.studies.config import (
    MIN_VAL,
    ArmConfig,
    StudyConfig,
    arm_grid,
    grid_settings,
)
from colliderfm.studies.results import (
    aggregate,
    previous_results,
    read_curve,
    select_grid,
    write_results,
)
from colliderfm.train.checkpoint import WEIGHTS, resolve
from colliderfm.train.logging import log


@dataclass(frozen=True)
class Point:
    """One fine-tuning run of a study."""

    arm: ArmConfig
    n_train: int
    seed: int
    setting: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> str:
        """Directory name ``<arm>-n<N>-s<seed>`` (``-g<hash>`` added for a grid setting)."""
        base = f"{self.arm.name}-n{self.n_train}-s{self.seed}"
        return f"{base}-g{setting_tag(self.setting)}" if self.setting else base

    @property
    def setting_overrides(self) -> list[str]:
        """The grid setting as ``section.key=value`` overrides."""
        return [f"{k}={json.dumps(v)}" for k, v in self.setting]


def setting_tag(setting: tuple[tuple[str, Any], ...]) -> str:
    """A short, stable name of a grid setting.

    Args:
        setting: ``((key, value), ...)``.

    Returns:
        8 hex digits of its hash.
    """
    blob = json.dumps([[k, v] for k, v in setting], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def make_points(
    arms: Sequence[ArmConfig],
    n_train: Sequence[int],
    seeds: Sequence[int],
    study: StudyConfig | None = None,
) -> list[Point]:
    """All (arm, N, seed[, grid setting]) points, ordered by N, then seed, then arm (an arm
    with its own ``n_train`` only at those N).

    Running every arm at a given (N, seed) next to each other means an interrupted sweep still
    leaves complete comparisons behind.

    Args:
        arms: study arms.
        n_train: labelled-set sizes.
        seeds: seeds (at an N the study's ``seeds_by_n`` names: those instead).
        study: the study, whose ``grid`` (and each arm's) multiplies the points and whose
            ``seeds_by_n`` sets the seeds per N; None: no grid, ``seeds`` at every N.

    Returns:
        The points.
    """
    out = []
    for n in n_train:
        for s in study.seeds_by_n.get(n, seeds) if study is not None else seeds:
            for a in arms:
                if a.n_train and n not in a.n_train:
                    continue
                grid = arm_grid(study, a) if study is not None else dict(a.grid)
                out += [Point(a, n, s, g) for g in grid_settings(grid)]
    return out


def point_config(study: StudyConfig, point: Point) -> Config:
    """The resolved fine-tuning config of one point.

    Order of precedence (last wins): base YAML (the arm's ``base`` if it has one, else the
    study's), study ``overrides``, the arm's ``overrides``, the point's grid setting, the
    study's ``val``, then the point itself (init, mode, N, seed) and the study budget, so no arm
    can change the budget. The budget keys (``train.max_steps``, ``train.steps_per_epoch``,
    ``train.early_stopping``, ``train.patience``) are set for every arm alike.

    Args:
        study: the study.
        point: the point.

    Returns:
        The fine-tuning config (``data.test`` cleared: the study evaluates separately).
    """
    b = study.budget
    sets = [
        *study.overrides,
        *point.arm.overrides,
        *point.setting_overrides,
        *([f"data.val={study.val}"] if study.val is not None else []),
        f"finetune.init={point.arm.init}",
        f"finetune.mode={point.arm.mode}",
        f"finetune.n_train={point.n_train}",
        f"train.seed={point.seed}",
    ]
    if b.mode == "fixed":
        monitor = "null" if b.select == "last" else b.select
        sets += [
            f"train.max_steps={b.steps_for(point.n_train, 1)}",
            f"train.steps_per_epoch={b.eval_every}",
            f"train.early_stopping={monitor}",
            "train.patience=1000000000",  # select the best checkpoint, never stop early
            "data.test=null",
        ]
    else:
        sets.append("data.test=null")
    if b.batch_size is not None:
        sets.append(f"train.batch_size={b.batch_size}")
    if b.lr is not None:
        sets.append(f"train.lr={b.lr}")
    try:
        if b.mode == "fixed":
            return load_config(point.arm.base or study.base, sets)
        # converge: the step maximum follows from N and the point's batch size
        batch = load_config(point.arm.base or study.base, sets).train.batch_size
        sets += [
            f"train.max_steps={b.steps_for(point.n_train, batch)}",
            f"train.steps_per_epoch={b.eval_every}",
            "train.early_stopping=val_auc",
            f"train.patience={b.patience}",
        ]
        return load_config(point.arm.base or study.base, sets)
    except ConfigError as exc:
        raise ConfigError(f"arm '{point.arm.name}': {exc}") from exc


def _non_default(d: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The entries of a nested config dict that differ from the defaults."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        ref = defaults.get(k)
        if isinstance(v, dict) and isinstance(ref, dict):
            sub = _non_default(v, ref)
            if sub:
                out[k] = sub
        elif k not in defaults or v != ref:
            out[k] = v
    return out


#: what a linear-mode point runs, part of its fingerprint (points of the old few-step linear
#: head, trained before it, do not match)
LINEAR_PROBE = "linear: lbfgs probe"


_WEIGHT_HASHES: dict[tuple[str, int, int], str] = {}


def init_weights_id(init: str) -> str | None:
    """What an arm's checkpoint holds: the first 16 hex digits of its weights' SHA-256.

    A finished point is reused only while its init still holds the weights it was trained
    from: a checkpoint path such as ``zoo-work/NAME/run/last`` moves on as pretraining goes on.

    Args:
        init: ``none``, a checkpoint directory or ``zoo:NAME``.

    Returns:
        The digest; None for ``none`` or a path that holds no checkpoint.
    """
    from colliderfm.errors import ColliderFMError
    from colliderfm.zoo import checkpoint_path

    if init == "none":
        return None
    try:
        f = resolve(checkpoint_path(init, verify=False)) / WEIGHTS
        st = f.stat()
    except (ColliderFMError, OSError):
        return None
    key = (str(f.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _WEIGHT_HASHES:
        _WEIGHT_HASHES[key] = sha256_file(f)[:16]
    return _WEIGHT_HASHES[key]


def _fingerprint(cfg: Config, test: str, test_max: int | None) -> str:
    """Hash of what a point was run with: only settings that differ from the defaults count, so
    a setting added to the package later (with a default) does not invalidate finished points."""
    settings = _non_default(cfg.to_dict(), Config().to_dict())
    parts: list[Any] = [settings, test, test_max]
    if cfg.finetune.mode == "linear":  # the converged L-BFGS probe, not the old few-step head
        parts.append(LINEAR_PROBE)
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_point(study: StudyConfig, point: Point, pdir: Path, test: str) -> dict[str, Any]:
    """Fine-tune and evaluate one point; write ``pdir/metrics.json`` atomically.

    Args:
        study: the study.
        point: the point.
        pdir: the point's directory.
        test: test data path.

    Returns:
        The point's result row.
    """
    cfg = point_config(study, point)
    fp = _fingerprint(cfg, test, study.test_max)
    run_dir = pdir / "run"
    resume = (run_dir / "last").exists()
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)  # a start that never reached its first checkpoint
    t0 = time.perf_counter()
    summary = run_finetune(cfg, run_dir, resume=resume, progress=False)
    t1 = time.perf_counter()
    metrics = evaluate_checkpoint(
        run_dir,
        test,
        pdir / "test_metrics.json",
        max_jets=study.test_max,
        plots=False,
        device=cfg.train.device,  # where the point trained
    )
    t2 = time.perf_counter()
    rej = metrics.get("rejection", {})
    best = summary.get("best") or {}
    steps = summary.get("steps")
    used = summary.get("n_train") or point.n_train
    linear = point.arm.mode == "linear"  # no steps: the L-BFGS probe (no budget applies)
    row: dict[str, Any] = {
        "key": point.key,
        "arm": point.arm.name,
        "init": point.arm.init,
        "mode": point.arm.mode,
        "pretrain_size": point.arm.pretrain_size,
        "n_train": point.n_train,
        "seed": point.seed,
        "setting": dict(point.setting),
        "budget_mode": study.budget.mode,
        "max_steps": None if linear else cfg.train.max_steps,
        "epochs": round(steps * cfg.train.batch_size / used, 3) if steps and used else None,
        "auc": metrics.get("auc"),
        "accuracy": metrics.get("accuracy"),
        "rej0.3": rej.get("0.3"),
        "rej0.5": rej.get("0.5"),
        "sic0.3": metrics.get("sic", {}).get("0.3"),
        "sic0.5": metrics.get("sic", {}).get("0.5"),
        "n_test": metrics.get("n"),
        "n_train_used": summary.get("n_train"),
        "steps": steps,
        "best_step": best.get("step"),
        "best_val_auc": best.get("val_auc"),
        "train_wall_s": round(t1 - t0, 2),
        "eval_wall_s": round(t2 - t1, 2),
        "resumed": resume,
        "fingerprint": fp,
        "init_weights": init_weights_id(point.arm.init),
        "curve": read_curve(run_dir),
    }
    if linear:
        row.update(
            lbfgs_iters=summary.get("lbfgs_iters"),
            probe_l2=summary.get("probe_l2"),
            probe=summary.get("probe"),
        )
    if not study.keep_checkpoints:
        for f in ("model.safetensors", "last", "lp"):
            target = run_dir / f
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    write_json(row, pdir / "metrics.json")
    return row


def data_unit(features: str) -> str:
    """What one example is called in logs, reports and plots.

    Args:
        features: ``data.features`` of the fine-tuning config.

    Returns:
        ``"events"`` for the event feature set, else ``"jets"``.
    """
    return feature_kind(features)


def _init_path(name: str, init: str) -> Path:
    """The checkpoint directory of an arm's init (``zoo:NAME`` resolved and verified).

    Args:
        name: arm name (for the error).
        init: checkpoint directory or ``zoo:NAME``.

    Returns:
        The directory (not checked to exist for a path).

    Raises:
        ConfigError: an unknown or corrupted zoo entry.
    """
    from colliderfm.errors import ColliderFMError
    from colliderfm.zoo import checkpoint_path

    try:
        return checkpoint_path(init)
    except ColliderFMError as exc:
        raise ConfigError(f"arm '{name}': {exc}") from exc


def _check_arm(name: str, init: str, cfg: Config) -> None:
    """Refuse a pretrained arm whose checkpoint cannot initialise this fine-tuning config.

    Args:
        name: arm name (for the error).
        init: checkpoint directory or ``zoo:NAME``.
        cfg: the arm's fine-tuning config.

    Raises:
        ConfigError: not a checkpoint, another backbone or preset, or other input features.
    """
    from colliderfm.data.features import n_features
    from colliderfm.errors import ColliderFMError
    from colliderfm.finetune.classifier import pretrained_backbone_spec

    try:
        pretrained_backbone_spec(init, cfg, n_features(cfg.data.features))
    except ColliderFMError as exc:
        raise ConfigError(f"arm '{name}': {exc}") from exc


def schedule(cfg: Config) -> str:
    """One line describing a point's optimizer and schedule (for the report).

    Args:
        cfg: a point's fine-tuning config.

    Returns:
        e.g. ``sgd (momentum 0.9), batch 256, lr 0.01 -> 0.0001 (cosine, warm-up 0), ...``.
    """
    t = cfg.train
    opt = f"sgd (momentum {t.momentum:g})" if t.optimizer == "sgd" else t.optimizer
    return (
        f"{opt}, batch {t.batch_size}, lr {t.lr:g} -> {t.min_lr:g} (cosine, warm-up "
        f"{t.warmup:g}), weight decay {t.weight_decay:g}"
    )


def _labelled_counts(path: str) -> dict[int, int]:
    from colliderfm.data.subset import read_labels

    labels = read_labels(path)
    vals, counts = np.unique(labels[labels >= 0], return_counts=True)
    return {int(v): int(c) for v, c in zip(vals, counts, strict=True)}


def check_points(study: StudyConfig, points: list[Point]) -> tuple[str, dict[str, Any]]:
    """Validate every point's config and the data before any training starts.

    Args:
        study: the study.
        points: the points to run.

    Returns:
        (test data path, facts about the data for the report).
    """
    from colliderfm.data.stream import check_feature_set

    cfgs: dict[str, Config] = {}
    for p in points:  # every point's config is resolved (grid settings included) ...
        cfg = point_config(study, p)
        cfgs.setdefault(p.arm.name, cfg)  # ... the checks use each arm's first
    for cfg in cfgs.values():  # a missing device is one error line before the study folder
        check_precision(cfg.train.precision, resolve_device(cfg.train.device))
    first = next(iter(cfgs.values()))
    if first.data.train is None:
        raise ConfigError("data.train is not set in the base config (or give --set data.train=)")
    test = study.test or first.data.test
    if test is None:
        raise ConfigError("config key 'test' is missing (and the base config has no data.test)")
    if not Path(test).exists():
        raise ConfigError(f"config key 'test': {test} does not exist")
    unit = data_unit(first.data.features)
    converge = study.budget.mode == "converge"
    if converge and first.data.val is None:
        raise ConfigError(
            "budget.mode=converge needs a validation set for early stopping: set 'val' in the "
            "study (or data.val in the base config), or use budget.mode=fixed"
        )
    if first.data.val is not None:
        if not Path(first.data.val).exists():
            raise ConfigError(f"the validation set {first.data.val} does not exist")
        if Path(first.data.val).resolve() == Path(test).resolve():
            raise ConfigError(
                f"the validation set and the test set are the same ({test}): checkpoints and "
                "grid settings are chosen on validation, so the test set must be another one"
            )
    # event shards with jet features (or jets with event features) fail here, not mid-sweep
    for path in dict.fromkeys([first.data.train, first.data.val, test]):
        if path is not None and Path(path).exists():
            check_feature_set(path, first.data.features)
    for name, cfg in cfgs.items():
        if cfg.data.train != first.data.train:
            raise ConfigError(f"arm '{name}' trains on {cfg.data.train}, not {first.data.train}")
        if cfg.data.features != first.data.features:
            raise ConfigError(
                f"arm '{name}' reads data.features={cfg.data.features}, not "
                f"{first.data.features} (every arm must see the same inputs)"
            )
        if cfg.data.val != first.data.val:
            raise ConfigError(
                f"arm '{name}' validates on {cfg.data.val}, not {first.data.val} (every arm "
                "must be stopped and selected on the same validation set)"
            )
        if study.budget.select != "last" and cfg.data.val is None:
            raise ConfigError(
                "budget.select needs a validation set (data.val); set it or use budget.select=last"
            )
        arm = next(p.arm for p in points if p.arm.name == name)
        if arm.init != "none":
            if not _init_path(name, arm.init).exists():
                raise ConfigError(f"arm '{name}': init checkpoint {arm.init} does not exist")
            _check_arm(name, arm.init, cfg)
    counts = _labelled_counts(first.data.train)
    total = sum(counts.values())
    too_big = [n for n in study.n_train if n > total]
    if too_big:
        raise ConfigError(
            f"config key 'n_train' holds {too_big} but {first.data.train} has only {total} "
            f"labelled {unit} (generate more, or drop those sizes)"
        )
    val_labelled = sum(_labelled_counts(first.data.val).values()) if first.data.val else None
    val_max = first.train.val_max
    val_size = (
        None
        if val_labelled is None
        else (val_labelled if val_max is None else min(val_labelled, val_max))
    )
    if converge and val_size is not None and val_size < MIN_VAL:
        log.warning(
            "the validation set holds %d labelled %s (train.val_max=%s): below %d, early "
            "stopping and grid selection on validation AUC are noisy",
            val_size,
            unit,
            val_max,
            MIN_VAL,
        )
    b = study.budget
    by_n = {}
    for p in points:
        if p.n_train not in by_n:
            by_n[p.n_train] = point_config(study, p).train.max_steps
    facts = {
        "train": first.data.train,
        "val": first.data.val,
        "test": test,
        "train_labelled": total,
        "train_counts": counts,
        "unit": unit,
        "features": first.data.features,
        "model": f"{first.model.name}/{first.model.preset}",
        "schedules": {name: schedule(cfg) for name, cfg in cfgs.items()},
        "batch_size": first.train.batch_size,
        "lr": first.train.lr,
        "max_steps": b.max_steps,
        "eval_every": b.eval_every,
        "budget_mode": b.mode,
        "max_steps_by_n": {str(n): s for n, s in by_n.items()},
        "val_labelled": val_labelled,
        "val_size": val_size,
        "grid": {
            a.name: arm_grid(study, a) for a in dict((p.arm.name, p.arm) for p in points).values()
        },
        "val_max": first.train.val_max,
        "precision": first.train.precision,
        "max_particles": first.data.max_particles,
    }
    return test, facts


def run_sweep(
    study: StudyConfig, points: list[Point], out: Path, test: str
) -> list[dict[str, Any]]:
    """Run (or skip, when finished) every point under one progress bar.

    Args:
        study: the study.
        points: the points.
        out: study directory.
        test: test data path.

    Returns:
        One result row per point, in point order.
    """
    rows: list[dict[str, Any]] = []
    done = [p for p in points if (out / "points" / p.key / "metrics.json").is_file()]
    bar = tqdm(total=len(points), initial=len(done), unit="point", desc="study", dynamic_ncols=True)
    try:
        for p in points:
            pdir = out / "points" / p.key
            f = pdir / "metrics.json"
            if f.is_file():
                row = json.loads(f.read_text())
                fp = _fingerprint(point_config(study, p), test, study.test_max)
                if row.get("fingerprint") != fp and p.arm.mode == "linear" and "probe" not in row:
                    raise ConfigError(
                        f"{pdir}: this linear point was run by the old few-step linear head, "
                        "before mode=linear became the converged L-BFGS probe; delete it to "
                        "rerun it, or use another --out"
                    )
                if row.get("fingerprint") != fp:
                    raise ConfigError(
                        f"{pdir}: this point was run with a different config; delete it or use "
                        "another --out"
                    )
                now = init_weights_id(p.arm.init)
                if now is not None and row.get("init_weights") != now:
                    raise ConfigError(
                        f"{pdir}: this point was trained from other weights than "
                        f"{p.arm.init} holds now (it has changed since); delete the point to "
                        "rerun it, or use another --out"
                    )
                # a point copied from another study ran the same config under another arm
                # name: its labels follow this study's config
                row.update(key=p.key, arm=p.arm.name, pretrain_size=p.arm.pretrain_size)
                rows.append(row)
                continue
            bar.set_postfix_str(p.key)
            row = run_point(study, p, pdir, test)
            log.info(
                "%s: test AUC %.4f after %s (%.0f s)",
                p.key,
                row["auc"] if row["auc"] is not None else math.nan,
                f"{row['steps']} steps"
                if row.get("lbfgs_iters") is None
                else f"an L-BFGS probe ({row['lbfgs_iters']} iterations, l2={row['probe_l2']:g})",
                row["train_wall_s"] + row["eval_wall_s"],
            )
            rows.append(row)
            bar.update(1)
    finally:
        bar.close()
    return rows


def carried(study: StudyConfig, point: Point) -> bool:
    """Whether a point's grid setting is taken from a smaller N (``grid_from``), not trained.

    Args:
        study: the study.
        point: one of :func:`make_points`' points (every setting of the grid).

    Returns:
        True at an N of ``grid_from`` for an arm whose grid has more than one setting.
    """
    if point.n_train not in study.grid_from:
        return False
    return len(grid_settings(arm_grid(study, point.arm))) > 1


def carried_points(
    study: StudyConfig, points: list[Point], picked: list[dict[str, Any]]
) -> tuple[list[Point], list[dict[str, Any]]]:
    """The points of the ``grid_from`` label counts, each arm at the setting chosen at its M.

    Args:
        study: the study.
        points: every point (:func:`make_points`, all settings).
        picked: the chosen rows of the points already run (:func:`select_grid`), which hold
            every (arm, M) that ``grid_from`` names.

    Returns:
        (the points to run, one selection record per (arm, N): ``arm``, ``n_train``,
        ``chosen``, ``from_n`` and no ``candidates``).
    """
    chosen: dict[tuple[str, int], dict[str, Any]] = {}
    for r in picked:
        chosen.setdefault((r["arm"], r["n_train"]), dict(r.get("setting") or {}))
    todo: list[Point] = []
    records: dict[tuple[str, int], dict[str, Any]] = {}
    for p in points:
        if not carried(study, p):
            continue
        m = study.grid_from[p.n_train]
        setting = chosen.get((p.arm.name, m))
        if setting is None:  # validated at load time; a sweep that stopped early has no choice
            raise ConfigError(
                f"grid_from: arm {p.arm.name!r} has no setting chosen at N = {m} for N = "
                f"{p.n_train}"
            )
        if json.dumps(dict(p.setting), sort_keys=True) != json.dumps(setting, sort_keys=True):
            continue
        todo.append(p)
        records.setdefault(
            (p.arm.name, p.n_train),
            {
                "arm": p.arm.name,
                "n_train": p.n_train,
                "chosen": setting,
                "from_n": m,
                "candidates": [],
            },
        )
    return todo, list(records.values())


def execute(
    kind: str,
    study: StudyConfig,
    arms: list[ArmConfig],
    out: str | Path,
    command: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run a study's sweep and write ``results.csv``, ``summary.csv``, ``results.json``
    (:func:`~colliderfm.studies.results.write_results`), plots and ``report.md`` into ``out``.

    Args:
        kind: ``data-efficiency``, ``scaling`` or ``compute``.
        study: the study config.
        arms: the arms to run (the study's, plus any produced by a pretraining recipe).
        out: study directory.
        command: the command line that started the study (recorded in the report).
        extra: more facts for ``results.json`` (e.g. pretraining runs).

    Returns:
        The results dict that was written to ``results.json``.
    """
    from colliderfm.config import dump_config
    from colliderfm.studies.report import write_report
    from colliderfm.version import __version__

    out = Path(out)
    if len(study.seeds) < 3:
        log.warning(
            "only %d seed(s): the mean +- std bands are not meaningful (use 3 or more)",
            len(study.seeds),
        )
    points = make_points(arms, study.n_train, study.seeds, study)
    test, facts = check_points(study, points)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    first = [p for p in points if not carried(study, p)]
    trained = run_sweep(study, first, out, test)
    later, carry = carried_points(study, points, select_grid(trained)[0])
    if later:
        trained += run_sweep(study, later, out, test)
    sweep_wall = time.perf_counter() - t0
    rows, selection = select_grid(trained)
    selection += carry
    baselines = simple_baselines(  # one variable each, same test set, no training
        test, facts["unit"], facts["max_particles"], facts["features"], study.test_max
    )
    previous = previous_results(out)
    results: dict[str, Any] = {
        "kind": kind,
        "version": __version__,
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": command,
        "commands": [*previous.get("commands", []), command] if command else [],
        "study": {**study.to_dict(), "arms": [a.__dict__ for a in arms]},
        "base_config": dump_config(point_config(study, points[0])),
        "data": facts,
        "points": rows,
        "summary": aggregate(rows),
        "baselines": baselines,
        "grid_points": trained if selection else [],
        "selection": selection,
        "point_wall_s": round(sum(r["train_wall_s"] + r["eval_wall_s"] for r in trained), 1),
        "sweep_wall_s": round(sweep_wall, 1),
        **(extra or {}),
    }
    write_results(results, out)
    write_report(out)
    return results
