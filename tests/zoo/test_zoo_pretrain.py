"""scripts/zoo_pretrain.py: chunked zoo pretraining, one seeded chunk per resumed run.

The script's functions run end to end at a tiny scale (2 chunks of 20 jets per class of 2
classes, batch 16, the tiny preset: 3 steps a chunk) in a temporary folder. The fast tests
replace the generator with one writing synthetic shards of the planned size and seed (also for
two names sharing each generated chunk); the last test generates real jets with Pythia 8 +
FastJet.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from cli_helpers import load_script
from synth import synthetic_jets

import colliderfm
from colliderfm import zoo
from colliderfm.checkpoints import load_model
from colliderfm.config import load_config
from colliderfm.data.shards import ShardWriter
from colliderfm.finetune.classifier import load_pretrained_backbone
from colliderfm.models.factory import build_backbone
from colliderfm.train.checkpoint import load_state, read_checkpoint_meta

ROOT = Path(__file__).resolve().parents[2]
NAME = "jets-tiny-test"
NAME2 = "jets-tiny-test-mpm"  # a second run on the same chunks
TINY = (
    "model.preset=tiny",
    "model.pair_features=false",
    "data.max_particles=32",
    "data.shuffle_buffer=64",
    "train.threads=1",
    "train.log_every=1",
)


zp = load_script("zoo_pretrain.py", "zoo_pretrain_script")


def _plan(recipe: str = "contrastive", *extra: str, name: str = NAME) -> Any:
    return zp.Plan(
        name,
        ROOT / "configs" / "zoo" / f"jets-{recipe}-small.yaml",
        chunks=2,
        per_process=20,
        processes=("qcd", "top"),
        batch_size=16,
        overrides=(*TINY, *extra),
    )


def _fake_generator(calls: list[int], outs: list[Path] | None = None, delay: float = 0.0) -> Any:
    """A stand-in for generate_chunk: synthetic jets with the planned count, seed and classes.

    Each call appends the chunk index to ``calls`` (and its folder to ``outs``), after ``delay``
    seconds (a measurable generation wall time).
    """

    def generate(plan: Any, k: int, out: Path, workers: int, progress: bool) -> dict:
        calls.append(k)
        if outs is not None:
            outs.append(out)
        time.sleep(delay)
        source = {
            "generator": "synthetic",
            "seed": plan.seed(k),
            "n_per_process": plan.per_process,
            "processes": list(plan.processes),
        }
        with ShardWriter(out, "jets", plan.class_names, source, rows_per_shard=1000) as w:
            w.write_chunk(synthetic_jets(plan.per_chunk, seed=plan.seed(k), max_particles=30))
        return {}

    return generate


def _git_keeps(rel: str) -> bool:
    """Whether git would commit ``zoo-work/REL`` under the repository's zoo-work/.gitignore."""
    rc = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "-q", "--no-index", f"zoo-work/{rel}"],
        check=False,
    ).returncode
    assert rc in (0, 1)
    return rc == 1


def _have_git() -> bool:
    return shutil.which("git") is not None and (ROOT / ".git").exists()


def _records(work: Path, name: str = NAME) -> list[dict[str, Any]]:
    return json.loads((work / name / "chunks.json").read_text())["chunks"]


def _span(r: dict[str, Any]) -> tuple[int, int, int, int, int]:
    return r["index"], r["seed"], r["jets"], r["steps_from"], r["steps_to"]


# --- the plans ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,recipe", [("jets-contrastive-small", "contrastive"), ("jets-mpm-small", "mpm")]
)
def test_plans_and_recipes_are_the_issues(
    name: str, recipe: str, capsys: pytest.CaptureFixture
) -> None:
    plan = zp.PLANS[name]
    # the processes of `colliderfm generate jets --process qcd,hbb,...,top,tblnu` (the issue's)
    assert ",".join(plan.processes) == "qcd,hbb,hcc,hgg,h4q,hlnuqq,zqq,wqq,top,tblnu"
    assert len(set(plan.class_names)) == 10
    assert (plan.chunks, plan.per_process, plan.per_chunk) == (10, 10_000, 100_000)
    assert [plan.seed(k) for k in range(10)] == list(range(7000, 7010))
    assert (plan.batch_size, plan.steps_per_chunk, plan.max_steps) == (256, 391, 3910)
    assert plan.chunks * plan.per_chunk >= 1_000_000
    cfg = load_config(plan.config)
    base = load_config(ROOT / "configs" / "pretrain" / f"{recipe}.yaml")
    assert cfg.data.train is None and cfg.objective.probe_data is None
    assert cfg.objective.name == recipe and cfg.objective.params == base.objective.params
    assert (cfg.model.name, cfg.model.preset) == ("part", "small") == (base.model.name, "small")
    for key in ("batch_size", "lr", "weight_decay", "warmup", "grad_clip", "seed", "precision"):
        assert getattr(cfg.train, key) == getattr(base.train, key), key
    assert (cfg.data.max_particles, cfg.data.features) == (base.data.max_particles, "part")
    assert cfg.train.max_steps == plan.max_steps
    assert zp.main([name, "--plan"]) == 0
    out = capsys.readouterr().out
    assert "chunk 9: seed 7009, steps 3519-3910" in out and "100,000 distinct jets" in out


def test_gitignore_keeps_only_what_resume_reads() -> None:
    assert (ROOT / "zoo-work" / ".gitignore").read_text() == zp.GITIGNORE
    if not _have_git():
        pytest.skip("no git checkout")
    kept = [
        ".gitignore",
        "x/chunks.json",
        "x/pending.json",
        "x/run/last/state.pt",
        "x/run/last/model.safetensors",
        "x/run/last/config.yaml",
        "x/run/config.yaml",
        "x/run/tokenizer/model.safetensors",
        "x/seen-100000/model.safetensors",
        "x/seen-100000/config.yaml",
    ]
    dropped = [
        "x/run/tb/events.out.tfevents.1",
        "x/run/metrics.csv",
        "x/run/model.safetensors",
        "x/run/.colliderfm.lock",
        "x/run/last.old/state.pt",
        "x/run/.last.tmp-1/state.pt",
        "x/run/tokenizer/last/state.pt",
        "x/run/tokenizer/tb/events.out.tfevents.1",
    ]
    assert [f for f in kept if not _git_keeps(f)] == []
    assert [f for f in dropped if _git_keeps(f)] == []


# --- chunks, resume, refusals, finalize (synthetic jets) ---------------------------------------


def test_chunks_resume_the_run_then_refuse_and_finalize(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    plan = dataclasses.replace(_plan(), snapshots=(40,))  # weights kept after 40 jets seen
    work, data, zroot = tmp_path / "work", tmp_path / "data", tmp_path / "zoo"
    calls: list[int] = []
    monkeypatch.setattr(zp, "generate_chunk", _fake_generator(calls))
    run = work / NAME / "run"

    [r0] = zp.run_chunks(plan, 1, work, data, workers=1, progress=False)
    assert _span(r0) == (0, 7000, 40, 0, 3)
    snap = work / NAME / "seen-40"
    assert r0["snapshot"] == "seen-40" and sorted(p.name for p in snap.iterdir()) == [
        "config.yaml",
        "model.safetensors",
    ]
    after_chunk0 = colliderfm.load(snap).state_dict()
    assert all(torch.equal(v, load_model(run).state_dict()[k]) for k, v in after_chunk0.items())
    state = load_state(run / "last")
    assert state["step"] == 3 and not state["finished"]  # paused at the chunk's last step
    assert not zp.chunk_dir(plan, data, 0).exists()  # the chunk's data is deleted
    assert (work / ".gitignore").read_text() == zp.GITIGNORE
    assert r0["hardware"]["cores"] and r0["hardware"]["torch"] == torch.__version__
    assert r0["pretrain_wall_s"] > 0 and r0["classes"] == ["QCD", "Tbqq"]
    assert r0["shared_with"] == []  # named alone
    with pytest.raises(zp.Refusal, match="not finished"):
        zp.finalize(plan, work, zroot)

    if _have_git():  # a fresh checkout holds only what git keeps: resume needs nothing else
        for f in sorted(work.rglob("*")):
            rel = f.relative_to(work).as_posix()
            if f.is_file() and not _git_keeps(rel):
                f.unlink()
        assert not (run / "tb").exists() or not any((run / "tb").iterdir())

    [r1] = zp.run_chunks(plan, 5, work, data, workers=1, progress=False)  # only one is left
    assert _span(r1) == (1, 7001, 40, 3, 6)
    assert "snapshot" not in r1  # 80 jets seen: not a snapshot
    kept = colliderfm.load(snap).state_dict()  # untouched by the next chunk
    assert all(torch.equal(v, after_chunk0[k]) for k, v in kept.items())
    state = load_state(run / "last")
    assert state["step"] == 6 and state["finished"]
    assert state["scheduler"]["last_epoch"] == 6  # one schedule over both chunks
    assert [_span(r) for r in _records(work)] == [_span(r0), _span(r1)]
    assert calls == [0, 1]

    with pytest.raises(zp.Refusal, match="all 2 chunks are done"):
        zp.run_chunks(plan, 1, work, data, workers=1, progress=False)
    monkeypatch.setitem(zp.PLANS, NAME, plan)
    capsys.readouterr()
    assert zp.main([NAME, "--work-dir", str(work), "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "outside the working directory" in err[0]  # no machine paths
    monkeypatch.chdir(tmp_path)
    assert zp.main([NAME, "--work-dir", str(work), "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zoo_pretrain: error:") and "done" in err[0]

    with pytest.raises(zp.Refusal, match="over the"):  # too large: nothing is written
        zp.finalize(plan, work, tmp_path / "small-zoo", max_bytes=1000)
    assert list((tmp_path / "small-zoo").iterdir()) == []

    path = zp.finalize(plan, work, zroot)
    assert path == zroot / NAME == zoo.resolve(f"zoo:{NAME}", root=zroot)
    monkeypatch.setattr(zoo, "ZOO_ROOT", zroot)
    model = colliderfm.load(f"zoo:{NAME}")
    meta = json.loads((path / "meta.json").read_text())
    assert set(meta) == set(zoo.META_KEYS)
    assert (meta["recipe"], meta["backbone"], meta["preset"]) == ("contrastive", "part", "tiny")
    assert meta["steps"] == 6 and meta["probe_auc"] is None
    assert meta["parameters"] == sum(p.numel() for p in model.backbone.parameters())
    assert str(tmp_path) not in (path / "config.yaml").read_text()  # no machine paths
    card = (path / "MODEL_CARD.md").read_text()
    assert "| 0 | 7000 | 40 | 0-3 |" in card and "| 1 | 7001 | 40 | 3-6 |" in card
    assert "AUC: not measured yet (`scripts/zoo_probe.py" in card and "not Delphes" in card
    assert "`seen-40` after chunk 0" in card
    assert f"--init zoo:{NAME}" in card and f"scripts/zoo_pretrain.py {NAME}" in card

    # usable as finetune --init zoo:NAME: the backbone weights load into a fresh backbone
    backbone = build_backbone(read_checkpoint_meta(path).model.backbone())
    load_pretrained_backbone(backbone, f"zoo:{NAME}")
    for a, b in zip(
        backbone.state_dict().values(), model.backbone.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)

    args = [
        "--finalize",
        "--work-dir",
        str(work),
        "--zoo-root",
        str(zroot),
        "--probe-auc",
        "0.9123",
    ]
    assert zp.main([NAME, *args]) == 0
    assert zoo.list_entries()[0].meta["probe_auc"] == pytest.approx(0.9123)
    assert "**0.9123**" in (zroot / NAME / "MODEL_CARD.md").read_text()

    # a probe of these weights by scripts/zoo_probe.py goes into the card and meta.json; one of
    # other weights (another hash) is ignored, and --probe-auc next to a measured probe refused
    from colliderfm.studies.sweep import init_weights_id

    probe = _probe_result(init_weights_id(str(work / NAME / "run" / "last")))
    (work / NAME / "probes").mkdir()
    (work / NAME / "probes" / "seen-80.json").write_text(json.dumps(probe))
    other = {**probe, "init_weights": "0" * 16, "date": "2099-01-01T00:00:00Z"}
    (work / NAME / "probes" / "seen-40.json").write_text(json.dumps(other))
    assert _git_keeps(f"{NAME}/probes/seen-80.json") or not _have_git()
    assert zp.main([NAME, *args]) == 2
    assert zp.main([NAME, *args[:-2]]) == 0
    meta = zoo.list_entries()[0].meta
    assert meta["probe_auc"] == pytest.approx(0.9756)
    assert meta["probe"]["gain_over_random"] == pytest.approx(0.0206)
    assert meta["probe"]["root_auc"] == pytest.approx(0.9754)
    card = (zroot / NAME / "MODEL_CARD.md").read_text()
    assert "| `jets-tiny-test` (seen-80) | mean | 0.9765 | **0.9756** | 238 / 98 | 0.9754 |" in card
    assert "| random, seed 1 | cls | 0.9600 | 0.9550 | 70 / 33 | |" in card
    assert "Gain over the mean random probe (0.9550): **+0.0206** AUC" in card
    assert "10,000 labelled jets (top,qcd, default" in card and "(seed 13)" in card


def _probe_result(weights_id: str | None) -> dict[str, Any]:
    """A ``scripts/zoo_probe.py`` result for the weights with hash ``weights_id``."""
    splits = [
        {"name": "train", "n_per_class": 5000, "seed": 11},
        {"name": "val", "n_per_class": 1500, "seed": 12},
        {"name": "test", "n_per_class": 5000, "seed": 13},
    ]

    def row(pool: str, val: float, test: float, rej: tuple[float, float]) -> dict[str, Any]:
        return {
            "pooling": pool,
            "val_auc": {"cls": val, "mean": val, "chosen": val},
            "test": {"auc": test, "rejection": {"0.3": rej[0], "0.5": rej[1]}, "n": 10000},
        }

    return {
        "name": NAME,
        "label": "seen-80",
        "init_weights": weights_id,
        "preset": "tiny",
        "protocol": {"unit": "jets", "processes": "top,qcd", "splits": splits},
        "backbone": {**row("mean", 0.9765, 0.9756, (238, 98)), "root": {"auc": 0.9754}},
        "random": [{"seed": s, **row("cls", 0.96, 0.955, (70, 33))} for s in (0, 1, 2)],
        "gain": {"auc": 0.0206, "random_mean": 0.955, "over_best_random": 0.0206},
        "hardware": {"cpu": "AMD EPYC", "cores": 2, "device": "cpu"},
        "date": "2026-12-02T12:00:00Z",
    }


def test_an_interrupted_chunk_is_reused_and_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from colliderfm.train import loop

    plan = _plan()
    work, data = tmp_path / "work", tmp_path / "data"
    calls: list[int] = []
    monkeypatch.setattr(zp, "generate_chunk", _fake_generator(calls))
    run, pending = work / NAME / "run", work / NAME / "pending.json"
    real_log = loop.RunLogger.log

    def dies_at_step_2(self: Any, step: int, epoch: int, values: dict) -> None:
        if step == 2 and "train_loss" in values:
            raise KeyboardInterrupt  # as Ctrl-C (or SIGTERM) in the middle of the chunk
        real_log(self, step, epoch, values)

    monkeypatch.setattr(loop.RunLogger, "log", dies_at_step_2)
    with pytest.raises(KeyboardInterrupt):
        zp.run_chunks(plan, 1, work, data, workers=1, progress=False)
    assert load_state(run / "last")["step"] == 2  # the loop saved the interrupted state
    assert zp.chunk_ready(plan, 0, zp.chunk_dir(plan, data, 0))  # the chunk is kept
    p = json.loads(pending.read_text())
    assert p["index"] == 0 and p["pretrain_wall_s"] > 0
    monkeypatch.setattr(loop.RunLogger, "log", real_log)

    [r0] = zp.run_chunks(plan, 1, work, data, workers=1, progress=False)  # the same command
    assert calls == [0]  # reused, not generated again
    assert _span(r0) == (0, 7000, 40, 0, 3) and r0["pretrain_wall_s"] >= p["pretrain_wall_s"]
    assert load_state(run / "last")["step"] == 3 and not pending.exists()

    # killed after chunk 1's pretraining, before its record: rerunning records it, no retraining
    real_append = zp._append_record

    def fails(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(zp, "_append_record", fails)
    with pytest.raises(OSError):
        zp.run_chunks(plan, 1, work, data, workers=1, progress=False)
    assert load_state(run / "last")["step"] == 6 and pending.exists()
    monkeypatch.setattr(zp, "_append_record", real_append)
    [r1] = zp.run_chunks(plan, 1, work, data, workers=1, progress=False)
    assert _span(r1) == (1, 7001, 40, 3, 6) and calls == [0, 1]
    assert not zp.chunk_dir(plan, data, 1).exists()

    # records and run disagree: a record dropped (or a run from elsewhere) is refused
    chunks = work / NAME / "chunks.json"
    doc = json.loads(chunks.read_text())
    chunks.write_text(json.dumps({**doc, "chunks": doc["chunks"][:1]}))
    with pytest.raises(zp.Refusal, match="disagree"):
        zp.run_chunks(plan, 1, work, data, workers=1, progress=False)
    bad = [{**doc["chunks"][0], "seed": 1}, doc["chunks"][1]]
    chunks.write_text(json.dumps({**doc, "chunks": bad}))
    with pytest.raises(zp.Refusal, match="the plan says"):
        zp.run_chunks(plan, 1, work, data, workers=1, progress=False)
    with pytest.raises(zp.Refusal, match="another plan"):
        zp.run_chunks(_plan("contrastive", "train.seed=1"), 1, work, data, workers=1)


# --- several names sharing each generated chunk (synthetic jets) -------------------------------


def _mpm_plan() -> Any:
    return _plan("mpm", "objective.params.tokenizer_steps=2", name=NAME2)


def test_two_names_share_each_generated_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    a, b = _plan(), _mpm_plan()
    work, data, zroot = tmp_path / "work", tmp_path / "data", tmp_path / "zoo"
    calls: list[int] = []
    outs: list[Path] = []
    monkeypatch.setattr(zp, "generate_chunk", _fake_generator(calls, outs, delay=0.2))
    monkeypatch.setitem(zp.PLANS, NAME, a)
    monkeypatch.setitem(zp.PLANS, NAME2, b)
    dirs = ["--work-dir", str(work), "--data-dir", str(data)]
    monkeypatch.chdir(tmp_path)  # the chunks' paths are recorded relative to it

    assert zp.main([NAME, NAME2, "--plan"]) == 0
    out = capsys.readouterr().out
    assert out.count("chunk 1: seed 7001, steps 3-6") == 2 and NAME2 in out

    assert zp.main([NAME, NAME2, "--chunks", "1", "--no-progress", *dirs]) == 0
    assert calls == [0]  # generated once for both
    assert outs == [data / f"{NAME}+{NAME2}" / "chunk-00"]
    assert not (data / f"{NAME}+{NAME2}").exists()  # deleted once both recorded it
    records = zp.run_chunks([a, b], 5, work, data, workers=1, progress=False)  # one is left
    assert calls == [0, 1]
    assert [(r["index"], r["shared_with"]) for r in records] == [(1, [NAME2]), (1, [NAME])]
    for name, run, other in ((NAME, a, NAME2), (NAME2, b, NAME)):
        recs = _records(work, name)
        assert [_span(r) for r in recs] == [(0, 7000, 40, 0, 3), (1, 7001, 40, 3, 6)]
        assert all(r["shared_with"] == [other] and r["pretrain_wall_s"] > 0 for r in recs)
        state = load_state(work / name / "run" / "last")
        assert state["step"] == run.max_steps == 6 and state["finished"]
        assert not (work / name / "pending.json").exists()
    # the generation's wall time, recorded once per record: the same value in both
    gen = [[r["generate_wall_s"] for r in _records(work, n)] for n in (NAME, NAME2)]
    assert gen[0] == gen[1] and all(g >= 0.1 for g in gen[0])
    assert load_config(a.config).objective.name == "contrastive"
    assert (work / NAME2 / "run" / "tokenizer" / "model.safetensors").is_file()  # mpm's own
    assert not data.exists() or not any(data.iterdir())

    with pytest.raises(zp.Refusal, match="all 2 chunks are done"):
        zp.run_chunks([a, b], 1, work, data, workers=1, progress=False)
    capsys.readouterr()
    assert zp.main([NAME, NAME2, "--finalize", "--probe-auc", "0.9", *dirs]) == 2
    assert "one name at a time" in capsys.readouterr().err
    assert zp.main([NAME, NAME2, "--finalize", "--zoo-root", str(zroot), *dirs]) == 0
    metas = {n: json.loads((zroot / n / "meta.json").read_text()) for n in (NAME, NAME2)}
    assert metas[NAME]["recipe"] == "contrastive" and metas[NAME2]["recipe"] == "mpm"
    card = (zroot / NAME / "MODEL_CARD.md").read_text()
    assert f"Chunk(s) 0, 1 were generated once and also pretrained `zoo:{NAME2}`" in card


def test_names_at_different_chunks_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    a, b = _plan(), _mpm_plan()
    work, data = tmp_path / "work", tmp_path / "data"
    calls: list[int] = []
    monkeypatch.setattr(zp, "generate_chunk", _fake_generator(calls))
    monkeypatch.setitem(zp.PLANS, NAME, a)
    monkeypatch.setitem(zp.PLANS, NAME2, b)
    zp.run_chunks(a, 1, work, data, workers=1, progress=False)  # a alone: a at 1, b at 0
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    assert zp.main([NAME, NAME2, "--work-dir", str(work), "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zoo_pretrain: error:")
    assert f"not at the same next chunk ({NAME} at chunk 1, {NAME2} at chunk 0)" in err[0]
    assert calls == [0] and not (work / NAME2).exists()  # nothing was done
    assert len(_records(work)) == 1

    with pytest.raises(zp.Refusal, match="planned on different chunks"):
        zp.run_chunks([a, dataclasses.replace(b, per_process=10)], 1, work, data)
    with pytest.raises(zp.Refusal, match="given twice"):
        zp.run_chunks([a, a], 1, work, data)


def test_an_interrupted_second_model_is_finished_on_the_kept_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from colliderfm.train import loop

    a, b = _plan(), _mpm_plan()
    work, data = tmp_path / "work", tmp_path / "data"
    calls: list[int] = []
    monkeypatch.setattr(zp, "generate_chunk", _fake_generator(calls, delay=0.2))
    run_b, pending_b = work / NAME2 / "run", work / NAME2 / "pending.json"
    shared = zp.shared_chunk_dir([a, b], data, 0)
    real_log = loop.RunLogger.log

    def b_dies_at(step_at: int) -> Any:
        def log(self: Any, step: int, epoch: int, values: dict) -> None:
            if self.path.parent == run_b and step == step_at and "train_loss" in values:
                raise KeyboardInterrupt  # Ctrl-C while the second model pretrains
            real_log(self, step, epoch, values)

        return log

    monkeypatch.setattr(loop.RunLogger, "log", b_dies_at(2))
    with pytest.raises(KeyboardInterrupt):
        zp.run_chunks([a, b], 1, work, data, workers=1, progress=False)
    [ra] = _records(work)  # the first model recorded the chunk
    assert ra["index"] == 0 and ra["shared_with"] == [NAME2]
    assert not (work / NAME2 / "chunks.json").exists() and load_state(run_b / "last")["step"] == 2
    assert zp.chunk_ready(b, 0, shared)  # the chunk is kept
    p = json.loads(pending_b.read_text())
    assert p["index"] == 0 and p["shared_with"] == [NAME] and p["pretrain_wall_s"] > 0
    monkeypatch.setattr(loop.RunLogger, "log", real_log)

    # the same command: the chunk is reused, the first model skips it, the second finishes it
    [rb] = zp.run_chunks([a, b], 1, work, data, workers=1, progress=False)
    assert calls == [0]
    assert _span(rb) == (0, 7000, 40, 0, 3) and rb["shared_with"] == [NAME]
    assert rb["generate_wall_s"] == ra["generate_wall_s"] >= 0.1
    assert rb["pretrain_wall_s"] >= p["pretrain_wall_s"]
    assert len(_records(work)) == 1 and load_state(work / NAME / "run" / "last")["step"] == 3
    assert load_state(run_b / "last")["step"] == 3 and not pending_b.exists()
    assert not shared.exists()

    # the second model alone, interrupted on chunk 1: naming both reuses its chunk for both
    monkeypatch.setattr(loop.RunLogger, "log", b_dies_at(5))
    with pytest.raises(KeyboardInterrupt):
        zp.run_chunks(b, 1, work, data, workers=1, progress=False)
    assert calls == [0, 1] and zp.chunk_ready(b, 1, zp.chunk_dir(b, data, 1))
    monkeypatch.setattr(loop.RunLogger, "log", real_log)
    records = zp.run_chunks([a, b], 1, work, data, workers=1, progress=False)
    assert calls == [0, 1]  # moved into the shared folder, not generated again
    assert [(r["index"], r["shared_with"]) for r in records] == [(1, [NAME2]), (1, [NAME])]
    assert records[0]["generate_wall_s"] == records[1]["generate_wall_s"] >= 0.1
    for name in (NAME, NAME2):
        assert load_state(work / name / "run" / "last")["finished"]
    assert not data.exists() or not any(data.iterdir())


# --- real jets ---------------------------------------------------------------------------------


def test_mpm_end_to_end_on_generated_jets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    plan = _plan("mpm", "objective.params.tokenizer_steps=2")
    work, data, zroot = tmp_path / "work", tmp_path / "data", tmp_path / "zoo"
    records = zp.run_chunks(plan, 2, work, data, workers=1, progress=False)  # --chunks 2
    assert [_span(r) for r in records] == [(0, 7000, 40, 0, 3), (1, 7001, 40, 3, 6)]
    assert all(r["generate_wall_s"] > 0 and r["generator"]["pythia8mc"] for r in records)
    assert (work / NAME / "run" / "tokenizer" / "model.safetensors").is_file()  # chunk 0 only
    assert not (data / NAME).exists()
    with pytest.raises(zp.Refusal, match="all 2 chunks are done"):
        zp.run_chunks(plan, 1, work, data, workers=1, progress=False)
    path = zp.finalize(plan, work, zroot)
    monkeypatch.setattr(zoo, "ZOO_ROOT", zroot)
    model = colliderfm.load(f"zoo:{NAME}")
    assert json.loads((path / "meta.json").read_text())["recipe"] == "mpm"
    assert sum(p.numel() for p in model.backbone.parameters()) > 0
    card = (path / "MODEL_CARD.md").read_text()
    assert "| 0 | 7000 |" in card and "| 1 | 7001 |" in card and "pythia8mc" in card


# --- event runs: data-like chunks shared by the four recipes ----------------------------------

EVENT_NAMES = (
    "events-maskedid-small",
    "events-maskedkin-small",
    "events-contrastive-small",
    "events-supervised-small",
    "events-maskedkin-base",
)
EVENT_TINY = ("model.preset=tiny", "data.shuffle_buffer=64", "train.threads=1")


def test_event_plans_share_one_chunk_series(capsys: pytest.CaptureFixture) -> None:
    plans = [zp.PLANS[n] for n in EVENT_NAMES]
    zp.check_shareable(plans)  # one generation per chunk serves all four
    for plan in plans:
        assert (plan.unit, plan.processes, plan.fast, plan.label_subprocesses) == (
            "events",
            ("datalike",),
            True,
            True,
        )
        assert (plan.chunks, plan.per_chunk, plan.chunks * plan.per_chunk) == (
            10,
            100_000,
            1_000_000,
        )
        assert [plan.seed(k) for k in range(10)] == list(range(3100, 3110))
        assert (plan.batch_size, plan.passes, plan.steps_per_pass) == (512, 4, 196)
        assert (plan.steps_per_chunk, plan.max_steps) == (784, 7840)
        assert plan.class_names == ["ttbar", "singletop", "wjets", "ttV"]
        # the scaling study's points: 3e4 inside chunk 0's first pass, 1e5 and 3e5 at chunk ends
        assert plan.snapshot_steps(0) == {59: 30_000} and plan.snapshot_steps(1) == {}
        cfg = load_config(plan.config)
        assert cfg.data.train is None and cfg.train.max_steps == plan.max_steps
        preset = plan.name.rsplit("-", 1)[1]
        assert (cfg.model.name, cfg.model.preset, cfg.data.features) == ("objt", preset, "event")
        assert cfg.train.batch_size == plan.batch_size
        d = plan.to_dict()
        assert (d["events_per_process"], d["events_per_chunk"], d["passes"]) == (1e5, 1e5, 4)
    mid, kin, clr, sup, kin_base = plans
    a, b = load_config(kin.config).to_dict(), load_config(kin_base.config).to_dict()
    assert a["model"].pop("preset") == "small" and b["model"].pop("preset") == "base"
    assert a == b and kin.recipe == kin_base.recipe  # the same recipe on `base`
    base = load_config(ROOT / "configs" / "pretrain" / "masked_id.yaml")
    for plan in (mid, kin):
        cfg = load_config(plan.config)
        assert cfg.objective.name == "masked_id" and cfg.objective.probe_data is None
        for key in ("lr", "weight_decay", "warmup", "grad_clip", "seed", "precision"):
            assert getattr(cfg.train, key) == getattr(base.train, key), key
    p = load_config(mid.config).objective.params
    assert p == base.objective.params
    p = load_config(kin.config).objective.params
    assert (p["kinematics_rate"], p["kinematics_from"]) == (0.15, "pooled")
    c = load_config(clr.config)
    assert c.objective.name == "contrastive" and c.objective.params["views"] == "event"
    s = load_config(sup.config)
    assert sup.recipe == "finetune" and mid.recipe == kin.recipe == clr.recipe == "pretrain"
    assert s.data.val is None and s.data.test is None and s.train.early_stopping is None
    assert s.finetune.init == "none" and s.finetune.mode == "full"
    assert zp.main([*EVENT_NAMES, "--plan"]) == 0
    out = capsys.readouterr().out
    assert "chunk 9: seed 3109, steps 7056-7840" in out and "labelled by sub-process" in out


def _event_plan(name: str, recipe: str = "pretrain", **kw: Any) -> Any:
    config = "events-supervised-small" if recipe == "finetune" else "events-maskedid-small"
    return zp.Plan(
        name,
        ROOT / "configs" / "zoo" / f"{config}.yaml",
        chunks=2,
        per_process=48,
        processes=("datalike",),
        batch_size=16,
        seed_base=3100,
        overrides=EVENT_TINY,
        snapshots=(16, 48),
        unit="events",
        fast=True,
        label_subprocesses=True,
        passes=2,
        recipe=recipe,
        **kw,
    )


def _fake_event_generator(calls: list[int]) -> Any:
    """A stand-in for generate_chunk: synthetic events labelled by sub-process (0-3), with the
    planned count, seed, classes and physics mode in the manifest."""
    import numpy as np

    from colliderfm.data.schema import ObjectType
    from colliderfm.data.shards import events_table

    def generate(plan: Any, k: int, out: Path, workers: int, progress: bool) -> dict:
        calls.append(k)
        n = plan.per_chunk
        rng = np.random.default_rng(plan.seed(k))
        label = rng.integers(0, 4, n)
        counts = 1 + 2 + rng.integers(2, 6, n) + 1
        size = int(counts.sum())
        pos = np.arange(size) - np.repeat(np.cumsum(counts) - counts, counts)
        last = pos == np.repeat(counts - 1, counts)
        obj = np.where(
            pos == 0, ObjectType.MUON, np.where(pos < 3, ObjectType.BJET, ObjectType.JET)
        )
        obj = np.where(last, ObjectType.MET, obj).astype(np.int8)
        pt = 30 + rng.exponential(40, size)
        eta = np.where(last, 0.0, rng.normal(0, 1, size))
        phi = rng.uniform(-np.pi, np.pi, size)
        energy = np.where(last, pt, pt * np.cosh(eta) * 1.01)
        source = {
            "generator": "synthetic",
            "seed": plan.seed(k),
            "n_per_process": plan.per_process,
            "settings": {"mpi": not plan.fast},
        }
        with ShardWriter(out, "events", plan.class_names, source, 1000) as w:
            w.write(events_table(counts, pt, eta, phi, energy, obj, label))
        return {}

    return generate


def test_event_runs_share_chunks_snapshot_inside_a_chunk_and_finalize(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mid = _event_plan("events-tiny-mid")
    sup = _event_plan("events-tiny-sup", recipe="finetune")
    assert (mid.steps_per_pass, mid.steps_per_chunk, mid.snapshot_steps(0)) == (3, 6, {1: 16})
    work, data, zroot = tmp_path / "work", tmp_path / "data", tmp_path / "zoo"
    calls: list[int] = []
    monkeypatch.setattr(zp, "generate_chunk", _fake_event_generator(calls))

    records = zp.run_chunks([mid, sup], 1, work, data, workers=1, progress=False)
    assert calls == [0]  # generated once for both
    for r, plan in zip(records, (mid, sup), strict=True):
        assert (r["index"], r["seed"], r["events"], r["steps_from"], r["steps_to"]) == (
            0,
            3100,
            48,
            0,
            6,
        )
        assert r["snapshots"] == ["seen-16", "seen-48"]
        assert r["classes"] == ["ttbar", "singletop", "wjets", "ttV"]
        root = work / plan.name
        assert load_state(root / "run" / "last")["step"] == 6
        early = colliderfm.load(root / "seen-16").state_dict()
        late = colliderfm.load(root / "seen-48").state_dict()
        assert early.keys() == late.keys()
        assert any(not torch.equal(v, late[k]) for k, v in early.items())  # 1 step vs 6
    assert read_checkpoint_meta(work / sup.name / "run").model.task == "classifier"
    assert not zp.shared_chunk_dir([mid, sup], data, 0).exists()  # deleted once both used it

    # a run of another plan's chunks cannot join: the physics mode differs
    default = dataclasses.replace(mid, name="events-tiny-default", fast=False)
    with pytest.raises(zp.Refusal, match="different chunks"):
        zp.run_chunks([mid, default], 1, work, data, workers=1, progress=False)

    records = zp.run_chunks([mid, sup], 1, work, data, workers=1, progress=False)
    assert calls == [0, 1] and all("snapshot" not in r and "snapshots" not in r for r in records)
    for plan in (mid, sup):
        state = load_state(work / plan.name / "run" / "last")
        assert state["step"] == 12 and state["finished"]
        path = zp.finalize(plan, work, zroot)
        card = (path / "MODEL_CARD.md").read_text()
        assert "| 0 | 3100 | 48 | 0-6 |" in card and "| 1 | 3101 | 48 | 6-12 |" in card
        assert "96 generated data-like events" in card and "--fast --label-subprocesses" in card
        assert "--config configs/finetune/events.yaml" in card and "not Delphes" in card
        assert "2.00 passes over the chunk" in card
        meta = json.loads((path / "meta.json").read_text())
        assert "data-like events" in meta["pretraining_data"] and meta["steps"] == 12
        # fine-tuning takes the backbone of either
        model = load_model(path)
        backbone = build_backbone(read_checkpoint_meta(path).model.backbone())
        load_pretrained_backbone(backbone, path)
        for a, b in zip(
            backbone.state_dict().values(), model.backbone.state_dict().values(), strict=True
        ):
            assert torch.equal(a, b)
    assert "masked object identification" in (zroot / mid.name / "MODEL_CARD.md").read_text()
    card = (zroot / sup.name / "MODEL_CARD.md").read_text()
    assert "supervised pretraining on simulation" in card and "on the generator's labels" in card
