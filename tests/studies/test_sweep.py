import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml
from synth import write_synthetic_shards
from typer.testing import CliRunner

import colliderfm.studies.sweep as sweep
from colliderfm.cli import app
from colliderfm.config import load_config
from colliderfm.errors import ConfigError
from colliderfm.recipes.finetune import run_finetune
from colliderfm.studies import run_study, write_report
from colliderfm.studies.results import steps_to_target


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny labelled data, a base fine-tuning YAML and a tiny 'pretrained' checkpoint."""
    root = tmp_path_factory.mktemp("study")
    write_synthetic_shards(root / "train", n=600, seed=1, rows_per_shard=250)
    write_synthetic_shards(root / "val", n=150, seed=2)
    write_synthetic_shards(root / "test", n=200, seed=3)
    base = {
        "data": {"train": str(root / "train"), "val": str(root / "val"), "max_particles": 32},
        "model": {"name": "part", "preset": "tiny", "pair_features": False},
        "train": {"batch_size": 32, "lr": 3e-3, "epochs": 1, "log_every": 1},
    }
    (root / "base.yaml").write_text(yaml.safe_dump(base))
    cfg = load_config(root / "base.yaml", ["train.max_steps=3"])
    run_finetune(cfg, root / "pre", progress=False)
    return root


def _study(root: Path, name: str, **extra) -> Path:  # noqa: ANN003
    study = {
        "base": "base.yaml",  # relative to the study YAML
        "arms": [
            {"name": "scratch", "init": "none", "mode": "full"},
            {"name": "pre-linear", "init": str(root / "pre"), "mode": "linear"},
        ],
        "n_train": [60, 120],
        "seeds": [0, 1],
        "budget": {"mode": "fixed", "max_steps": 4, "eval_every": 2},
        "test": str(root / "test"),
        **extra,
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_data_efficiency_study_writes_everything_and_resumes(
    setup: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "de"
    res = run_study("data-efficiency", _study(setup, "de"), out, command="colliderfm study x")
    assert len(res["points"]) == 2 * 2 * 2 and len(res["summary"]) == 2 * 2
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and {r["arm"] for r in rows} == {"scratch", "pre-linear"}
    assert all(0.0 <= float(r["auc"]) <= 1.0 for r in rows)
    # linear arms fit the L-BFGS probe: no steps, no step budget, the probe recorded instead
    for r in rows:
        linear = r["arm"] == "pre-linear"
        assert r["steps"] == ("0" if linear else "4") and r["max_steps"] == ("" if linear else "4")
        assert (r["lbfgs_iters"] != "" and float(r["probe_l2"]) > 0) == linear
    with open(out / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert {(r["arm"], r["n_train"], r["seeds"]) for r in summary} == {
        (a, n, "2") for a in ("scratch", "pre-linear") for n in ("60", "120")
    }
    saved = json.loads((out / "results.json").read_text())
    assert saved["kind"] == "data-efficiency" and saved["data"]["max_steps"] == 4
    for p in saved["points"]:  # the whole validation curve is kept for each point
        linear = p["mode"] == "linear"  # the probe: one point, the chosen strength's, at step 0
        assert p["curve"]["step"] == ([0.0] if linear else [2.0, 4.0])
        assert p["n_train_used"] == p["n_train"]
        if linear:
            assert p["probe"]["chosen_by"] == "val_auc" and p["epochs"] is None
            assert p["curve"]["val_auc"] == [pytest.approx(p["best_val_auc"], abs=1e-6)]
    for png in ("auc_vs_n.png", "rejection_vs_n.png"):
        assert (out / png).stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "## Scale of this run" in report and "colliderfm study x" in report
    assert "![AUC vs N](auc_vs_n.png)" in report and "only 2 seed(s)" in report
    assert "| scratch | none | full |" in report and "N=120" in report
    assert "Linear-probe arms (`pre-linear`, `mode: linear`)" in report and "L-BFGS: " in report
    assert (out / "points" / "scratch-n60-s0" / "metrics.json").is_file()
    # one-variable baselines on the same test set, beside the AUC, rejection and SIC tables
    assert list(saved["baselines"]) == ["m_jet", "n_particles"]
    assert saved["baselines"]["m_jet"]["n"] == saved["points"][0]["n_test"]
    sic = report.count("## Significance improvement")  # SIC tables, where any seed has one
    assert report.count("One-variable baselines on the same test set") == 3 + sic
    assert (
        f"`m_jet` (jet mass of the summed constituents) {saved['baselines']['m_jet']['auc']:.4f}"
        in report
    )

    # rerun: nothing is trained again
    calls = []
    monkeypatch.setattr(sweep, "run_finetune", lambda *a, **k: calls.append(a) or {})
    again = run_study("data-efficiency", _study(setup, "de"), out)
    assert calls == [] and again["summary"] == res["summary"]
    # an unfinished point is the only one that runs again
    (out / "points" / "pre-linear-n120-s1" / "metrics.json").unlink()
    monkeypatch.undo()
    real = sweep.run_finetune
    monkeypatch.setattr(sweep, "run_finetune", lambda *a, **k: calls.append(a) or real(*a, **k))
    run_study("data-efficiency", _study(setup, "de"), out)
    assert len(calls) == 1
    # a finished point copied from another study under another arm name is reused and
    # labelled with this study's arm
    renamed = _study(setup, "de2")
    cfg = yaml.safe_load(renamed.read_text())
    cfg["arms"][1]["name"] = "pre-lin2"
    renamed.write_text(yaml.safe_dump(cfg))
    for n in (60, 120):
        for s in (0, 1):
            shutil.copytree(
                out / "points" / f"pre-linear-n{n}-s{s}", out / "points" / f"pre-lin2-n{n}-s{s}"
            )
    calls.clear()
    relabelled = run_study("data-efficiency", renamed, out)
    assert calls == [] and {r["arm"] for r in relabelled["points"]} == {"scratch", "pre-lin2"}
    run_study("data-efficiency", _study(setup, "de"), out)  # back to the original labels
    # a finished point from another budget is not silently mixed in
    with pytest.raises(ConfigError, match="different config"):
        run_study("data-efficiency", _study(setup, "de"), out, ["budget.max_steps=6"])
    # nor a linear point of the old few-step linear head (before the L-BFGS probe)
    f = out / "points" / "pre-linear-n60-s0" / "metrics.json"
    old = json.loads(f.read_text())
    old.pop("probe")
    old["fingerprint"] = "0" * 16
    f.write_text(json.dumps(old))
    with pytest.raises(ConfigError, match="old few-step linear head"):
        run_study("data-efficiency", _study(setup, "de"), out)
    shutil.rmtree(f.parent)
    run_study("data-efficiency", _study(setup, "de"), out)  # reruns that point

    # the report is regenerated from results.json alone (library and CLI)
    for f in ("report.md", "auc_vs_n.png"):
        (out / f).unlink()
    write_report(out)
    assert (out / "report.md").is_file() and (out / "auc_vs_n.png").is_file()
    (out / "report.md").unlink()
    res = CliRunner().invoke(app, ["study", "report", str(out)])
    assert res.exit_code == 0 and (out / "report.md").is_file()


def test_a_finished_point_whose_init_weights_changed_is_refused(
    setup: Path, tmp_path: Path
) -> None:
    """A checkpoint path such as zoo-work/NAME/run/last moves on as pretraining goes on."""
    from safetensors.torch import load_file, save_file

    init = tmp_path / "pre"
    shutil.copytree(setup / "pre", init)
    study = _study(setup, "moving", n_train=[60], seeds=[0])
    cfg = yaml.safe_load(study.read_text())
    cfg["arms"][1]["init"] = str(init)
    study.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "st"
    first = run_study("data-efficiency", study, out)
    row = next(r for r in first["points"] if r["arm"] == "pre-linear")
    assert row["init_weights"] == sweep.init_weights_id(str(init))
    assert len(row["init_weights"]) == 16
    assert next(r for r in first["points"] if r["arm"] == "scratch")["init_weights"] is None
    run_study("data-efficiency", study, out)  # same weights: reused
    weights = init / "model.safetensors"
    tensors = load_file(weights)
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 1.0
    save_file(tensors, weights, metadata={"format": "pt"})
    with pytest.raises(ConfigError, match="pre-linear-n60-s0: this point was trained from other"):
        run_study("data-efficiency", study, out)


def test_compute_study_reports_steps_to_scratch_best(setup: Path, tmp_path: Path) -> None:
    path = _study(
        setup,
        "compute",
        n_train=[120],
        budget={"mode": "fixed", "max_steps": 6, "eval_every": 2},
        arms=[
            {"name": "scratch", "init": "none", "mode": "full"},
            {"name": "pre-full", "init": str(setup / "pre"), "mode": "full"},
            {"name": "pre-linear", "init": str(setup / "pre"), "mode": "linear"},
        ],
    )
    out = tmp_path / "cmp"
    res = CliRunner().invoke(app, ["study", "compute", "--config", str(path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = (out / "report.md").read_text()
    assert "Steps to reach `scratch`'s best validation AUC" in report
    assert "| scratch | 120 | 2/2 |" in report  # the reference always reaches its own best
    assert "| pre-linear | 120 |" in report
    assert (out / "val_auc_vs_step.png").is_file() and (out / "val_auc_vs_time.png").is_file()
    # a linear point reaches the target at step 0 (or never), in its whole fit's seconds
    rows = json.loads((out / "results.json").read_text())["points"]
    for r in steps_to_target(rows):
        if r["arm"] == "pre-linear" and r["steps"] is not None:
            lin = next(p for p in rows if p["arm"] == "pre-linear" and p["seed"] == r["seed"])
            assert r["steps"] == 0 and r["seconds"] == lin["train_wall_s"]


def test_linear_points_reach_a_target_at_step_zero_in_their_fit_time() -> None:
    def row(arm: str, mode: str, steps: int, wall: float, curve: dict) -> dict:
        init = "none" if arm == "scratch" else "pre"
        point = {"arm": arm, "init": init, "mode": mode, "n_train": 100, "seed": 0}
        return {**point, "steps": steps, "train_wall_s": wall, "curve": curve}

    rows = [
        row("scratch", "full", 4, 8.0, {"step": [2, 4], "val_auc": [0.8, 0.9]}),
        row("lin", "linear", 0, 3.0, {"step": [0], "val_auc": [0.95]}),
        row("weak", "linear", 0, 3.0, {"step": [0], "val_auc": [0.7]}),
    ]
    reach = {r["arm"]: (r["steps"], r["seconds"]) for r in steps_to_target(rows)}
    assert reach == {"scratch": (4, 8.0), "lin": (0, 3.0), "weak": (None, None)}


def test_scaling_study_pretrains_nested_subsets(setup: Path, tmp_path: Path) -> None:
    import numpy as np

    from colliderfm.data.readers.dispatch import iter_chunks

    pre_cfg = {
        "data": {"max_particles": 32},
        "model": {"name": "part", "preset": "tiny", "pair_features": False},
        "objective": {"name": "contrastive", "params": {"proj_dim": 8, "proj_hidden": 16}},
        "train": {"batch_size": 32, "max_steps": 2, "epochs": 1},
    }
    (tmp_path / "pre.yaml").write_text(yaml.safe_dump(pre_cfg))
    path = _study(
        setup,
        "scaling",
        arms=[{"name": "scratch", "init": "none", "mode": "full"}],
        n_train=[60],
        pretrain={
            "config": str(tmp_path / "pre.yaml"),
            "data": str(setup / "train"),
            "sizes": [100, 300],
            "name": "clr",
        },
    )
    out = tmp_path / "sc"
    res = run_study("scaling", path, out)
    assert {r["arm"] for r in res["summary"]} == {"scratch", "clr-p100", "clr-p300"}
    assert {r["pretrain_size"] for r in res["summary"]} == {None, 100, 300}
    small, big = (
        {float(v) for c in iter_chunks(out / "pretrain" / f"data-p{n}") for v in c.jet["jet_pt"]}
        for n in (100, 300)
    )
    assert len(small) == 100 and len(big) == 300 and small <= big  # nested subsets
    assert (out / "auc_vs_pretrain_size.png").is_file()
    report = (out / "report.md").read_text()
    assert "## Test AUC vs pretraining-set size" in report and "| clr-p300 | 300 |" in report
    assert np.isfinite([r["auc_mean"] for r in res["summary"]]).all()
    # a rerun reuses the pretrained backbones; another pretraining recipe is refused
    again = run_study("scaling", path, out)
    assert again["summary"] == res["summary"]
    with pytest.raises(ConfigError, match="another recipe"):
        run_study("scaling", path, out, ["pretrain.overrides=[train.lr=0.01]"])


@pytest.mark.parametrize(
    ("extra", "sets", "key"),
    [
        ({"bogus": 1}, [], "'bogus'"),
        ({"budget": {"max_steps": "many"}}, [], "'budget.max_steps'"),
        ({"budget": {"max_step": 3}}, [], "'budget.max_step'"),
        ({"arms": [{"name": "a", "mode": "sideways"}]}, [], "'arms[0].mode'"),
        ({"arms": [{"init": "none"}]}, [], "'arms[0].name'"),
        ({"arms": [{"name": "a"}, {"name": "a"}]}, [], "duplicate names: a"),
        ({"n_train": [100, "lots"]}, [], "'n_train'"),
        ({"seeds": 3}, [], "'seeds'"),
        ({}, ["n_train=[100000]"], "'n_train' holds [100000]"),
        ({"arms": [{"name": "x", "init": "nowhere"}]}, [], "init checkpoint nowhere"),
        ({"base": "missing.yaml"}, [], "'base'"),
        ({}, ["train.bogus=1"], "train.bogus"),
    ],
)
def test_bad_study_configs_name_the_key(
    setup: Path, tmp_path: Path, extra: dict, sets: list[str], key: str
) -> None:
    path = _study(setup, "bad", **extra)
    with pytest.raises(ConfigError) as err:
        run_study("data-efficiency", path, tmp_path / "bad", sets)
    assert key in str(err.value)
    assert not (tmp_path / "bad" / "points").exists()  # nothing ran


def test_a_study_on_a_missing_device_stops_before_its_folder(setup: Path, tmp_path: Path) -> None:
    path = _study(setup, "nodevice")
    with pytest.raises(ConfigError, match="train.device=cuda:63"):
        run_study("data-efficiency", path, tmp_path / "nodev", ["train.device=cuda:63"])
    assert not (tmp_path / "nodev").exists()


def test_study_cli_errors_are_one_line(setup: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    path = _study(setup, "cli-bad", bogus=1)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "colliderfm",
            "study",
            "data-efficiency",
            "--config",
            str(path),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and "'bogus'" in res.stderr
    assert len([ln for ln in res.stderr.splitlines() if ln.strip()]) == 1
    helps = CliRunner().invoke(app, ["study", "data-efficiency", "--help"]).output
    assert "colliderfm study data-efficiency --config" in helps


def test_fingerprint_ignores_settings_left_at_their_defaults() -> None:
    """A setting added later with a default must not invalidate finished points."""
    from colliderfm.config import load_config
    from colliderfm.studies.sweep import _fingerprint

    base = load_config(None, ["train.lr=0.002"])
    explicit = load_config(None, ["train.lr=0.002", "train.compile=false"])
    other = load_config(None, ["train.lr=0.003"])
    assert _fingerprint(base, "t", None) == _fingerprint(explicit, "t", None)
    assert _fingerprint(base, "t", None) != _fingerprint(other, "t", None)
    assert _fingerprint(base, "t", None) != _fingerprint(base, "u", None)
