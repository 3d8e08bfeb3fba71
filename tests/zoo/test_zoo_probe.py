"""scripts/zoo_probe.py: a zoo backbone's linear probe against three random backbones.

At a tiny scale (synthetic jets whose manifests carry the protocol's seeds and sizes, the tiny
preset): the probe writes its result with the backbone's pooling chosen on validation, the
random backbones' probes and the gain; the random probes are reused from their cache while the
protocol is the same and refitted when it changes; the ROOT copy of the test jets (written by
the independent script) scores as the shards do; data of another seed is refused with one line;
missing data names the commands that make it. ``--finalize`` of ``scripts/zoo_pretrain.py``
putting the probe into the model card is tested in ``test_zoo_pretrain.py``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import load_script, make_pretrain_ckpt
from synth import synthetic_jets

from colliderfm.data.shards import ShardWriter

zpr = load_script("zoo_probe.py", "zoo_probe_script")


def _protocol(train_seed: int = 11) -> Any:
    p = zpr.PROTOCOLS["jets"]
    return dataclasses.replace(
        p,
        splits=(
            zpr.Split("train", 60, train_seed),
            zpr.Split("val", 40, 12),
            zpr.Split("test", 40, 13),
        ),
        val_max=80,
    )


def _write(folder: Path, p: Any, seed_of: dict[str, int] | None = None) -> Path:
    """Synthetic top/QCD splits whose manifests record ``p``'s seeds and sizes."""
    for s in p.splits:
        seed = (seed_of or {}).get(s.name, s.seed)
        source = {
            "generator": "synthetic",
            "processes": {"top": {}, "qcd": {}},
            "seed": seed,
            "n_per_process": s.n_per_class,
            "mpi": True,
        }
        with ShardWriter(folder / s.name, "jets", ["QCD", "Tbqq"], source) as w:
            w.write_chunk(synthetic_jets(2 * s.n_per_class, seed=seed, max_particles=24))
    return folder


@pytest.fixture()
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    p = _protocol()
    monkeypatch.setitem(zpr.PROTOCOLS, "jets", p)
    data = _write(tmp_path / "probe", p)
    ckpt = make_pretrain_ckpt(tmp_path / "ckpt", "contrastive", max_particles=24)
    calls: list[str] = []
    real = zpr.probe_one

    def counted(p: Any, folder: Path, init: str, *a: Any) -> dict[str, Any]:
        calls.append(init)
        return real(p, folder, init, *a)

    monkeypatch.setattr(zpr, "probe_one", counted)
    return {"data": data, "ckpt": ckpt, "work": tmp_path / "work", "calls": calls}


def _run(s: dict[str, Any], *extra: str) -> int:
    args = [
        "jets-contrastive-small",
        "--weights",
        str(s["ckpt"]),
        "--data-dir",
        str(s["data"]),
        "--work-dir",
        str(s["work"]),
        *extra,
    ]
    return zpr.main(args)


def test_probe_against_random_backbones_with_cache_and_root(
    setup: dict[str, Any], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = setup
    assert _run(s) == 0
    out = s["work"] / "jets-contrastive-small" / "probes" / "ckpt.json"
    r = json.loads(out.read_text())
    assert s["calls"] == [str(s["ckpt"]), "none", "none", "none"]
    b = r["backbone"]
    assert b["pooling"] in ("cls", "mean") and set(b["val_auc"]) == {"cls", "mean", "chosen"}
    assert b["val_auc"]["chosen"] == pytest.approx(b["val_auc"][b["pooling"]], abs=1e-9)
    assert b["test"]["n"] == 80 and 0.0 <= b["test"]["auc"] <= 1.0
    # the ROOT copy of the same test jets, read by the JetClass reader, scores the same
    assert b["root"]["auc"] == pytest.approx(b["test"]["auc"], abs=1e-4)
    assert [x["seed"] for x in r["random"]] == [0, 1, 2]
    aucs = [x["test"]["auc"] for x in r["random"]]
    assert len(set(aucs)) > 1  # three different random backbones
    assert r["gain"]["auc"] == pytest.approx(b["test"]["auc"] - sum(aucs) / 3)
    assert r["gain"]["over_best_random"] == pytest.approx(b["test"]["auc"] - max(aucs))
    assert r["preset"] == "tiny" and r["init_weights"] and len(r["init_weights"]) == 16
    # the device recorded is the one the protocol's config resolves to, as training resolves it
    assert r["hardware"] == zpr.zp.hardware(zpr.probe_device(zpr.PROTOCOLS["jets"]))
    assert r["hardware"]["device"].startswith(("cpu", "cuda", "mps"))
    table = capsys.readouterr().out
    assert "| random, seed 2 |" in table and f"{r['gain']['auc']:+.4f}" in table

    # the random probes are reused while the protocol is the same ...
    s["calls"].clear()
    assert _run(s) == 0
    assert s["calls"] == [str(s["ckpt"])]
    assert json.loads(out.read_text())["random"] == r["random"]
    # ... and refitted when asked or when the protocol changes
    assert _run(s, "--fresh-random") == 0
    assert s["calls"].count("none") == 3
    s["calls"].clear()
    p2 = _protocol(train_seed=99)
    monkeypatch.setitem(zpr.PROTOCOLS, "jets", p2)
    _write(s["data"].parent / "probe2", p2)
    s["data"] = s["data"].parent / "probe2"
    assert _run(s) == 0
    assert s["calls"].count("none") == 3


def test_wrong_or_missing_data_is_one_line(
    setup: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    s = setup
    p = zpr.PROTOCOLS["jets"]
    _write(tmp_path / "other", p, seed_of={"val": 77})
    s["data"] = tmp_path / "other"
    capsys.readouterr()
    assert _run(s) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "zoo_probe: error:" in err[0] and "seed 77" in err[0]
    assert s["calls"] == []

    s["data"] = tmp_path / "none-here"
    assert _run(s) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "probe data missing" in err[0]
    assert "generate jets --process top,qcd --n 60 --seed 11" in err[0]
    assert "--seed 13" in err[0] and "--generate" in err[0]


def test_weights_that_do_not_exist_are_refused(setup: dict[str, Any], tmp_path: Path) -> None:
    plan = zpr.zp.PLANS["jets-mpm-small"]
    with pytest.raises(zpr.Refusal, match="no such snapshot"):
        zpr.resolve_weights(plan, "seen-123", tmp_path / "work")
    with pytest.raises(zpr.Refusal, match="neither last, seen-N, zoo"):
        zpr.resolve_weights(plan, str(tmp_path / "nope"), tmp_path / "work")
    with pytest.raises((zpr.Refusal, zpr.zp.Refusal)):
        zpr.resolve_weights(plan, "last", tmp_path / "empty-work")
