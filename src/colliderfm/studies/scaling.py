"""Scaling study: downstream test AUC at fixed N_train vs the size of the pretraining set.

Arms are pretrained checkpoints labelled with ``pretrain_size`` (plus, usually, the from-scratch
control as the reference line). Optionally the study pretrains them itself: ``pretrain.sizes``
with ``pretrain.config`` pretrains one backbone per size on nested subsets of ``pretrain.data``
(the first ``size`` jets of one seeded permutation), each with the same pretraining recipe and
budget, into ``DIR/pretrain/p<size>``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from colliderfm.config import load_config
from colliderfm.errors import ConfigError
from colliderfm.evaluate.run import write_json
from colliderfm.studies.config import ArmConfig, StudyConfig
from colliderfm.studies.sweep import check_points, execute, make_points
from colliderfm.train.logging import log


def nested_subset(source: str | Path, size: int, seed: int, out: str | Path) -> Path:
    """Write the first ``size`` jets of a seeded permutation of ``source`` as a shard directory.

    For one seed, a smaller subset is always contained in a larger one. Reuses ``out`` when it
    already holds the subset.

    Args:
        source: any readable jet input.
        size: jets in the subset.
        seed: permutation seed.
        out: target shard directory.

    Returns:
        ``out``.
    """
    from colliderfm.data.readers.dispatch import iter_jet_chunks, jet_classes
    from colliderfm.data.readers.parquet import ShardWriter
    from colliderfm.data.subset import read_labels

    out = Path(out)
    if (out / "manifest.json").is_file():
        src = json.loads((out / "manifest.json").read_text()).get("source", {})
        if (src.get("subset_of"), src.get("size"), src.get("seed")) != (str(source), size, seed):
            raise ConfigError(
                f"{out} holds another subset ({src.get('subset_of')}, {src.get('size')} jets, "
                f"seed {src.get('seed')}); delete it or use another --out"
            )
        return out
    n = len(read_labels(source))
    if size > n:
        raise ConfigError(f"config key 'pretrain.sizes' holds {size} but {source} has {n} jets")
    idx = np.sort(np.random.default_rng(seed).permutation(n)[:size])
    src = {"subset_of": str(source), "size": size, "seed": seed, "nested": True}
    with ShardWriter(out, "jets", jet_classes(source), src, overwrite=True) as w:
        start = 0
        for chunk in iter_jet_chunks(source):
            stop = start + len(chunk)
            lo, hi = np.searchsorted(idx, [start, stop])
            if hi > lo:
                w.write_chunk(chunk.take(idx[lo:hi] - start))
            start = stop
    return out


def pretrain_arms(
    study: StudyConfig, out: str | Path
) -> tuple[list[ArmConfig], list[dict[str, Any]]]:
    """Pretrain one backbone per ``pretrain.sizes`` entry (resumable) and return their arms.

    Args:
        study: the study (``pretrain`` section).
        out: study directory.

    Returns:
        (arms, one summary dict per pretraining run).
    """
    from colliderfm.pretrain.run import run_pretrain

    rec = study.pretrain
    if not rec.sizes:
        return [], []
    assert rec.config is not None
    base = load_config(rec.config, rec.overrides)
    data = rec.data or base.data.train
    if data is None:
        raise ConfigError(
            "config key 'pretrain.data' is missing (and the recipe has no data.train)"
        )
    if not Path(data).exists():
        raise ConfigError(f"config key 'pretrain.data': {data} does not exist")
    arms, runs = [], []
    for size in sorted(rec.sizes):
        sub = nested_subset(data, size, rec.seed, Path(out) / "pretrain" / f"data-p{size}")
        run_dir = Path(out) / "pretrain" / f"p{size}"
        cfg = load_config(rec.config, [*rec.overrides, f"data.train={sub}"])
        recipe = {"config": cfg.to_dict(), "size": size, "seed": rec.seed}
        stamp = run_dir.parent / f"p{size}.recipe.json"
        if stamp.is_file() and json.loads(stamp.read_text()) != json.loads(
            json.dumps(recipe, default=str)
        ):
            raise ConfigError(
                f"{run_dir} was pretrained with another recipe; delete it or use another --out"
            )
        write_json(recipe, stamp)
        done = (run_dir / "last" / "state.pt").exists()
        log.info("pretraining on %d jets -> %s%s", size, run_dir, " (resuming)" if done else "")
        summary = run_pretrain(cfg, run_dir, resume=done, progress=False)
        runs.append(
            json.loads(json.dumps({"size": size, "dir": str(run_dir), **summary}, default=str))
        )
        arms.append(
            ArmConfig(
                name=f"{rec.name}-p{size}", init=str(run_dir), mode=rec.mode, pretrain_size=size
            )
        )
    return arms, runs


def run_scaling(study: StudyConfig, out: str | Path, command: str | None = None) -> dict[str, Any]:
    """Run (or resume) a scaling study.

    Args:
        study: validated study config (arms with ``pretrain_size`` and/or a ``pretrain`` recipe).
        out: study directory.
        command: the command line, recorded in the report.

    Returns:
        The results written to ``out/results.json``.
    """
    for i, a in enumerate(study.arms):
        if a.init != "none" and a.pretrain_size is None:
            raise ConfigError(
                f"config key 'arms[{i}].pretrain_size' is missing (a scaling study labels every "
                "pretrained arm with the size of its pretraining set)"
            )
    # fail on a bad fine-tuning config, data or test set before any pretraining starts
    check_points(study, make_points(study.arms or [ArmConfig(name="check")], study.n_train, [0]))
    made, runs = pretrain_arms(study, out)
    clash = {a.name for a in made} & {a.name for a in study.arms}
    if clash:
        raise ConfigError(f"config key 'arms' clashes with pretrained arm names {sorted(clash)}")
    arms = [*study.arms, *made]
    if not any(a.pretrain_size for a in arms):
        raise ConfigError(
            "a scaling study needs pretrained arms (arms with pretrain_size, or pretrain.sizes)"
        )
    return execute("scaling", study, arms, out, command, extra={"pretrain_runs": runs})
