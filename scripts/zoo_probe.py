#!/usr/bin/env python
"""Linear probes of a zoo backbone against random ones: the model card's frozen-feature results.

One command measures what the model-zoo issue asks of a shipped backbone: a converged L-BFGS
linear probe of its frozen embedding with 1e4 labels, against the same probe of three random
backbones of the same preset, on an independent test set (and, for jets, on the same test jets
written as a JetClass-schema ROOT file by ``scripts/write_jetclass_root.py``, an independent
script)::

    .venv/bin/python scripts/zoo_probe.py jets-contrastive-small            # the run's last weights
    .venv/bin/python scripts/zoo_probe.py jets-mpm-small --weights seen-300000
    .venv/bin/python scripts/zoo_probe.py jets-mpm-small --weights zoo      # the shipped entry
    .venv/bin/python scripts/zoo_probe.py events-maskedkin-small --generate

The protocol is fixed per kind of data (:data:`PROTOCOLS`), so probes of different names and
of the same name at different stages compare on the same jets or events:

- jets: top vs QCD, ``colliderfm generate jets --process top,qcd`` with the default physics;
  training 5,000 per class (seed 11), validation 1,500 per class (seed 12), test 5,000 per class
  (seed 13), under ``data/probe/``; ``configs/finetune/top_tagging.yaml``.
- events: ttbar vs heavy 2HDM H (m_H = 550 GeV), ``colliderfm generate events --process
  ttbar,h2hdm`` with the default physics; training 5,000 per class (seed 24), validation 2,500
  per class (seed 22), test 5,000 per class (seed 25), under ``data/evprobe/``;
  ``configs/finetune/events.yaml``.

Every backbone is probed by ``finetune --mode linear`` with ``finetune.frozen_pooling=best``:
the L2 strength (the config's grid) and the pooling (the backbone's own class attention or the
token mean of the same weights) are chosen on validation AUC only. The random backbones are
``--init none`` with ``train.seed`` 0, 1, 2 and the probed backbone's preset; their results are
kept in ``zoo-work/probes/random-UNIT-PRESET.json`` and reused while the protocol, the seeds and
the software versions are the same (``--fresh-random`` refits them). The gain is the backbone's
test AUC minus the mean test AUC of the random backbones (each with the pooling its own
validation chose).

The result is written to ``zoo-work/NAME/probes/LABEL.json`` (LABEL: ``seen-N`` for the run's
weights after N jets or events, ``shipped`` for the zoo entry) and printed as a Markdown table.
``scripts/zoo_pretrain.py --finalize`` puts the probe of the final weights (matched by the
SHA-256 of their ``model.safetensors``) into the model card.

Missing probe data stops the script with the commands that make it (``--generate`` runs them);
a folder holding other data than the protocol's (another seed, size or process) is refused.
Refusals are one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import zoo_pretrain as zp  # noqa: E402  (the plans, the state folder and its helpers)

#: random-backbone seeds (``train.seed`` of ``--init none``)
RANDOM_SEEDS = (0, 1, 2)


#: a reason not to go on, one line (the same exception as zoo_pretrain.py's)
Refusal = zp.Refusal


@dataclass(frozen=True)
class Split:
    """One labelled set of the protocol: ``--n`` per class and ``--seed`` of the generator."""

    name: str
    n_per_class: int
    seed: int


@dataclass(frozen=True)
class Protocol:
    """A fixed probe protocol for one kind of data (jets or events).

    Attributes:
        unit: ``jets`` or ``events``.
        processes: the generator's ``--process`` list (background first: class 0).
        splits: training, validation and test sets.
        config: the fine-tuning recipe the probe runs.
        folder: where the sets live (``folder/train`` etc.), relative to the working directory.
        val_max: validation examples used (all of them).
    """

    unit: str
    processes: str
    splits: tuple[Split, Split, Split]
    config: str
    folder: str
    val_max: int

    def split(self, name: str) -> Split:
        """The split called ``name``."""
        return next(s for s in self.splits if s.name == name)

    def command(self, s: Split, folder: Path, workers: int = 2) -> list[str]:
        """The generator command that writes split ``s`` into ``folder/s.name``."""
        return [
            "colliderfm",
            "generate",
            self.unit,
            "--process",
            self.processes,
            "--n",
            str(s.n_per_class),
            "--seed",
            str(s.seed),
            "--workers",
            str(workers),
            "--out",
            str(folder / s.name),
        ]


PROTOCOLS = {
    "jets": Protocol(
        unit="jets",
        processes="top,qcd",
        splits=(Split("train", 5000, 11), Split("val", 1500, 12), Split("test", 5000, 13)),
        config="configs/finetune/top_tagging.yaml",
        folder="data/probe",
        val_max=3000,
    ),
    "events": Protocol(
        unit="events",
        processes="ttbar,h2hdm",
        splits=(Split("train", 5000, 24), Split("val", 2500, 22), Split("test", 5000, 25)),
        config="configs/finetune/events.yaml",
        folder="data/evprobe",
        val_max=5000,
    ),
}


def check_split(p: Protocol, s: Split, path: Path) -> str | None:
    """Why ``path`` is not split ``s`` of protocol ``p`` (None: it is).

    Args:
        p: the protocol.
        s: the split.
        path: a shard folder.

    Returns:
        None when the folder's manifest records the protocol's processes, seed and size;
        otherwise a short reason (``missing`` when there is no finished folder).
    """
    mf = path / "manifest.json"
    if not mf.is_file():
        return "missing"
    try:
        source = json.loads(mf.read_text()).get("source") or {}
    except (OSError, json.JSONDecodeError) as exc:
        return f"unreadable manifest ({exc})"
    want = sorted(p.processes.split(","))
    got = sorted(source.get("processes") or {})
    if got != want:
        return f"processes {','.join(got)} (the protocol's: {','.join(want)})"
    if source.get("seed") != s.seed:
        return f"seed {source.get('seed')} (the protocol's: {s.seed})"
    if source.get("n_per_process") != s.n_per_class:
        return f"{source.get('n_per_process')} per class (the protocol's: {s.n_per_class})"
    mpi = source.get("mpi", (source.get("settings") or {}).get("mpi"))
    if mpi is False:
        return "fast-mode physics (the protocol uses the default physics)"
    return None


def ensure_data(p: Protocol, folder: Path, generate: bool, workers: int) -> None:
    """Make sure ``folder`` holds the protocol's three sets (generating them if asked).

    Raises:
        Refusal: a set is missing (without ``generate``) or holds other data.
    """
    missing = []
    for s in p.splits:
        why = check_split(p, s, folder / s.name)
        if why == "missing":
            missing.append(s)
        elif why is not None:
            raise Refusal(f"{folder / s.name}: not the probe protocol's {s.name} set: {why}")
    if not missing:
        return
    if not generate:
        cmds = "; ".join(" ".join(p.command(s, folder, workers)) for s in missing)
        raise Refusal(f"probe data missing: run `{cmds}` (or pass --generate)")
    exe = Path(sys.executable).with_name("colliderfm")
    for s in missing:
        cmd = [str(exe), *p.command(s, folder, workers)[1:]]
        print(f"[probe] {' '.join(p.command(s, folder, workers))}", file=sys.stderr)
        if subprocess.run(cmd, check=False).returncode != 0:
            raise Refusal(f"generating {folder / s.name} failed (its error is above)")


def ensure_root(folder: Path) -> Path:
    """The test jets as a JetClass-schema ROOT file, written by the independent script.

    Args:
        folder: the jet protocol's data folder.

    Returns:
        ``folder/../probe-root/test.root`` (written once).
    """
    out = folder.parent / f"{folder.name}-root" / "test.root"
    src = folder / "test"
    if out.is_file() and out.stat().st_mtime >= (src / "manifest.json").stat().st_mtime:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    script = REPO_ROOT / "scripts" / "write_jetclass_root.py"
    r = subprocess.run([sys.executable, str(script), str(src), str(out)], check=False)
    if r.returncode != 0:
        raise Refusal(f"writing {out} with {script.name} failed (its error is above)")
    return out


def probe_one(
    p: Protocol, folder: Path, init: str, preset: str, seed: int, out: Path
) -> dict[str, Any]:
    """One L-BFGS linear probe (pooling and L2 chosen on validation).

    Args:
        p: the protocol.
        folder: its data folder.
        init: a checkpoint directory, ``zoo:NAME`` or ``none`` (a random backbone).
        preset: the backbone preset (used by ``none``; a checkpoint brings its own).
        seed: ``train.seed`` (the random backbone's initialisation).
        out: the run folder.

    Returns:
        ``pooling``, ``val_auc`` (per pooling and chosen), ``l2``, ``test`` (AUC, 1/eps_B and SIC
        at eps_S = 0.3 and 0.5, n) and ``wall_s``.
    """
    from colliderfm.config import load_config
    from colliderfm.recipes.finetune import run_finetune

    n_train = 2 * p.split("train").n_per_class
    sets = [
        f"data.train={folder / 'train'}",
        f"data.val={folder / 'val'}",
        f"data.test={folder / 'test'}",
        "finetune.mode=linear",
        f"finetune.init={init}",
        "finetune.frozen_pooling=best",
        f"finetune.n_train={n_train}",
        f"train.val_max={p.val_max}",
        f"model.preset={preset}",
        f"train.seed={seed}",
    ]
    t0 = time.perf_counter()
    s = run_finetune(load_config(REPO_ROOT / p.config, sets), out, progress=False)
    test = s["test"]
    return {
        "pooling": s["probe"]["pooling"]["chosen"],
        "val_auc": {**s["probe"]["pooling"]["val_auc"], "chosen": s["best"]["val_auc"]},
        "l2": s["probe_l2"],
        "test": {
            "auc": test["auc"],
            "rejection": test["rejection"],
            "sic": test["sic"],
            "n": test["n"],
        },
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def probe_device(p: Protocol) -> str:
    """The ``train.device`` the protocol's config asks for (``auto`` resolves as in training).

    Args:
        p: the protocol.

    Returns:
        The configured device string, for :func:`zoo_pretrain.hardware`.
    """
    from colliderfm.config import load_config

    return str(load_config(REPO_ROOT / p.config).train.device)


def root_auc(run: Path, root_file: Path) -> dict[str, Any]:
    """The probe's saved model evaluated on the ROOT copy of the test jets."""
    from colliderfm.evaluate.run import evaluate_checkpoint

    m = evaluate_checkpoint(run, root_file, plots=False)
    return {"auc": m["auc"], "rejection": m.get("rejection"), "n": m.get("n")}


def versions() -> dict[str, str]:
    """The software whose change could move a random backbone's probe."""
    import numpy
    import torch

    from colliderfm.version import __version__

    return {"colliderfm": __version__, "torch": torch.__version__, "numpy": numpy.__version__}


def random_probes(
    p: Protocol, folder: Path, preset: str, cache: Path, fresh: bool, tmp: Path
) -> list[dict[str, Any]]:
    """The random backbones' probes, reused from ``cache`` while their key is the same.

    Returns:
        One result per seed of :data:`RANDOM_SEEDS` (with its ``seed``).
    """
    key = {
        "protocol": asdict(p),
        "preset": preset,
        "seeds": list(RANDOM_SEEDS),
        "versions": versions(),
    }
    key = json.loads(json.dumps(key))  # as read back from the cache (tuples become lists)
    if cache.is_file() and not fresh:
        kept = json.loads(cache.read_text())
        if kept.get("key") == key:
            print(
                f"[probe] random backbones: reusing {zp._shown(cache, REPO_ROOT)}", file=sys.stderr
            )
            return list(kept["results"])
    results = []
    for seed in RANDOM_SEEDS:
        print(f"[probe] random {preset} backbone, seed {seed}", file=sys.stderr)
        r = probe_one(p, folder, "none", preset, seed, tmp / f"random-{seed}")
        results.append({"seed": seed, **r})
    from colliderfm.fileio import write_json

    cache.parent.mkdir(parents=True, exist_ok=True)
    write_json({"key": key, "results": results}, cache)
    return results


def resolve_weights(plan: zp.Plan, weights: str, work_dir: Path) -> tuple[str, str, int | None]:
    """The checkpoint to probe, its label and how many jets or events it saw.

    Args:
        plan: the zoo run.
        weights: ``last`` (the run's latest weights), ``seen-N`` (a kept snapshot), ``zoo`` (the
            shipped entry) or a checkpoint directory.
        work_dir: the state folder.

    Returns:
        (init string for ``finetune.init``, label, examples seen or None).

    Raises:
        Refusal: no such weights.
    """
    from colliderfm import zoo

    if weights == "zoo":
        if plan.name not in zoo.names():
            raise Refusal(f"zoo:{plan.name} is not shipped yet (probe --weights last instead)")
        return f"{zoo.PREFIX}{plan.name}", "shipped", None
    root = work_dir / plan.name
    if weights == "last":
        state = zp.read_state(plan, work_dir)
        if not state.records:
            raise Refusal(f"{plan.name}: no chunk is recorded yet: nothing to probe")
        seen = sum(int(r[plan.unit]) for r in state.records)
        path = state.run / "last"
        if not (path / "model.safetensors").exists() and not (path / "LATEST").exists():
            raise Refusal(f"{path}: no checkpoint")
        return zp._arg_path(path), f"seen-{seen}", seen
    if weights.startswith("seen-") and weights[5:].isdigit():
        path = root / weights
        if not path.is_dir():
            kept = sorted(q.name for q in root.glob("seen-*")) if root.is_dir() else []
            raise Refusal(f"{path}: no such snapshot (kept: {', '.join(kept) or 'none'})")
        return zp._arg_path(path), weights, int(weights[5:])
    path = Path(weights)
    if not path.exists():
        raise Refusal(f"--weights {weights}: neither last, seen-N, zoo nor a checkpoint directory")
    return str(path), path.name, None


def run_probe(
    plan: zp.Plan,
    weights: str,
    work_dir: Path,
    data_dir: Path | None,
    generate: bool,
    workers: int,
    fresh_random: bool,
) -> dict[str, Any]:
    """Probe one zoo run's weights and three random backbones; write and return the result.

    Returns:
        The result written to ``work_dir/NAME/probes/LABEL.json``.
    """
    from colliderfm.fileio import write_json
    from colliderfm.studies.sweep import init_weights_id
    from colliderfm.train.checkpoint import read_meta, resolve
    from colliderfm.zoo import checkpoint_path

    p = PROTOCOLS[plan.unit]
    folder = data_dir if data_dir is not None else Path(p.folder)
    init, label, seen = resolve_weights(plan, weights, work_dir)
    preset = str(read_meta(resolve(checkpoint_path(init)))["model"].get("preset"))
    ensure_data(p, folder, generate, workers)
    root_file = ensure_root(folder) if p.unit == "jets" else None
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="zoo-probe-") as tmp:
        print(f"[probe] {plan.name} ({label}): {init}", file=sys.stderr)
        b = probe_one(p, folder, init, preset, 0, Path(tmp) / "backbone")
        if root_file is not None:
            b["root"] = root_auc(Path(tmp) / "backbone", root_file)
        cache = work_dir / "probes" / f"random-{p.unit}-{preset}.json"
        rnd = random_probes(p, folder, preset, cache, fresh_random, Path(tmp))
    mean = sum(r["test"]["auc"] for r in rnd) / len(rnd)
    result = {
        "name": plan.name,
        "label": label,
        "weights": init,
        "init_weights": init_weights_id(init),
        "seen": seen,
        "preset": preset,
        "protocol": asdict(p),
        "data": zp._shown(folder.resolve(), REPO_ROOT),
        "backbone": b,
        "random": rnd,
        "gain": {
            "auc": b["test"]["auc"] - mean,
            "random_mean": mean,
            "over_best_random": b["test"]["auc"] - max(r["test"]["auc"] for r in rnd),
        },
        "wall_s": round(time.perf_counter() - t0, 1),
        "hardware": zp.hardware(probe_device(p)),
        "versions": versions(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    out = work_dir / plan.name / "probes" / f"{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(result, out)
    print(f"[probe] wrote {zp._shown(out, REPO_ROOT)}", file=sys.stderr)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(
        prog="zoo_probe.py",
        description="Linear-probe a zoo backbone against three random ones (fixed protocol).",
    )
    ap.add_argument("name", choices=sorted(zp.PLANS), help="the zoo run")
    ap.add_argument(
        "--weights", default="last", help="last (default), seen-N, zoo or a checkpoint directory"
    )
    ap.add_argument("--data-dir", type=Path, default=None, help="the protocol's data folder")
    ap.add_argument("--work-dir", type=Path, default=zp.WORK_DIR, help="the state folder")
    ap.add_argument("--generate", action="store_true", help="generate missing probe data")
    ap.add_argument("--workers", type=int, default=2, help="generator processes (default 2)")
    ap.add_argument("--fresh-random", action="store_true", help="refit the random backbones")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Returns:
        0, or 2 for a refusal or a user error.
    """
    args = parse_args(argv)
    from colliderfm.errors import ColliderFMError
    from colliderfm.train.logging import setup_console_logging

    setup_console_logging()
    plan = zp.PLANS[args.name]
    try:
        result = run_probe(
            plan,
            args.weights,
            args.work_dir,
            args.data_dir,
            args.generate,
            args.workers,
            args.fresh_random,
        )
    except (Refusal, ColliderFMError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"zoo_probe: error: {msg}", file=sys.stderr)
        return 2
    print(zp.probe_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
