"""The study report names no machine: paths are relative to the study (or working) directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from colliderfm.studies.report import relative_text, shown_path, write_report
from colliderfm.studies.results import aggregate, steps_to_target


def _row(arm: str, init: str, seed: int, auc: float) -> dict:
    return {
        "key": f"{arm}-n100-s{seed}",
        "arm": arm,
        "init": init,
        "mode": "full",
        "pretrain_size": None if init == "none" else 300,
        "n_train": 100,
        "seed": seed,
        "auc": auc,
        "accuracy": 0.7,
        "rej0.3": 10.0,
        "rej0.5": None,
        "n_test": 200,
        "steps": 4,
        "best_step": 4,
        "best_val_auc": auc,
        "train_wall_s": 2.0,
        "eval_wall_s": 1.0,
        "curve": {"step": [2.0, 4.0], "val_auc": [auc - 0.1, auc], "val_loss": [0.7, 0.6]},
    }


def test_report_shows_paths_relative_to_the_study(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    study = tmp_path / "runs" / "study"
    init = study / "pretrain" / "p300"  # a checkpoint the study pretrained itself
    init.mkdir(parents=True)
    data = tmp_path / "data" / "toptag"
    rows = [
        _row(a, i, s, 0.8 + 0.01 * s)
        for s in (0, 1)
        for a, i in (("scratch", "none"), ("clr", str(init)))
    ]
    results = {
        "kind": "scaling",
        "version": "0",
        "created": "now",
        "commands": [f"colliderfm study scaling --config {tmp_path}/s.yaml --out {study}"],
        "study": {
            "base": str(tmp_path / "configs" / "ft.yaml"),
            "overrides": [f"data.train={data}/train"],
            "arms": [{"name": "clr", "init": str(init), "mode": "full", "pretrain_size": 300}],
            "budget": {"max_steps": 4, "eval_every": 2, "select": "val_auc"},
            "test": f"{data}/test",
        },
        "base_config": f"data:\n  train: {data}/train\n  val: {data}/val\n",
        "data": {"train": f"{data}/train", "val": f"{data}/val", "test": f"{data}/test"},
        "points": rows,
    }
    (study / "results.json").write_text(json.dumps(results))
    report = write_report(study).read_text()
    assert str(tmp_path) not in report  # no absolute path at all
    assert "| clr | pretrain/p300 | full |" in report  # inside the study: relative to it
    assert "init: pretrain/p300" in report
    assert "`data/toptag/train`" in report and "data.train=data/toptag/train" in report
    assert "--config s.yaml --out runs/study" in report
    assert "`colliderfm study report runs/study`" in report


def test_shown_path_and_relative_text(tmp_path: Path) -> None:
    study = tmp_path / "st"
    assert shown_path("none", study) == "none" and shown_path("runs/clr", study) == "runs/clr"
    assert shown_path(study / "pretrain" / "p1", study) == "pretrain/p1"
    assert shown_path(tmp_path / "runs" / "clr", study, cwd=tmp_path) == "runs/clr"
    text = f"--init {tmp_path}/runs/clr --set data.train={study}/d, 1/eps_B at s/step"
    assert relative_text(text, study, cwd=tmp_path) == (
        "--init runs/clr --set data.train=d, 1/eps_B at s/step"
    )


def test_aggregate_and_steps_to_target() -> None:
    rows = [_row("scratch", "none", s, 0.8 + 0.02 * s) for s in (0, 1)]
    (agg,) = aggregate(rows)
    assert agg["auc_mean"] == pytest.approx(0.81) and agg["auc_n"] == 2
    assert agg["auc_std"] == pytest.approx(0.02 / 2**0.5)
    assert agg["rej0.5_mean"] is None and agg["rej0.5_n"] == 0  # unbounded: left out
    reach = steps_to_target(rows)
    assert [(r["steps"], r["seconds"]) for r in reach] == [(4, 2.0), (4, 2.0)]


def test_report_shows_sic_when_recorded(tmp_path: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()
    old = [_row("scratch", "none", s, 0.8) for s in (0, 1)]
    new = [{**r, "sic0.3": 2.0 + r["seed"], "sic0.5": 1.5} for r in old]
    for rows, shown in ((old, False), (new, True)):
        results = {"kind": "data-efficiency", "study": {}, "points": rows}
        (study / "results.json").write_text(json.dumps(results))
        report = write_report(study).read_text()
        assert ("eps_S / sqrt(eps_B) at eps_S = 0.3" in report) == shown
        if shown:
            assert "2.50 ± 0.71" in report  # mean and std of 2.0 and 3.0


def test_report_names_the_label_counts_of_an_arm_that_skips_some(tmp_path: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()
    rows = []
    for arm, init, ns in (("scratch", "none", (100, 1000)), ("clr", "runs/clr", (1000,))):
        for n in ns:
            for s in (0, 1):
                r = _row(arm, init, s, 0.8 + 0.01 * s)
                r.update(key=f"{arm}-n{n}-s{s}", n_train=n)
                rows.append(r)
    results = {"kind": "data-efficiency", "study": {}, "points": rows}
    (study / "results.json").write_text(json.dumps(results))
    report = write_report(study).read_text()
    assert "6 fine-tuning runs over 2 arm(s), 2 label count(s) and 2 seed(s)" in report
    assert "N_train: 100, 1000; only `clr` at N = 1000;" in report
    assert "| clr | runs/clr | full |  | 0.8050 ± 0.0071 |" in report  # no N=100 cell


def test_data_efficiency_report_plots_val_auc_vs_step(tmp_path: Path) -> None:
    from colliderfm.studies.plots import curves_n, seed_curve

    study = tmp_path / "study"
    study.mkdir()
    curves = {  # (arm, seed): (steps, val AUCs); scratch seed 1 stopped early
        ("clr", 0): ([2.0, 4.0, 6.0, 8.0], [0.70, 0.80, 0.85, 0.86]),
        ("clr", 1): ([2.0, 4.0, 6.0, 8.0], [0.72, 0.84, 0.87, 0.88]),
        ("scratch", 0): ([2.0, 4.0, 6.0, 8.0], [0.60, 0.70, 0.80, 0.85]),
        ("scratch", 1): ([2.0, 4.0, 6.0], [0.62, 0.74, 0.76]),
    }
    rows = []
    for (arm, seed), (steps, aucs) in curves.items():
        for n in (100, 1500):
            r = _row(arm, "none" if arm == "scratch" else "runs/clr", seed, aucs[-1])
            r.update(key=f"{arm}-n{n}-s{seed}", n_train=n, steps=int(steps[-1]))
            r["curve"] = {"step": steps, "val_auc": aucs, "val_loss": [0.5] * len(steps)}
            rows.append(r)
    rows[-1]["curve"] = {}  # no curve in results.json and no run directory: left out
    for seed in (0, 1):  # a linear probe: one step-0 point, drawn as a dashed line
        r = _row("probe", "runs/clr", seed, 0.8 + 0.01 * seed)
        r.update(key=f"probe-n1500-s{seed}", n_train=1500, mode="linear", steps=0)
        r["curve"] = {"step": [0.0], "val_auc": [0.8 + 0.01 * seed], "val_loss": [0.5]}
        rows.append(r)
    assert curves_n([100, 1500]) == 1500 and curves_n([500, 1500]) == 500
    scratch = seed_curve([r for r in rows if r["arm"] == "scratch" and r["n_train"] == 100])
    assert scratch is not None
    assert scratch["step"].tolist() == [2.0, 4.0, 6.0, 8.0]
    assert scratch["mean"][1] == pytest.approx((0.70 + 0.74) / 2)
    assert scratch["se"][1] == pytest.approx(0.02)  # std 0.04/sqrt(2), over sqrt(2)
    assert scratch["n"].tolist() == [2, 2, 2, 1]
    assert scratch["mean"][3] == pytest.approx(0.85) and np.isnan(scratch["se"][3])
    shifted = seed_curve([{"curve": {"step": [0, 4], "val_auc": [0.5, 0.9]}}, rows[0]])
    assert shifted is not None and shifted["step"].tolist() == [0, 2, 4, 6, 8]
    assert shifted["mean"][1] == pytest.approx((0.7 + 0.7) / 2)  # 0.7 interpolated at step 2
    results = {"kind": "data-efficiency", "study": {}, "points": rows}
    (study / "results.json").write_text(json.dumps(results))
    report = write_report(study).read_text()
    assert (study / "val_auc_vs_step.png").stat().st_size > 0
    assert "## Validation AUC vs step at N = 1500" in report
    assert "![validation AUC vs step](val_auc_vs_step.png)" in report
    assert "`scratch-n1500-s1`" in report  # the point without a curve is named


def test_scaling_plot_draws_one_line_per_recipe(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """Two pretraining recipes at the same N are two curves, and scratch one reference line."""
    from colliderfm.studies import plots

    def row(arm: str, size: int | None, auc: float) -> dict:
        init = "none" if size is None else f"ckpt/{arm}"
        return {"arm": arm, "init": init, "mode": "full", "n_train": 1000,
                "pretrain_size": size, "auc_mean": auc, "auc_std": 0.001}  # fmt: skip

    summary = [
        row("scratch", None, 0.95),
        *(row(f"clr-p{s}", s, 0.955 + 0.001 * i) for i, s in enumerate((100000, 300000))),
        *(row(f"mpm-p{s}", s, 0.951 + 0.001 * i) for i, s in enumerate((100000, 300000))),
    ]
    drawn: list[tuple[str, list[float]]] = []
    real = plots._band

    def band(ax, x, mean, std, label):  # noqa: ANN001, ANN202
        drawn.append((label, list(x)))
        return real(ax, x, mean, std, label=label)

    monkeypatch.setattr(plots, "_band", band)
    assert plots.plot_scaling(summary, tmp_path) == tmp_path / "auc_vs_pretrain_size.png"
    assert sorted(lbl.split(",")[0] for lbl, _ in drawn) == ["clr", "mpm"]
    assert all(x == [100000, 300000] for _, x in drawn)
