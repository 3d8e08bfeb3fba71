"""Scaling study: downstream test AUC at fixed N_train vs the size of the pretraining set.

Arms are pretrained checkpoints labelled with ``pretrain_size`` (plus, usually, the from-scratch
control as the reference line). Optionally the study pretrains them itself: ``pretrain.sizes``
with ``pretrain.config`` pretrains one backbone per size on nested subsets of ``pretrain.data``
(the first ``size`` jets, or events, of one seeded permutation), each with the same pretraining
recipe and budget, into ``DIR/pretrain/p<size>``. For events the recipe is masked object-id
(``configs/pretrain/masked_id.yaml``) on the unlabelled data-like mix, the same as for
``colliderfm pretrain``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from colliderfm.config import load_config
from colliderfm.errors import ConfigError
from colliderfm.fileio import write_json
from colliderfm.studies.config import ArmConfig, StudyConfig
from colliderfm.studies.sweep import (
    Point,
    check_points,
    data_unit,
    execute,
    make_points,
    point_config,
)
from colliderfm.train.logging import log


def nested_subset(source: str | Path, size: int, seed: int, out: str | Path) -> Path:
    """Write the first ``size`` rows (jets or events) of a seeded permutation of ``source``.

    For one seed, a smaller subset is always contained in a larger one. Shard inputs are copied
    row by row as stored (exact, jets and events alike, and the output keeps the input's kind
    and classes); foreign inputs (JetClass, Top Tagging, NanoAOD) are converted on the way.
    Reuses ``out`` when it already holds the subset.

    Args:
        source: any readable jet or event input.
        size: rows in the subset.
        seed: permutation seed.
        out: target shard directory.

    Returns:
        ``out``.
    """
    from colliderfm.data.readers import reader_for
    from colliderfm.data.shards import ShardWriter
    from colliderfm.data.subset import read_labels

    out = Path(out)
    if (out / "manifest.json").is_file():
        src = json.loads((out / "manifest.json").read_text()).get("source", {})
        if (src.get("subset_of"), src.get("size"), src.get("seed")) != (str(source), size, seed):
            raise ConfigError(
                f"{out} holds another subset ({src.get('subset_of')}, {src.get('size')} rows, "
                f"seed {src.get('seed')}); delete it or use another --out"
            )
        return out
    reader = reader_for(source)
    n = len(read_labels(source))
    if size > n:
        raise ConfigError(f"config key 'pretrain.sizes' holds {size} but {source} has {n} rows")
    idx = np.sort(np.random.default_rng(seed).permutation(n)[:size])
    src = {"subset_of": str(source), "size": size, "seed": seed, "nested": True}
    classes = reader.classes(Path(source))
    if reader.canonical:
        kind, batches = _shard_rows(Path(source))
        with ShardWriter(out, kind, classes, src, overwrite=True) as w:
            start = 0
            for rb in batches:
                stop = start + rb.num_rows
                lo, hi = np.searchsorted(idx, [start, stop])
                if hi > lo:
                    w.write(pa.Table.from_batches([rb]).take(pa.array(idx[lo:hi] - start)))
                start = stop
        return out
    with ShardWriter(out, reader.kind(Path(source)), classes, src, overwrite=True) as w:
        start = 0
        for chunk in reader.iter_chunks(Path(source)):
            stop = start + len(chunk)
            lo, hi = np.searchsorted(idx, [start, stop])
            if hi > lo:
                w.write_chunk(chunk.take(idx[lo:hi] - start))
            start = stop
    return out


def _shard_rows(path: Path) -> tuple[str, Iterator[pa.RecordBatch]]:
    """The kind (``jets`` or ``events``) of a shard directory or ``.parquet`` file and its rows,
    in the order :func:`~colliderfm.data.subset.read_labels` reads the labels."""
    from colliderfm.data.readers.parquet import is_event_table, iter_shard, read_schema
    from colliderfm.data.shards import read_manifest, shard_paths

    if path.is_dir():
        kind = str(read_manifest(path).get("kind", "jets"))
        files = shard_paths(path)
    else:
        kind = "events" if is_event_table(read_schema(path, "file").names) else "jets"
        files = [path]
    return kind, (rb for f in files for rb in iter_shard(f, rows=8192))


def check_pretrain_recipe(study: StudyConfig) -> None:
    """Check the ``pretrain`` section against the fine-tuning config before anything runs.

    The pretrained backbones must be what the fine-tuning config builds (same model and preset,
    same input features), and the pretraining data must hold the largest size.

    Args:
        study: the study.

    Raises:
        ConfigError: naming the ``pretrain.*`` key at fault.
    """
    from colliderfm.data.subset import read_labels

    rec = study.pretrain
    if not rec.sizes:
        return
    assert rec.config is not None
    try:
        pre = load_config(rec.config, rec.overrides)
    except ConfigError as exc:
        raise ConfigError(f"config key 'pretrain.config' ({rec.config}): {exc}") from exc
    arm = ArmConfig(name=f"{rec.name}-p{max(rec.sizes)}", init="none", mode=rec.mode)
    ft = point_config(study, Point(arm, study.n_train[0], study.seeds[0]))
    if (pre.model.name, pre.model.preset) != (ft.model.name, ft.model.preset):
        raise ConfigError(
            f"config key 'pretrain.config': {rec.config} pretrains {pre.model.name}/"
            f"{pre.model.preset} but the fine-tuning config builds {ft.model.name}/"
            f"{ft.model.preset} (add model.preset=... to pretrain.overrides or to overrides)"
        )
    if pre.data.features != ft.data.features:
        raise ConfigError(
            f"config key 'pretrain.config': {rec.config} reads data.features="
            f"{pre.data.features} but the fine-tuning config reads {ft.data.features}"
        )
    data = rec.data or pre.data.train
    if data is None:
        raise ConfigError(
            "config key 'pretrain.data' is missing (and the recipe has no data.train)"
        )
    if not Path(data).exists():
        raise ConfigError(f"config key 'pretrain.data': {data} does not exist")
    n = len(read_labels(data))
    if max(rec.sizes) > n:
        raise ConfigError(
            f"config key 'pretrain.sizes' holds {max(rec.sizes)} but {data} has {n} "
            f"{data_unit(pre.data.features)} (generate more, or drop that size)"
        )


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
    from colliderfm.recipes.pretrain import run_pretrain

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
        log.info(
            "pretraining on %d %s -> %s%s",
            size,
            data_unit(cfg.data.features),
            run_dir,
            " (resuming)" if done else "",
        )
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
    check_pretrain_recipe(study)
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
