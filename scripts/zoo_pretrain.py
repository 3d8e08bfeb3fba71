#!/usr/bin/env python
"""Pretrain a model-zoo checkpoint chunk by chunk, over as many sessions as it takes.

Each zoo run (``jets-contrastive-small``, ``jets-mpm-small``) follows a fixed :class:`Plan`: ten
chunks of 10,000 generated jets per class of all ten JetClass classes (100,000 distinct jets a
chunk, generation seed ``7000 + chunk``; labels are ignored), one resumed pretraining run per
chunk of ``ceil(100000 / 256)`` steps at batch 256, the cosine learning-rate schedule running over
all ten chunks (``train.max_steps``). One invocation does the next ``--chunks N`` chunks
(default 1) and stops::

    .venv/bin/python scripts/zoo_pretrain.py jets-contrastive-small --plan   # print the plan
    .venv/bin/python scripts/zoo_pretrain.py jets-contrastive-small          # the next chunk
    .venv/bin/python scripts/zoo_pretrain.py jets-contrastive-small --finalize --probe-auc 0.95

For each chunk: generate it (:func:`colliderfm.data.generate.jets.generate_jets`, default
physics) into ``--data-dir``; pretrain on it (``run_pretrain`` with ``data.train`` the chunk,
``train.stop_at_step`` the chunk's last step, ``resume`` once the run has a state); append the
chunk's record to ``zoo-work/NAME/chunks.json`` (atomically); delete the chunk's data. An
interrupted chunk is continued by rerunning the same command: a complete generated chunk is
reused and the run resumes (``zoo-work/NAME/pending.json`` keeps the chunk's wall times so far).
``zoo-work/.gitignore`` keeps only what resuming reads (``run/last/``) and the records in git.

Both shipped runs are planned on the same chunks (same seeds), and generating a chunk takes far
longer than pretraining on it, so several names can share each generated chunk::

    .venv/bin/python scripts/zoo_pretrain.py jets-contrastive-small jets-mpm-small [--chunks N]

Each chunk is then generated once (into ``--data-dir/NAME1+NAME2/``, names sorted), every named
run pretrains on it in the order given, each with its own state (``zoo-work/NAME/``), and it is
deleted once all have recorded it. The names must be at the same next chunk, or some may be one
chunk behind with that chunk pending (an interrupted shared chunk: the runs that recorded it
skip it, the others finish it on the kept chunk); otherwise the command refuses. Each record's
``shared_with`` lists the other names that pretrained on the same generated chunk (empty for a
name run alone), and its ``generate_wall_s`` is that one generation's wall time: the same value
in each record that shared it (each model card counts it, and says so). A complete chunk left
by one name run alone is moved into the shared folder and reused. ``--plan`` prints each named
plan; ``--finalize`` with several names finalizes each (all must be finished; ``--probe-auc``
only with one name).

Event runs (``events-maskedid-small``, ``events-maskedkin-small``, ``events-contrastive-small``,
``events-supervised-small``: the recipes the event-level study compares; ``events-maskedkin-base``:
the recipe whose frozen features led at small scale, on the 1.66M-parameter ``base`` backbone)
follow the same scheme
on whole events: ten chunks of 100,000 selected events of the data-like mix (``colliderfm
generate events --process datalike --fast --label-subprocesses``, seed ``3100 + chunk``; fast
mode as the issue allows for the unlabelled set; the labels are the sub-processes, which only
the supervised reference run uses), four passes over each chunk at batch 512. All five share
each generated chunk::

    .venv/bin/python scripts/zoo_pretrain.py events-maskedid-small events-maskedkin-small \\
        events-contrastive-small events-supervised-small events-maskedkin-base

Their snapshots include 30,000 events seen, taken inside chunk 0's first pass (the run pauses
there, keeps ``seen-30000/`` and goes on).

``--finalize`` (after the last chunk) writes ``src/colliderfm/zoo/NAME/``: the final weights and
``config.yaml``, ``SHA256SUMS``, ``meta.json`` and a ``MODEL_CARD.md`` made from the records,
refusing an entry over 10 MB. Refusals and failures are one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
#: the ten JetClass-like processes of ``colliderfm generate jets`` (all its classes)
PROCESSES = ("qcd", "hbb", "hcc", "hgg", "h4q", "hlnuqq", "zqq", "wqq", "top", "tblnu")
#: the largest shipped entry (weights, config, checksums, card and meta together), bytes
MAX_BYTES = 10 * 1000 * 1000
WORK_DIR = REPO_ROOT / "zoo-work"
DATA_DIR = REPO_ROOT / "data" / "zoo-chunks"
ZOO_DIR = REPO_ROOT / "src" / "colliderfm" / "zoo"
CHUNKS, PENDING = "chunks.json", "pending.json"
#: ``zoo-work/.gitignore``: only what resuming reads (``run/last``), the records and the trained
#: tokenizer are committed, never TensorBoard events, metrics, locks or half-written copies
GITIGNORE = """\
# Written by scripts/zoo_pretrain.py: while a zoo checkpoint is being pretrained, its resumable
# state lives here in git (resume reads run/last/ only); logs and other bulky files stay out.
*
!.gitignore
!*/
!*/chunks.json
!*/pending.json
!*/run/config.yaml
!*/run/last/config.yaml
!*/run/last/model.safetensors
!*/run/last/state.pt
!*/run/tokenizer/config.yaml
!*/run/tokenizer/model.safetensors
!*/seen-*/config.yaml
!*/seen-*/model.safetensors
!*/probes/*.json
!probes/*.json
"""


class Refusal(Exception):
    """The state does not allow the request (one line for the user; exit code 2)."""


@dataclass(frozen=True)
class Plan:
    """How one zoo run is made: its chunks, their seeds and sizes, and its steps.

    Attributes:
        name: the zoo name (``zoo:NAME``), also the name of its state and data folders.
        config: the pretraining recipe (a ``colliderfm pretrain`` config, or for
            ``recipe="finetune"`` a ``colliderfm finetune`` one).
        chunks: number of chunks (one resumed run each).
        per_process: jets (or selected events) of each process in a chunk.
        processes: ``colliderfm generate jets`` processes, or ``("datalike",)`` for events.
        batch_size: jets (events) per step.
        seed_base: chunk ``k`` is generated with seed ``seed_base + k``.
        overrides: further ``--set`` overrides of the recipe (applied before the plan's own).
        snapshots: jets (events) seen after which the weights are kept in ``WORK/NAME/seen-N/``
            (a loadable checkpoint, committed), for the pretraining-size scaling study; the
            finished run is the zoo entry itself. A value inside a chunk is taken during that
            chunk's first pass (the run pauses there). Not part of the recorded plan.
        unit: ``jets`` (``colliderfm generate jets``) or ``events``
            (``colliderfm generate events``: whole events of the data-like mix).
        fast: generate in the opt-in fast mode (events only; multi-parton interactions off).
        label_subprocesses: label the data-like events by sub-process (the same events): what
            the supervised reference run trains on; the self-supervised runs ignore labels.
        passes: passes over each chunk (``steps_per_chunk`` = ``passes`` x one pass).
        recipe: ``pretrain`` (self-supervised) or ``finetune`` (supervised pretraining: a
            classifier of the chunk's labels, whose backbone is the checkpoint).
    """

    name: str
    config: Path
    chunks: int = 10
    per_process: int = 10_000
    processes: tuple[str, ...] = PROCESSES
    batch_size: int = 256
    seed_base: int = 7000
    overrides: tuple[str, ...] = ()
    snapshots: tuple[int, ...] = (100_000, 300_000)
    unit: str = "jets"
    fast: bool = False
    label_subprocesses: bool = False
    passes: int = 1
    recipe: str = "pretrain"

    def __post_init__(self) -> None:
        if self.unit not in ("jets", "events"):
            raise ValueError(f"Plan.unit must be jets or events, not {self.unit!r}")
        if self.recipe not in ("pretrain", "finetune"):
            raise ValueError(f"Plan.recipe must be pretrain or finetune, not {self.recipe!r}")
        if self.unit == "jets" and (self.fast or self.label_subprocesses):
            raise ValueError("the zoo's jet chunks use the default physics and the jet labels")
        if self.passes < 1:
            raise ValueError(f"Plan.passes must be at least 1, not {self.passes}")

    @property
    def per_chunk(self) -> int:
        """Distinct jets (events) in one chunk."""
        return self.per_process * len(self.processes)

    @property
    def per_process_key(self) -> str:
        """The records' and recorded plan's key of :attr:`per_process` (jet plans keep theirs)."""
        return "jets_per_class" if self.unit == "jets" else "events_per_process"

    @property
    def steps_per_pass(self) -> int:
        """Optimizer steps of one pass over a chunk at :attr:`batch_size`, rounded up."""
        return math.ceil(self.per_chunk / self.batch_size)

    @property
    def steps_per_chunk(self) -> int:
        """Optimizer steps on one chunk: :attr:`passes` passes."""
        return self.passes * self.steps_per_pass

    @property
    def max_steps(self) -> int:
        """Steps of the whole run (``train.max_steps``: the LR schedule spans them)."""
        return self.chunks * self.steps_per_chunk

    @property
    def class_names(self) -> list[str]:
        """The class names of the chunks' manifests (JetClass order for jets)."""
        if self.unit == "events":
            from colliderfm.data.generate.events import DATALIKE_CLASSES

            return list(DATALIKE_CLASSES) if self.label_subprocesses else ["ttbar", "h2hdm"]
        from colliderfm.data.generate.processes import PROCESSES as CLASS_OF
        from colliderfm.data.schema import JETCLASS_CLASSES

        return sorted((CLASS_OF[p] for p in self.processes), key=JETCLASS_CLASSES.index)

    def seed(self, k: int) -> int:
        """Generation seed of chunk ``k``."""
        return self.seed_base + k

    def steps_from(self, k: int) -> int:
        """The run's step when chunk ``k`` starts."""
        return k * self.steps_per_chunk

    def steps_to(self, k: int) -> int:
        """The run's step when chunk ``k`` is done."""
        return (k + 1) * self.steps_per_chunk

    def snapshot_steps(self, k: int) -> dict[int, int]:
        """The snapshots taken inside chunk ``k`` (before its last step): ``{step: seen}``.

        A snapshot value ``s`` with ``k * per_chunk < s < (k + 1) * per_chunk`` is taken in the
        chunk's first pass, at the step by which ``s`` of its distinct jets (events) were seen.
        """
        lo = k * self.per_chunk
        return {
            self.steps_from(k) + math.ceil((s - lo) / self.batch_size): s
            for s in sorted(self.snapshots)
            if lo < s < lo + self.per_chunk
        }

    def to_dict(self) -> dict[str, Any]:
        """The plan as recorded in ``chunks.json`` (a changed plan is refused).

        Jet plans keep the keys they were first recorded with (``jets_per_class``,
        ``jets_per_chunk``); event plans add the generation and training settings they have.
        """
        d: dict[str, Any] = {
            "name": self.name,
            "config": _shown(self.config, REPO_ROOT),
            "chunks": self.chunks,
            self.per_process_key: self.per_process,
            "processes": list(self.processes),
            f"{self.unit}_per_chunk": self.per_chunk,
            "batch_size": self.batch_size,
            "seeds": [self.seed(k) for k in range(self.chunks)],
            "steps_per_chunk": self.steps_per_chunk,
            "max_steps": self.max_steps,
            "overrides": list(self.overrides),
        }
        if self.unit == "events":
            d.update(
                unit=self.unit,
                fast=self.fast,
                label_subprocesses=self.label_subprocesses,
                passes=self.passes,
                recipe=self.recipe,
            )
        return d


def _event_plan(name: str, recipe: str = "pretrain") -> Plan:
    """An event zoo run: ten chunks of 1e5 data-like events (fast mode, labelled by
    sub-process), seeds 3100 + k, four passes over each chunk at batch 512."""
    return Plan(
        name,
        REPO_ROOT / "configs" / "zoo" / f"{name}.yaml",
        per_process=100_000,
        processes=("datalike",),
        batch_size=512,
        seed_base=3100,
        snapshots=(30_000, 100_000, 300_000),
        unit="events",
        fast=True,
        label_subprocesses=True,
        passes=4,
        recipe=recipe,
    )


PLANS: dict[str, Plan] = {
    **{
        name: Plan(name, REPO_ROOT / "configs" / "zoo" / f"{name}.yaml")
        for name in ("jets-contrastive-small", "jets-mpm-small")
    },
    **{
        name: _event_plan(name)
        for name in (
            "events-maskedid-small",
            "events-maskedkin-small",
            "events-contrastive-small",
            "events-maskedkin-base",
        )
    },
    "events-supervised-small": _event_plan("events-supervised-small", recipe="finetune"),
}


# --- small helpers -----------------------------------------------------------------------------


def _shown(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` when it lies inside it, else as an absolute path."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(base.resolve()))
    except ValueError:
        return str(p)


def _inside(path: Path, base: Path) -> bool:
    """Whether ``path`` lies inside ``base`` (both resolved)."""
    try:
        Path(path).resolve().relative_to(base.resolve())
    except ValueError:
        return False
    return True


def _arg_path(path: Path) -> str:
    """A path for the package (data.train): relative to the working directory when inside it.

    Relative paths keep machine-specific prefixes out of the checkpoints' ``config.yaml``.
    """
    return _shown(path, Path.cwd())


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise Refusal(f"{path}: unreadable ({exc})") from exc


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def hardware(device: str = "auto") -> dict[str, Any]:
    """Where a chunk ran: CPU model, core count, torch version and the training device.

    Args:
        device: ``train.device`` of the run.

    Returns:
        ``{"cpu", "cores", "torch", "device"}`` (the device with the GPU's name on CUDA).
    """
    import torch

    from colliderfm.runtime import resolve_device

    d = resolve_device(device)
    shown = str(d)
    if d.type == "cuda":
        shown = f"{d} ({torch.cuda.get_device_name(d)})"
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "device": shown,
    }


@functools.cache
def _git_commit() -> str | None:
    """The repository's commit (short) when first asked (:func:`main` asks at its start, so a
    chunk records the code it ran with, not a commit made while it ran), or None outside a git
    checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# --- state -------------------------------------------------------------------------------------


@dataclass
class State:
    """Where a zoo run stands.

    Attributes:
        root: ``WORK/NAME``.
        records: one per finished chunk, from ``chunks.json``.
        step: the run's optimizer steps (0 without a resumable state).
        finished: the run ended (its last chunk is done).
        pending: the chunk in progress (``pending.json``), or None.
    """

    root: Path
    records: list[dict[str, Any]]
    step: int
    finished: bool
    pending: dict[str, Any] | None

    @property
    def run(self) -> Path:
        """The pretraining run directory."""
        return self.root / "run"


def ensure_gitignore(work_dir: Path) -> None:
    """Write ``WORK/.gitignore`` (what git keeps of the state) unless it is there."""
    path = work_dir / ".gitignore"
    if not path.exists():
        from colliderfm.fileio import write_text

        write_text(path, GITIGNORE)


def read_state(plan: Plan, work_dir: Path) -> State:
    """Read a zoo run's records, its run's step and its pending chunk.

    Args:
        plan: the run's plan.
        work_dir: the state folder (``zoo-work``).

    Returns:
        The :class:`State`.

    Raises:
        Refusal: ``chunks.json`` is malformed, or was written by another plan or recipe.
    """
    from colliderfm.train.checkpoint import load_state, read_meta

    root = work_dir / plan.name
    records: list[dict[str, Any]] = []
    path = root / CHUNKS
    if path.exists():
        doc = _read_json(path)
        if not isinstance(doc, dict) or not isinstance(doc.get("chunks"), list):
            raise Refusal(f"{path}: no 'chunks' list")
        if doc.get("plan") != plan.to_dict():
            raise Refusal(
                f"{path}: recorded with another plan than this script's (compare its 'plan' "
                "with --plan); finish it with the script that started it, or start afresh"
            )
        records = doc["chunks"]
    step, finished = 0, False
    last = root / "run" / "last"
    if last.exists():
        from colliderfm.config import load_config

        if plan.recipe == "finetune":
            recipe = "classifier"  # supervised pretraining: a classifier's checkpoint
        else:
            recipe = load_config(plan.config).objective.name
        model = read_meta(last)["model"]
        got = model.get("objective") or model.get("task")
        if got != recipe:
            raise Refusal(f"{last}: a run of objective {got!r}, but {plan.name} is {recipe!r}")
        state = load_state(last)
        step, finished = int(state["step"]), bool(state.get("finished"))
    pending = _read_json(root / PENDING) if (root / PENDING).exists() else None
    return State(root, records, step, finished, pending)


def check_records(plan: Plan, records: list[dict[str, Any]], where: Path) -> None:
    """Check that each chunk record is the planned chunk (index, seed, size, steps).

    Args:
        plan: the run's plan.
        records: the records of ``chunks.json``.
        where: the file, for messages.

    Raises:
        Refusal: a record differs from the plan.
    """
    for i, r in enumerate(records):
        want = (i, plan.seed(i), plan.per_chunk, plan.steps_from(i), plan.steps_to(i))
        keys = ("index", "seed", plan.unit, "steps_from", "steps_to")
        got = tuple(r.get(k) for k in keys)
        if got != want:
            raise Refusal(
                f"{where}: record {i} has ({', '.join(keys)}) = {got}, the plan says {want}"
            )


def next_chunk(plan: Plan, state: State, allow_done: bool = False) -> int:
    """The index of the chunk to do next, after checking the records against the run.

    Args:
        plan: the run's plan.
        state: from :func:`read_state`.
        allow_done: return ``plan.chunks`` when every chunk is done instead of refusing.

    Returns:
        The next chunk's index (its pretraining may already be under way, or done but not yet
        recorded).

    Raises:
        Refusal: a record differs from the plan; the records and the run's step disagree; or
            every chunk is done (unless ``allow_done``).
    """
    where = state.root / CHUNKS
    check_records(plan, state.records, where)
    k = len(state.records)
    at = f"the run in {state.run} is at step {state.step}" + (
        " (finished)" if state.finished else ""
    )
    done = plan.steps_to(k - 1) if k else 0
    if k >= plan.chunks:
        if k > plan.chunks or state.step != plan.max_steps or not state.finished:
            raise Refusal(
                f"{where} records {k} finished chunks (to step {done}) but {at}: they disagree"
            )
        if allow_done:
            return plan.chunks
        raise Refusal(
            f"{plan.name}: all {plan.chunks} chunks are done (step {state.step} of "
            f"{plan.max_steps}); nothing to do but --finalize"
        )
    lo, hi = plan.steps_from(k), plan.steps_to(k)
    started = state.pending is not None and state.pending.get("index") == k
    ok = lo <= state.step <= hi and (state.step == lo or started)
    if state.finished and state.step != plan.max_steps:
        ok = False
    if not ok:
        raise Refusal(
            f"{where} records {k} finished chunks (to step {done}) but {at}: they disagree "
            f"(chunk {k} spans steps {lo}-{hi})"
        )
    return k


def _write_pending(state: State, pending: dict[str, Any]) -> None:
    from colliderfm.fileio import write_json

    write_json(pending, state.root / PENDING)
    state.pending = pending


def _append_record(plan: Plan, state: State, record: dict[str, Any]) -> None:
    """Add a finished chunk to ``chunks.json`` (atomically: a temporary file, then a rename)."""
    from colliderfm.fileio import write_json

    records = [*state.records, record]
    write_json({"name": plan.name, "plan": plan.to_dict(), "chunks": records}, state.root / CHUNKS)
    state.records = records


# --- one chunk ---------------------------------------------------------------------------------


def chunk_dir(plan: Plan, data_dir: Path, k: int) -> Path:
    """Where chunk ``k``'s shards go when the run is named alone."""
    return data_dir / plan.name / f"chunk-{k:02d}"


def shared_chunk_dir(plans: Sequence[Plan], data_dir: Path, k: int) -> Path:
    """Where chunk ``k``'s shards go for runs named together: ``DATA/NAME1+NAME2/chunk-KK``.

    The names are sorted (the folder does not depend on their order); one run's is its own
    :func:`chunk_dir`.
    """
    return data_dir / "+".join(sorted(p.name for p in plans)) / f"chunk-{k:02d}"


def chunk_ready(plan: Plan, k: int, path: Path) -> bool:
    """Whether ``path`` holds chunk ``k`` complete (manifest, shards, count, seed, classes).

    Args:
        plan: the run's plan.
        k: chunk index.
        path: the chunk's shard directory.

    Returns:
        True when it can be reused as it is.
    """
    from colliderfm.data.shards import read_manifest
    from colliderfm.errors import ColliderFMError

    if not (path / "manifest.json").is_file():
        return False
    try:
        m = read_manifest(path)
    except ColliderFMError:
        return False
    src = m.get("source") or {}
    ok = (
        m.get("kind", plan.unit) == plan.unit
        and m.get("n") == plan.per_chunk
        and src.get("seed") == plan.seed(k)
        and src.get("n_per_process") == plan.per_process
        and sorted(m.get("classes") or []) == sorted(plan.class_names)
    )
    if ok and plan.unit == "events":  # the physics mode (the classes tell the labels)
        ok = (src.get("settings") or {}).get("mpi") is (not plan.fast)
    return ok


def generate_chunk(plan: Plan, k: int, out: Path, workers: int, progress: bool) -> dict[str, Any]:
    """Generate chunk ``k``: ``per_process`` jets (events) of every process, seed
    ``seed_base + k``.

    Jets: the same as ``colliderfm generate jets --process ... --n N --seed S`` (default
    physics). Events: ``colliderfm generate events --process datalike --n N --seed S``, with
    ``--fast`` and ``--label-subprocesses`` as planned.

    Args:
        plan: the run's plan.
        k: chunk index.
        out: shard directory (appears only when complete).
        workers: generator processes.
        progress: show a progress bar.

    Returns:
        The chunk's manifest.
    """
    if plan.unit == "events":
        from colliderfm.data.generate.events import EventSettings
        from colliderfm.data.generate.events import generate_events as generate

        more = {
            "settings": EventSettings(mpi=not plan.fast),
            "label_subprocesses": plan.label_subprocesses,
        }
    else:
        from colliderfm.data.generate.jets import generate_jets as generate

        more = {}
    return generate(
        list(plan.processes),
        plan.per_process,
        out,
        seed=plan.seed(k),
        workers=workers,
        progress=progress,
        **more,
    )


def _last_loss(run: Path, step: int) -> float | None:
    """The last training loss the run logged up to ``step`` (None when none was logged)."""
    from colliderfm.train.logging import read_metrics

    try:
        values = [v for s, v in read_metrics(run).get("train_loss", []) if s <= step]
    except (OSError, ValueError):
        return None
    return round(values[-1], 5) if values else None


def pretrain_chunk(
    plan: Plan, k: int, data: Path, run: Path, progress: bool, stop: int | None = None
) -> dict[str, Any]:
    """Pretrain on chunk ``k`` up to ``stop`` or its last step (resuming the run when it has a
    state).

    Loads the recipe with overrides as ``colliderfm pretrain --config C --set ...`` does (for a
    ``finetune`` plan, ``colliderfm finetune``: supervised pretraining on the chunk's labels).

    Args:
        plan: the run's plan.
        k: chunk index.
        data: the chunk's shard directory.
        run: the pretraining run directory.
        progress: show a progress bar.
        stop: pause at this step (a snapshot inside the chunk); None: the chunk's last step.

    Returns:
        The pretraining summary.
    """
    from colliderfm.config import load_config
    from colliderfm.recipes import run_finetune, run_pretrain

    sets = [
        *plan.overrides,
        f"data.train={_arg_path(data)}",
        f"train.batch_size={plan.batch_size}",
        f"train.max_steps={plan.max_steps}",
    ]
    if stop is not None:
        sets.append(f"train.stop_at_step={stop}")
    elif k < plan.chunks - 1:  # the last chunk runs to max_steps and finishes the run
        sets.append(f"train.stop_at_step={plan.steps_to(k)}")
    cfg = load_config(plan.config, sets)
    fn = run_finetune if plan.recipe == "finetune" else run_pretrain
    return fn(cfg, run, resume=(run / "last").exists(), progress=progress)


def _pending_for(plan: Plan, state: State, k: int) -> dict[str, Any]:
    """Chunk ``k``'s ``pending.json`` so far (its wall times), or a fresh one."""
    pending = state.pending if state.pending and state.pending.get("index") == k else None
    pending = dict(pending or {"index": k, "seed": plan.seed(k), "generate_wall_s": 0.0})
    pending.setdefault("pretrain_wall_s", 0.0)
    return pending


def ready_chunk(
    plan: Plan, k: int, data: Path, elsewhere: list[Path], workers: int, progress: bool
) -> float:
    """Make ``data`` hold chunk ``k`` complete: reuse it, move it in, or generate it.

    Args:
        plan: a plan of the chunk (any of a group's: they generate the same chunks).
        k: chunk index.
        data: where the chunk is used from.
        elsewhere: other folders that may hold the complete chunk (a named run's own folder,
            left by an interrupted run of that name alone); one found there is moved to ``data``.
        workers: generator processes.
        progress: show a progress bar.

    Returns:
        The generation's wall time in seconds (0 when the chunk was reused or moved).

    Raises:
        Refusal: the generated chunk is not the planned one.
    """
    if chunk_ready(plan, k, data):
        print(f"[zoo] chunk {k}: reusing the complete chunk in {data}", file=sys.stderr)
        return 0.0
    for other in elsewhere:
        if other != data and chunk_ready(plan, k, other):
            if data.exists():
                shutil.rmtree(data)
            data.parent.mkdir(parents=True, exist_ok=True)
            os.replace(other, data)
            if other.parent.is_dir() and not any(other.parent.iterdir()):
                other.parent.rmdir()
            print(
                f"[zoo] chunk {k}: reusing the complete chunk of {other} in {data}", file=sys.stderr
            )
            return 0.0
    if data.exists():
        shutil.rmtree(data)  # incomplete or another chunk's: made afresh
    for stale in data.parent.glob(f".{data.name}.tmp-*"):  # a killed generation's
        shutil.rmtree(stale, ignore_errors=True)
    print(
        f"[zoo] chunk {k}: generating {plan.per_chunk:,} {plan.unit} (seed {plan.seed(k)}) into "
        f"{data}",
        file=sys.stderr,
    )
    t = time.perf_counter()
    generate_chunk(plan, k, data, workers, progress)
    took = time.perf_counter() - t
    if not chunk_ready(plan, k, data):
        raise Refusal(f"{data}: the generated chunk {k} is not the planned one")
    return took


def _record(plan: Plan, state: State, k: int, pending: dict[str, Any]) -> dict[str, Any]:
    """Chunk ``k``'s record, appended to ``chunks.json`` (``pending.json`` is then removed)."""
    from colliderfm.config import load_config
    from colliderfm.version import __version__

    cfg = load_config(plan.config, list(plan.overrides))
    record = {
        "index": k,
        "seed": plan.seed(k),
        plan.unit: plan.per_chunk,
        plan.per_process_key: plan.per_process,
        "classes": plan.class_names,
        "steps_from": plan.steps_from(k),
        "steps_to": plan.steps_to(k),
        "batch_size": plan.batch_size,
        "generate_wall_s": round(float(pending.get("generate_wall_s", 0.0)), 1),
        "shared_with": sorted(pending.get("shared_with") or []),
        "pretrain_wall_s": round(float(pending.get("pretrain_wall_s", 0.0)), 1),
        "train_loss": _last_loss(state.run, plan.steps_to(k)),
        "hardware": hardware(cfg.train.device),
        "generator": pending.get("generator"),
        "colliderfm": {"version": __version__, "commit": _git_commit()},
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    inside = [f"seen-{seen}" for seen in plan.snapshot_steps(k).values()]
    snap = snapshot(plan, state, k)
    kept = [*inside, *([snap.name] if snap is not None else [])]
    if len(kept) == 1:
        record["snapshot"] = kept[0]
    elif kept:
        record["snapshots"] = kept
    _append_record(plan, state, record)
    (state.root / PENDING).unlink(missing_ok=True)
    state.pending = None
    return record


def snapshot(plan: Plan, state: State, k: int, seen: int | None = None) -> Path | None:
    """Keep the weights when the jets (events) seen are one of the plan's ``snapshots``:
    ``WORK/NAME/seen-N/`` with the run's ``model.safetensors`` and ``config.yaml`` (a
    checkpoint ``--init`` and ``colliderfm.load`` read), written atomically.

    Args:
        plan: the run's plan.
        state: its state (the run directory holds the weights of the step reached).
        k: the chunk being done.
        seen: the snapshot inside chunk ``k`` just reached (:meth:`Plan.snapshot_steps`); None:
            chunk ``k`` is done, and ``(k + 1) * per_chunk`` were seen.

    Returns:
        The snapshot folder, or None when no snapshot is due.
    """
    if seen is None:
        seen = plan.per_chunk * (k + 1)
    if seen not in plan.snapshots:
        return None
    dst = state.root / f"seen-{seen}"
    tmp = state.root / f".seen-{seen}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("model.safetensors", "config.yaml"):
        shutil.copy2(state.run / name, tmp / name)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    return dst


def do_shared_chunk(
    plans: list[Plan],
    states: list[State],
    k: int,
    data_dir: Path,
    workers: int,
    progress: bool,
) -> list[dict[str, Any]]:
    """Generate (or reuse) chunk ``k`` once, pretrain each named run on it, record, delete it.

    The runs that already recorded chunk ``k`` are skipped; one that pretrained on it but was
    stopped before its record is only recorded. The chunk is generated when some run still has
    to pretrain on it, into :func:`shared_chunk_dir` (a single run's own :func:`chunk_dir`),
    and deleted once every run recorded it. Each run's ``pending.json`` is written before any
    pretraining starts, so a run interrupted while another pretrains is continued by the same
    command. Each record names in ``shared_with`` the other runs that pretrained on the same
    generated chunk, and holds that generation's wall time (the same value in each record).

    Args:
        plans: the named runs' plans (checked by :func:`check_shareable`).
        states: their states (updated in place).
        k: the chunk, from :func:`group_next_chunk`.
        data_dir: where chunks are generated.
        workers: generator processes.
        progress: show progress bars.

    Returns:
        The records appended (one per run that had not recorded chunk ``k``), in ``plans``' order.
    """
    members = [(p, s) for p, s in zip(plans, states, strict=True) if len(s.records) == k]
    data = shared_chunk_dir(plans, data_dir, k)
    pendings = {p.name: _pending_for(p, s, k) for p, s in members}
    users = [(p, s) for p, s in members if s.step != p.steps_to(k)]  # still to pretrain on it
    if users:
        own = [chunk_dir(p, data_dir, k) for p in plans]
        took = ready_chunk(users[0][0], k, data, own, workers, progress)
        src = json.loads((data / "manifest.json").read_text()).get("source") or {}
        generator = {"pythia8mc": src.get("pythia_version"), "fastjet": src.get("fastjet_version")}
        names = {p.name for p, _ in users}
        earlier = max(float(pendings[p.name].get("generate_wall_s") or 0.0) for p, _ in users)
        for p, s in users:
            pending = pendings[p.name]
            if took:
                pending["generate_wall_s"] += took
            elif not pending.get("generate_wall_s"):  # reused: the chunk's generation time
                pending["generate_wall_s"] = earlier
            others = set(pending.get("shared_with") or []) | (names - {p.name})
            pending["shared_with"] = sorted(others)
            pending["generator"] = generator
            _write_pending(s, pending)
    records = []
    for p, s in members:
        pending = pendings[p.name]
        if s.step != p.steps_to(k):  # else done, but not recorded yet (killed in between)
            print(
                f"[zoo] {p.name} chunk {k}: pretraining steps {max(s.step, p.steps_from(k))}-"
                f"{p.steps_to(k)} of {p.max_steps}",
                file=sys.stderr,
            )
            # pause at the snapshots inside the chunk (a run killed right after such a pause
            # takes the snapshot when it is continued), then run to the chunk's last step
            stops: list[tuple[int | None, int | None]] = []
            for step, seen in p.snapshot_steps(k).items():
                if step > s.step or (step == s.step and not (s.root / f"seen-{seen}").exists()):
                    stops.append((step, seen))
            for stop, seen in [*stops, (None, None)]:
                if stop is not None and stop == s.step:
                    snapshot(p, s, k, seen)
                    continue
                t = time.perf_counter()
                try:
                    summary = pretrain_chunk(p, k, data, s.run, progress, stop=stop)
                finally:  # an interrupted attempt's time counts too
                    pending["pretrain_wall_s"] += time.perf_counter() - t
                    _write_pending(s, pending)
                want = p.steps_to(k) if stop is None else stop
                if summary.get("steps") != want:
                    raise Refusal(
                        f"{s.run}: pretraining on chunk {k} stopped at step "
                        f"{summary.get('steps')}, not {want}"
                    )
                s.step = int(summary["steps"])
                s.finished = not summary.get("paused", False)
                if stop is not None:
                    snapshot(p, s, k, seen)
        records.append(_record(p, s, k, pending))
    if data.exists():
        shutil.rmtree(data)
    if data.parent.is_dir() and not any(data.parent.iterdir()):
        data.parent.rmdir()
    return records


def do_chunk(
    plan: Plan, state: State, k: int, data_dir: Path, workers: int, progress: bool
) -> dict[str, Any]:
    """Generate (or reuse), pretrain on, record and delete chunk ``k`` of one run.

    Args:
        plan: the run's plan.
        state: the current state (updated in place).
        k: the chunk, from :func:`next_chunk`.
        data_dir: where chunks are generated.
        workers: generator processes.
        progress: show progress bars.

    Returns:
        The chunk's record (as appended to ``chunks.json``).
    """
    [record] = do_shared_chunk([plan], [state], k, data_dir, workers, progress)
    return record


def check_shareable(plans: list[Plan]) -> None:
    """Check that the named runs are distinct and planned on the very same generated chunks.

    Raises:
        Refusal: a name is given twice, or two plans differ in their chunks (count, size per
            process, processes, seeds, unit, physics mode or labels).
    """
    names = [p.name for p in plans]
    if len(set(names)) != len(names):
        raise Refusal(f"a name is given twice: {' '.join(names)}")

    def chunks(p: Plan) -> tuple[Any, ...]:
        seeds = [p.seed(k) for k in range(p.chunks)]
        physics = (p.unit, p.fast, p.label_subprocesses)
        return p.chunks, p.per_process, tuple(p.processes), seeds, physics

    for p in plans[1:]:
        if chunks(p) != chunks(plans[0]):
            raise Refusal(
                f"{plans[0].name} and {p.name} are planned on different chunks (count, size per "
                "process, processes, seeds, unit, physics mode or labels): they cannot share one; "
                "run them separately"
            )


def group_next_chunk(plans: list[Plan], states: list[State]) -> int:
    """The chunk the named runs do next together, after checking they are at the same one.

    The consistent cases: every run's next chunk (:func:`next_chunk`) is the same; or some are
    one chunk behind the others, each with that chunk pending (``pending.json``: an invocation
    interrupted after the others had recorded it): the group starts there, and the runs that
    recorded it skip it.

    Args:
        plans: the named runs' plans.
        states: their states.

    Returns:
        The first chunk to do (some runs may have recorded it already).

    Raises:
        Refusal: a run's state is inconsistent (see :func:`next_chunk`); their next chunks
            differ otherwise; or every run has done every chunk.
    """
    if len(plans) == 1:
        return next_chunk(plans[0], states[0])
    ks = [next_chunk(p, s, allow_done=True) for p, s in zip(plans, states, strict=True)]
    first, n = min(ks), plans[0].chunks
    names = " ".join(p.name for p in plans)
    if first >= n:
        raise Refusal(f"{names}: all {n} chunks are done; nothing to do but --finalize")
    behind = [s for s, k in zip(states, ks, strict=True) if k == first]
    pending = all(s.pending is not None and s.pending.get("index") == first for s in behind)
    if not all(k == first for k in ks) and not (
        all(k in (first, first + 1) for k in ks) and pending
    ):
        at = ", ".join(f"{p.name} at chunk {k}" for p, k in zip(plans, ks, strict=True))
        raise Refusal(
            f"the names are not at the same next chunk ({at}); run them one at a time until "
            "they are"
        )
    return first


def run_chunks(
    plans: Plan | Sequence[Plan],
    n: int = 1,
    work_dir: Path = WORK_DIR,
    data_dir: Path = DATA_DIR,
    workers: int = 2,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Do the next ``n`` chunks of one or several zoo runs (fewer when fewer remain), then stop.

    Several runs share each chunk: it is generated once and every run pretrains on it (in the
    order given) before it is deleted; see :func:`do_shared_chunk` and :func:`group_next_chunk`.

    Args:
        plans: the run's plan, or the plans of runs on the same chunks.
        n: chunks to do in this invocation.
        work_dir: the state folder (``zoo-work``; ``NAME/run`` and ``NAME/chunks.json``).
        data_dir: where chunks are generated (and deleted once used).
        workers: generator processes.
        progress: show progress bars.

    Returns:
        The records of the chunks done (chunk by chunk, in ``plans``' order within a chunk).

    Raises:
        Refusal: every chunk is done, the runs are at different chunks or on different
            chunks, or a state is inconsistent.
    """
    plans = [plans] if isinstance(plans, Plan) else list(plans)
    if not plans:
        raise Refusal("no zoo run named")
    if n < 1:
        raise Refusal(f"--chunks must be at least 1 (got {n})")
    check_shareable(plans)
    states = [read_state(p, work_dir) for p in plans]
    first = group_next_chunk(plans, states)
    ensure_gitignore(work_dir)
    for p in plans:
        (work_dir / p.name).mkdir(parents=True, exist_ok=True)
    done = []
    for k in range(first, min(first + n, plans[0].chunks)):
        members = [(p, s) for p, s in zip(plans, states, strict=True) if len(s.records) == k]
        records = do_shared_chunk(plans, states, k, data_dir, workers, progress)
        for rec, (p, s) in zip(records, members, strict=True):
            done.append(rec)
            shared = f", shared with {', '.join(rec['shared_with'])}" if rec["shared_with"] else ""
            print(
                f"[zoo] {p.name} chunk {k} done: steps {rec['steps_from']}-{rec['steps_to']} of "
                f"{p.max_steps}, generated in {rec['generate_wall_s']} s{shared}, pretrained in "
                f"{rec['pretrain_wall_s']} s ({len(s.records)}/{p.chunks} chunks)",
                file=sys.stderr,
            )
    for p, s in zip(plans, states, strict=True):
        if len(s.records) == p.chunks:
            print(f"[zoo] {p.name}: all chunks done; next: --finalize", file=sys.stderr)
    return done


# --- finalize ----------------------------------------------------------------------------------


def describe_recipe(objective: str, params: dict[str, Any], unit: str = "jets") -> str:
    """One sentence on how the backbone was pretrained, from the checkpoint's objective params.

    Args:
        objective: ``contrastive``, ``mpm``, ``masked_id`` or ``classifier`` (supervised
            pretraining); others are named as they are.
        params: the objective's resolved parameters (``config.yaml``: ``model.params``), or for
            ``classifier`` ``{"classes": [...]}``.
        unit: ``jets`` or ``events`` (what the views are of).

    Returns:
        Markdown text.
    """
    g = params.get
    one = unit[:-1]
    if objective == "contrastive":
        return (
            f"contrastive pretraining (JetCLR-style): two physics-augmented views of each {one} "
            f"({', '.join(g('augment') or {}) or 'augmentations'}) are pulled together against "
            f"the other {unit} of the batch with the {str(g('loss')).upper()} loss (temperature "
            f"{g('temperature')}; projection head {g('proj_hidden')} -> {g('proj_dim')}, part of "
            "the checkpoint, dropped by fine-tuning)"
        )
    if objective == "mpm":
        return (
            f"masked particle modelling: {g('mask_fraction')} of each jet's particles are hidden, "
            f"a {g('decoder_depth')}-block pretraining-only decoder predicts each hidden "
            f"particle's VQ-VAE code ({g('codebook_size')} codes, cross-entropy) from the "
            "backbone's view of the visible ones (encoder-decoder layout). The VQ-VAE tokenizer "
            f"was trained first, for {g('tokenizer_steps')} steps on the first chunk, and is "
            "frozen inside the checkpoint"
        )
    if objective == "masked_id":
        kin = ""
        if g("kinematics_rate"):
            frm = "the pooled event embedding" if g("kinematics_from") == "pooled" else "its token"
            kin = (
                f"; a further {g('kinematics_rate')} of the objects have their kinematics hidden, "
                f"regressed from {frm} (weight {g('kinematics_weight')})"
            )
        return (
            "masked object identification (Kishimoto et al.): after event-level Lorentz "
            f"augmentations ({', '.join(g('augment') or {}) or 'augmentations'}), the type "
            f"(electron, muon, b-jet, light jet, MET) of {g('mask_rate')} of each event's "
            "objects is hidden and predicted from their kinematics and the rest of the event "
            f"(cross-entropy){kin}; the heads are part of the checkpoint, dropped by fine-tuning"
        )
    if objective == "classifier":
        classes = ", ".join(g("classes") or [])
        return (
            f"supervised pretraining on simulation: a classifier of the {unit}' generated "
            f"sub-process ({classes}; cross-entropy), whose classification head is part of "
            "the checkpoint and dropped by fine-tuning"
        )
    return f"the `{objective}` objective"


def _portable(meta: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The checkpoint metadata with absolute paths cut to their last two parts.

    Returns:
        (metadata, whether anything changed).
    """
    changed = False

    def walk(x: Any) -> Any:
        nonlocal changed
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        if isinstance(x, str) and os.path.isabs(x) and len(x) > 1:
            changed = True
            p = Path(x)
            return f"{p.parent.name}/{p.name}"
        return x

    return walk(meta), changed


def _total_wall(records: list[dict[str, Any]]) -> tuple[float, float]:
    gen = sum(float(r.get("generate_wall_s") or 0.0) for r in records)
    pre = sum(float(r.get("pretrain_wall_s") or 0.0) for r in records)
    return gen, pre


def _hours(s: float) -> str:
    return f"{s:,.0f} s ({s / 3600:.2f} h)"


def _machine(h: dict[str, Any]) -> str:
    cpu, cores, device, torch = (h.get(k) for k in ("cpu", "cores", "device", "torch"))
    return f"{cpu} ({cores} cores), device {device}, torch {torch}"


def _card_text(
    plan: Plan,
    records: list[dict[str, Any]],
    data: dict[str, Any],
    model: dict[str, Any],
    tools: str,
    n_seen: int,
) -> dict[str, str]:
    """The model card's parts that depend on what the chunks hold (jets or events).

    Returns:
        ``what`` (the data, plural), ``use`` and ``data`` (sections), ``passes`` (how each chunk
        is used), ``finetune`` (the config of the fine-tuning example) and ``task``.
    """
    seeds = [r["seed"] for r in records] or [plan.seed(0)]
    procs = ",".join(plan.processes)
    extra = plan.steps_per_pass * plan.batch_size - plan.per_chunk
    if plan.unit == "jets":
        second = f", plus {extra} jets of a reshuffled second" if extra > 0 else ""
        regen = f"colliderfm generate jets --process {procs} --n {plan.per_process} --seed SEED"
        regen += " --out DIR"
        return {
            "what": "jets",
            "use": f"""\
A starting point for jet classifiers (fine-tuning with few labels, or a frozen feature extractor)
on jets like its pretraining data: anti-kT R = 0.8, pT 550-650 GeV, |eta| < 2, at most
{data.get("max_particles")} particles with the `{model.get("feature_set")}` features. It has no
classification head: it is not a tagger by itself, and it was never validated on collision data.""",
            "data": f"""\
- {len(records)} chunks of {plan.per_chunk:,} distinct jets each, {plan.per_process:,} per
  class of the {len(plan.processes)} classes {", ".join(plan.class_names)}: {n_seen:,} jets in
  all, labels ignored. Each chunk was generated fresh with its own seed ({seeds[0]}-{seeds[-1]},
  so the chunks hold distinct jets), used for one resumed pretraining run and deleted.
- Generator: the package's own, `colliderfm generate jets --process {procs}` with the default
  physics: Pythia 8 at 14 TeV (default tune, multi-parton interactions and hadronisation on),
  FastJet anti-kT R = 0.8, one jet per event, and a simple parametrised detector response
  ({tools or "versions not recorded"}).
- Limits: this is not Delphes, nor CMS or ATLAS simulation, nor the JetClass data set itself:
  one generator and tune, no pile-up, one pT window. Expect shifts on other simulations, other
  kinematics and real data; fine-tune and validate on the target domain.
- Chunk k is regenerated byte for byte by `{regen}` with SEED = {plan.seed_base} + k.""",
            "passes": f"one pass over the chunk{second}",
            "finetune": "top_tagging.yaml",
            "task": "top",
        }
    flags = (" --fast" if plan.fast else "") + (
        " --label-subprocesses" if plan.label_subprocesses else ""
    )
    regen = f"colliderfm generate events --process {procs}{flags} --n {plan.per_process}"
    regen += " --seed SEED --out DIR"
    physics = (
        "in its opt-in fast mode (multi-parton interactions off; its two-sample AUC against the "
        "default physics is in docs/generation.md)"
        if plan.fast
        else "with the default physics"
    )
    labels = (
        "labelled by sub-process (" + ", ".join(plan.class_names) + "): the supervised "
        "pretraining's targets"
        if plan.recipe == "finetune"
        else "labels ignored"
    )
    drawn = plan.steps_per_chunk * plan.batch_size
    passes = (
        f"{drawn:,} events drawn, {drawn / plan.per_chunk:.2f} passes over the chunk, reshuffled "
        "each pass"
    )
    return {
        "what": "data-like events",
        "use": f"""\
A starting point for event classifiers (fine-tuning with few labels, or a frozen feature
extractor) on selected semileptonic-like events: at most {data.get("max_particles")} reconstructed
objects (leptons, b-tagged and light jets, MET) with the `{model.get("feature_set")}` features,
such as heavy 2HDM H -> ttbar against ttbar. It has no classification head for such a task: it is
not a classifier by itself, and it was never validated on collision data.""",
        "data": f"""\
- {len(records)} chunks of {plan.per_chunk:,} distinct selected events each of the data-like
  Standard Model mix (ttbar, single top, W+jets, ttV in their selected proportions; the stand-in
  for collision data), {n_seen:,} events in all, {labels}. Each chunk was generated fresh with its
  own seed ({seeds[0]}-{seeds[-1]}, so the chunks hold distinct events), used for one resumed
  pretraining run and deleted.
- Generator: the package's own, `colliderfm generate events --process {procs}`, {physics}:
  Pythia 8 at 14 TeV, FastJet anti-kT R = 0.4 jets, a parametrised b-tag and detector response,
  one isolated lepton and at least two b-tagged and two light jets
  ({tools or "versions not recorded"}).
- Limits: this is not Delphes, nor CMS or ATLAS simulation, nor collision data: one generator
  and tune, no pile-up, a simple detector. Expect shifts on other simulations and on real data;
  fine-tune and validate on the target domain.
- Chunk k is regenerated byte for byte by `{regen}` with SEED = {plan.seed_base} + k.""",
        "passes": passes,
        "finetune": "events.yaml",
        "task": "h2hdm",
    }


def find_probe(name: str, weights_id: str | None, work_dir: Path) -> dict[str, Any] | None:
    """The probe result of ``name`` whose weights hash is ``weights_id`` (the newest if several).

    Args:
        name: the zoo run.
        weights_id: :func:`colliderfm.studies.sweep.init_weights_id` of the weights.
        work_dir: the state folder.

    Returns:
        The result, or None.
    """
    folder = work_dir / name / "probes"
    if weights_id is None or not folder.is_dir():
        return None
    found = []
    for f in folder.glob("*.json"):
        try:
            r = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if r.get("init_weights") == weights_id:
            found.append(r)
    return max(found, key=lambda r: r.get("date", "")) if found else None


def probe_table(result: dict[str, Any]) -> str:
    """The Markdown table of one ``scripts/zoo_probe.py`` result (the model card's).

    Args:
        result: the probe result (``zoo-work/NAME/probes/LABEL.json``).

    Returns:
        Markdown: the backbone's row, one row per random backbone, and the gain.
    """

    def rej(t: dict[str, Any]) -> str:
        r = t.get("rejection") or {}
        return " / ".join("n/a" if r.get(k) is None else f"{r[k]:.0f}" for k in ("0.3", "0.5"))

    b = result["backbone"]
    rows = [
        "| backbone | pooling (chosen on validation) | val AUC | test AUC | 1/eps_B at 0.3 / 0.5 |"
        + (" test AUC (JetClass ROOT) |" if "root" in b else ""),
        "|---|---|---|---|---|" + ("---|" if "root" in b else ""),
        f"| `{result['name']}` ({result['label']}) | {b['pooling']} | {b['val_auc']['chosen']:.4f} "
        f"| **{b['test']['auc']:.4f}** | {rej(b['test'])} |"
        + (f" {b['root']['auc']:.4f} |" if "root" in b else ""),
    ]
    for r in result["random"]:
        rows.append(
            f"| random, seed {r['seed']} | {r['pooling']} | {r['val_auc']['chosen']:.4f} "
            f"| {r['test']['auc']:.4f} | {rej(r['test'])} |" + (" |" if "root" in b else "")
        )
    g = result["gain"]
    rows.append("")
    rows.append(
        f"Gain over the mean random probe ({g['random_mean']:.4f}): **{g['auc']:+.4f}** AUC "
        f"(target +0.015); over the best random probe: {g['over_best_random']:+.4f}."
    )
    return "\n".join(rows)


def _probe_text(probe: dict[str, Any]) -> str:
    """The card's linear-probe section from a ``scripts/zoo_probe.py`` result."""
    p = probe["protocol"]
    train, val, test = (
        next(s for s in p["splits"] if s["name"] == k) for k in ("train", "val", "test")
    )
    root = (
        " The ROOT column evaluates the same probe on the test jets written as a JetClass-schema "
        "ROOT file by `scripts/write_jetclass_root.py` (which uses no colliderfm code)."
        if "root" in probe["backbone"]
        else ""
    )
    return f"""\
Linear probe of the frozen embedding (`scripts/zoo_probe.py {probe["name"]}`): L-BFGS logistic
regression on {2 * train["n_per_class"]:,} labelled {p["unit"]} ({p["processes"]}, default
physics, seed {train["seed"]}), its L2 strength and the pooling (class attention or token mean,
`finetune.frozen_pooling=best`) chosen on {2 * val["n_per_class"]:,} validation {p["unit"]}
(seed {val["seed"]}); test AUC and 1/eps_B at eps_S = 0.3 / 0.5 on {2 * test["n_per_class"]:,}
independent {p["unit"]} (seed {test["seed"]}), against three random `{probe["preset"]}` backbones
probed the same way.{root} Measured {probe["date"]} on {_machine(probe.get("hardware") or {})}.

{probe_table(probe)}"""


def model_card(
    plan: Plan,
    records: list[dict[str, Any]],
    meta: dict[str, Any],
    info: dict[str, Any],
    probe: dict[str, Any] | None = None,
) -> str:
    """The entry's ``MODEL_CARD.md``, from the chunk records and the checkpoint.

    Args:
        plan: the run's plan.
        records: the chunk records (``chunks.json``).
        meta: the checkpoint's ``config.yaml``.
        info: the entry's ``meta.json``.
        probe: the ``scripts/zoo_probe.py`` result of these weights (None: not measured).

    Returns:
        Markdown.
    """
    name, model, cfg = plan.name, meta["model"], meta.get("config") or {}
    train, data = cfg.get("train") or {}, cfg.get("data") or {}
    if model.get("task") == "classifier":
        recipe = describe_recipe("classifier", {"classes": model.get("classes")}, plan.unit)
    else:
        recipe = describe_recipe(str(model.get("objective")), model.get("params") or {}, plan.unit)
    gen, pre = _total_wall(records)
    versions = sorted({json.dumps(r.get("generator"), sort_keys=True) for r in records})
    tools = "; ".join(
        f"pythia8mc {g.get('pythia8mc')}, fastjet {g.get('fastjet')}"
        for g in (json.loads(v) for v in versions)
        if isinstance(g, dict)
    )
    machines: dict[str, list[int]] = {}
    for r in records:
        machines.setdefault(_machine(r.get("hardware") or {}), []).append(r["index"])
    hw = "\n".join(f"- {m}: chunk(s) {', '.join(map(str, i))}" for m, i in sorted(machines.items()))
    rows = "\n".join(
        f"| {r['index']} | {r['seed']} | {r[plan.unit]:,} | {r['steps_from']}-{r['steps_to']} | "
        f"{r.get('generate_wall_s')} | {r.get('pretrain_wall_s')} | "
        f"{'' if r.get('train_loss') is None else r.get('train_loss')} | "
        f"{(r.get('hardware') or {}).get('device')} | {r.get('date')} |"
        for r in records
    )
    commits = sorted({str((r.get("colliderfm") or {}).get("commit")) for r in records})
    shared: dict[str, list[int]] = {}
    for r in records:
        for other in r.get("shared_with") or []:
            shared.setdefault(other, []).append(r["index"])
    sharing = "".join(
        f" Chunk(s) {', '.join(map(str, i))} were generated once and also pretrained "
        f"`zoo:{other}`: their generation wall time is that one generation's, counted in both "
        "entries."
        for other, i in sorted(shared.items())
    )
    auc = info.get("probe_auc")
    if probe is not None:
        results = _probe_text(probe)
    elif auc is None:
        results = (
            f"Linear-probe AUC: not measured yet (`scripts/zoo_probe.py {name}` before "
            "`--finalize` measures it)."
        )
    else:
        results = f"Linear-probe AUC: **{float(auc):.4f}** (as given to `--finalize --probe-auc`)."
    kept = [(r["index"], r["snapshot"]) for r in records if r.get("snapshot")]
    snaps = (
        " Intermediate weights (for the pretraining-size scaling study, not shipped): "
        + "; ".join(f"`{s}` after chunk {i}" for i, s in kept)
        + f", in `zoo-work/{name}/` of the commits that pretrained them."
        if kept
        else ""
    )
    n_seen = sum(r[plan.unit] for r in records)
    head = f"| chunk | seed | {plan.unit} | steps | generate (s) | pretrain (s) | last train loss "
    head += "| device | date |"
    backbone = model.get("name")
    text = _card_text(plan, records, data, model, tools, n_seen)
    how = "without labels" if plan.recipe == "pretrain" else "on the generator's labels"
    return f"""# zoo:{name}

A `{backbone}` backbone, `{model.get("preset")}` preset ({info["parameters"]:,} parameters),
pretrained {how} on {n_seen:,} generated {text["what"]} by {recipe}.

## Intended use

{text["use"]}

## Training data and its limits

{text["data"]}

## Training

Recipe `{_shown(plan.config, REPO_ROOT)}`, run by `scripts/zoo_pretrain.py`: one resumed run per
chunk, {plan.steps_per_chunk} steps each ({text["passes"]}), paused at the
chunk's last step (`train.stop_at_step`) and resumed on the next chunk, whose stream starts
afresh. {plan.max_steps:,} steps at batch {plan.batch_size}; AdamW, learning
rate {train.get("lr")}, weight decay {train.get("weight_decay")}, linear warm-up over
{train.get("warmup")} of the steps, then cosine decay over all {plan.max_steps:,} steps (one
schedule across the chunks); gradient clipping {train.get("grad_clip")}, precision
{train.get("precision")}, seed {train.get("seed")}; colliderfm commit(s) {", ".join(commits)}.

{head}
|---|---|---|---|---|---|---|---|---|
{rows}

Total: {records[-1]["steps_to"] if records else 0:,} steps at batch {plan.batch_size}; wall time
{_hours(gen + pre)}: generation {_hours(gen)}, pretraining {_hours(pre)}.{sharing}{snaps}

Hardware:

{hw}

## Measured results

{results}

## How to fine-tune

```bash
colliderfm finetune --config configs/finetune/{text["finetune"]} --init zoo:{name} \\
    --mode full --out runs/{name}-{text["task"]}          # or --mode linear, frozen, lp-ft
```

```python
import colliderfm
model = colliderfm.load("zoo:{name}")   # the backbone with its pretraining head, eval mode
```

## Reproduce it from nothing

```bash
.venv/bin/python scripts/zoo_pretrain.py {name} --plan                 # the plan above
.venv/bin/python scripts/zoo_pretrain.py {name} --chunks {plan.chunks}  # or one chunk per call
.venv/bin/python scripts/zoo_pretrain.py {name} --finalize             # this folder
```

Generation is byte-identical for the same seeds; training is reproducible on the same hardware
and software, not bit for bit across devices.
"""


def finished_state(plan: Plan, work_dir: Path = WORK_DIR) -> State:
    """The state of a finished run (every chunk recorded, the run at its last step).

    Raises:
        Refusal: the run is not finished, or its records differ from the plan.
    """
    state = read_state(plan, work_dir)
    if len(state.records) != plan.chunks or state.step != plan.max_steps or not state.finished:
        raise Refusal(
            f"{plan.name}: not finished ({len(state.records)} of {plan.chunks} chunks recorded, "
            f"run at step {state.step} of {plan.max_steps}); do the remaining chunks first"
        )
    check_records(plan, state.records, state.root / CHUNKS)
    return state


def finalize(
    plan: Plan,
    work_dir: Path = WORK_DIR,
    zoo_root: Path = ZOO_DIR,
    probe_auc: float | None = None,
    max_bytes: int = MAX_BYTES,
) -> Path:
    """Write the zoo entry ``zoo_root/NAME/`` from the finished run.

    Args:
        plan: the run's plan.
        work_dir: the state folder.
        zoo_root: the zoo folder (``src/colliderfm/zoo``).
        probe_auc: the linear-probe AUC to record (None: not measured).
        max_bytes: the largest entry allowed.

    Returns:
        The entry's folder (checked with :func:`colliderfm.zoo.resolve` and loaded).

    Raises:
        Refusal: the run is not finished, or the entry would be too large.
    """
    from colliderfm import zoo
    from colliderfm.checkpoints import load_model
    from colliderfm.fileio import write_json, write_text
    from colliderfm.studies.sweep import init_weights_id
    from colliderfm.train.checkpoint import META, WEIGHTS, read_meta, resolve

    state = finished_state(plan, work_dir)
    src = resolve(state.run / "last")  # the final weights (the run's folder holds the same)
    meta = read_meta(src)
    probe = find_probe(plan.name, init_weights_id(str(src)), work_dir)
    if probe is not None and probe_auc is not None:
        raise Refusal(
            f"{plan.name}: --probe-auc given, but zoo-work/{plan.name}/probes/ holds a probe "
            "of these weights: drop --probe-auc (the card uses the measured probe)"
        )
    if probe is not None:
        probe_auc = float(probe["backbone"]["test"]["auc"])
    zoo_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{plan.name}.tmp-", dir=zoo_root))
    try:
        shutil.copyfile(src / WEIGHTS, tmp / WEIGHTS)
        clean, changed = _portable(meta)
        if changed:  # no machine paths in the shipped metadata
            write_text(tmp / META, yaml.safe_dump(clean, sort_keys=False))
        else:
            shutil.copyfile(src / META, tmp / META)
        model = load_model(tmp)
        m = meta["model"]
        info = {
            "name": plan.name,
            "recipe": m.get("objective"),
            "backbone": m.get("name"),
            "preset": m.get("preset"),
            "parameters": sum(p.numel() for p in model.backbone.parameters()),
            "pretraining_data": _pretraining_data(plan, state.records),
            "steps": state.step,
            "probe_auc": probe_auc,
        }
        if probe is not None:
            info["probe"] = {
                "pooling": probe["backbone"]["pooling"],
                "gain_over_random": round(probe["gain"]["auc"], 5),
                "random_mean_auc": round(probe["gain"]["random_mean"], 5),
                **(
                    {"root_auc": probe["backbone"]["root"]["auc"]}
                    if "root" in probe["backbone"]
                    else {}
                ),
                "protocol": f"scripts/zoo_probe.py ({probe['protocol']['unit']})",
            }
        from colliderfm.fileio import sha256_file

        sums = "".join(f"{sha256_file(tmp / f)}  {f}\n" for f in zoo.CHECKED)
        write_text(tmp / zoo.CHECKSUMS, sums)
        write_json(info, tmp / zoo.INFO)
        write_text(tmp / zoo.CARD, model_card(plan, state.records, meta, info, probe))
        tmp.chmod(0o755)  # package data: readable by all (mkdtemp and mkstemp give 0700/0600)
        for f in tmp.iterdir():
            f.chmod(0o644)
        size = sum(f.stat().st_size for f in tmp.iterdir())
        if size > max_bytes:
            raise Refusal(
                f"{plan.name}: the entry is {size / 1e6:.2f} MB, over the {max_bytes / 1e6:g} MB "
                "limit of a shipped checkpoint; nothing was written"
            )
        folder = zoo_root / plan.name
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    path = zoo.resolve(f"{zoo.PREFIX}{plan.name}", root=zoo_root)  # checksums verified
    load_model(path)
    print(
        f"[zoo] wrote {folder} ({size / 1e6:.2f} MB; {info['steps']} steps); commit it, then "
        f"`git rm -r {_shown(work_dir / plan.name, REPO_ROOT)}` (the state is no longer needed)",
        file=sys.stderr,
    )
    return path


# --- command line ------------------------------------------------------------------------------


def _pretraining_data(plan: Plan, records: list[dict[str, Any]]) -> str:
    """The entry's one-line description of its pretraining data (``meta.json``)."""
    n = sum(r[plan.unit] for r in records)
    seeds = f"{plan.chunks} seeded chunks ({plan.seed(0)}-{plan.seed(plan.chunks - 1)})"
    if plan.unit == "jets":
        return (
            f"{n:,} generated jets, {seeds} of the {len(plan.processes)} JetClass-like classes "
            "(Pythia 8 + simple detector response, pT 550-650 GeV)"
        )
    mode = "fast mode (MPI off)" if plan.fast else "default physics"
    return (
        f"{n:,} generated data-like events, {seeds} of the SM mix (Pythia 8 {mode} + simple "
        "detector response, semileptonic selection)"
    )


def describe_plan(plan: Plan) -> str:
    """The plan as printed by ``--plan``."""
    if plan.unit == "jets":
        size = (
            f"{plan.per_process:,} jets per class x {len(plan.processes)} classes = "
            f"{plan.per_chunk:,} distinct jets a chunk"
        )
    else:
        mode = ", fast mode" if plan.fast else ""
        labels = ", labelled by sub-process" if plan.label_subprocesses else ""
        size = f"{plan.per_chunk:,} distinct selected events a chunk{mode}{labels}"
    passes = f"{plan.passes} x " if plan.passes > 1 else ""
    lines = [
        f"{plan.name}: {_shown(plan.config, REPO_ROOT)}"
        + (" (supervised: colliderfm finetune)" if plan.recipe == "finetune" else ""),
        f"  {plan.chunks} chunks x {size}, {plan.chunks * plan.per_chunk:,} in all",
        f"  processes: {','.join(plan.processes)}",
        f"  batch {plan.batch_size}, {plan.steps_per_chunk} steps per chunk "
        f"({passes}ceil({plan.per_chunk} / {plan.batch_size})), train.max_steps {plan.max_steps}",
        f"  state: {_shown(WORK_DIR / plan.name, REPO_ROOT)}/ (run/, {CHUNKS})",
    ]
    lines += [
        f"  chunk {k}: seed {plan.seed(k)}, steps {plan.steps_from(k)}-{plan.steps_to(k)}"
        for k in range(plan.chunks)
    ]
    snaps = ", ".join(f"{s:,}" for s in sorted(plan.snapshots))
    lines.append(f"  snapshots (seen-N, kept for the scaling study): {snaps}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(
        prog="zoo_pretrain.py",
        description="Pretrain zoo checkpoints one seeded chunk per resumed run, over sessions "
        "(several names share each generated chunk).",
    )
    p.add_argument(
        "names",
        nargs="+",
        metavar="name",
        choices=sorted(PLANS),
        help="the zoo run; several share each generated chunk",
    )
    p.add_argument("--chunks", type=int, default=1, help="chunks to do now (default 1)")
    p.add_argument("--workers", type=int, default=2, help="generator processes (default 2)")
    p.add_argument("--data-dir", type=Path, default=DATA_DIR, help="where chunks are generated")
    p.add_argument("--work-dir", type=Path, default=WORK_DIR, help="the state folder")
    p.add_argument("--zoo-root", type=Path, default=ZOO_DIR, help="where --finalize writes")
    p.add_argument("--plan", action="store_true", help="print the plan and exit")
    p.add_argument("--finalize", action="store_true", help="write the zoo entry from the run")
    p.add_argument("--probe-auc", type=float, default=None, help="linear-probe AUC to record")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0, 2 for a refusal or a user error, 130/143 when interrupted.
    """
    args = parse_args(argv)
    _git_commit()  # the code this invocation runs (cached for the records it writes)
    names = list(dict.fromkeys(args.names))  # each once, in the order given
    plans = [PLANS[n] for n in names]
    if args.plan:
        print("\n\n".join(describe_plan(plan) for plan in plans))
        return 0
    if args.probe_auc is not None and not 0.0 <= args.probe_auc <= 1.0:
        print(
            f"zoo_pretrain: error: --probe-auc {args.probe_auc} is not in [0, 1]", file=sys.stderr
        )
        return 2
    if args.probe_auc is not None and len(plans) > 1:
        print(
            "zoo_pretrain: error: --probe-auc is one model's: finalize one name at a time",
            file=sys.stderr,
        )
        return 2
    if not args.plan and not args.finalize and not _inside(args.data_dir, Path.cwd()):
        print(
            f"zoo_pretrain: error: --data-dir {args.data_dir} is outside the working directory: "
            "the runs' config.yaml (committed) would record a machine path; pick a folder "
            "inside it (default data/zoo-chunks, which git ignores)",
            file=sys.stderr,
        )
        return 2
    from colliderfm.errors import ColliderFMError
    from colliderfm.runtime import raise_on_sigterm
    from colliderfm.train.logging import setup_console_logging

    setup_console_logging()
    raise_on_sigterm()
    try:
        if args.finalize:
            for plan in plans:  # all finished, or nothing is written
                finished_state(plan, args.work_dir)
            for plan in plans:
                finalize(plan, args.work_dir, args.zoo_root, probe_auc=args.probe_auc)
        else:
            run_chunks(
                plans, args.chunks, args.work_dir, args.data_dir, args.workers, not args.no_progress
            )
    except (Refusal, ColliderFMError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"zoo_pretrain: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = int(getattr(exc, "signum", 2))
        print(
            f"zoo_pretrain: interrupted: rerun `scripts/zoo_pretrain.py {' '.join(names)}` to "
            "continue the chunk (a complete generated chunk is reused, the runs resume)",
            file=sys.stderr,
        )
        return 128 + signum
    return 0


if __name__ == "__main__":
    sys.exit(main())
