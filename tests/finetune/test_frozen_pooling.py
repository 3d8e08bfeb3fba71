"""``finetune.frozen_pooling``: a frozen backbone whose pretraining never trained its pooling.

MPM (and masked object-id without pooled kinematics) trains the backbone's particle tokens
only; its class-attention pooling stays random. Cases:

- which objectives train the pooling (contrastive yes, MPM no, masked object-id only with
  pooled kinematics); classifier checkpoints trained everything
- ``auto``: a linear probe on an MPM checkpoint pools by the token mean, the saved model says so
  and ``evaluate`` rebuilds it; the checkpoint's (random) class attention then has no effect on
  the probe: scrambling it leaves the test scores unchanged
- ``keep``, ``full`` mode, contrastive checkpoints and random backbones keep class attention
- ``best`` (linear probe only): both poolings are probed, the better validation AUC is kept, the
  saved model pools that way and scores as that probe would; the choice and both validation
  AUCs are in the run summary; ``best`` with mode frozen is one config error
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import make_pretrain_ckpt
from safetensors.torch import load_file, save_file
from synth import tiny_finetune_config, write_splits

from colliderfm.checkpoints import load_model
from colliderfm.errors import ConfigError
from colliderfm.finetune.classifier import frozen_pooling, pooling_pretrained
from colliderfm.pretrain.base import (
    objective_trains_pooling,
)
from colliderfm.recipes.finetune import run_finetune
from colliderfm.train.checkpoint import read_checkpoint_meta

MAXP = 24


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_splits(tmp_path_factory.mktemp("fp"), (600, 200, 300), seed=5)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fpck")
    return {o: make_pretrain_ckpt(root / o, o, max_particles=MAXP) for o in ("mpm", "contrastive")}


def test_which_objectives_train_the_pooling(ckpts: dict[str, Path]) -> None:
    assert objective_trains_pooling("contrastive", {})
    assert not objective_trains_pooling("mpm", {})
    assert not objective_trains_pooling("masked_id", {})
    assert not objective_trains_pooling("masked_id", {"kinematics_rate": 0.3})
    assert objective_trains_pooling(
        "masked_id", {"kinematics_rate": 0.3, "kinematics_from": "pooled"}
    )
    assert pooling_pretrained(ckpts["contrastive"]) and not pooling_pretrained(ckpts["mpm"])
    spec = {"kwargs": {}}
    assert frozen_pooling("auto", str(ckpts["mpm"]), "linear", spec)[0] == "mean"
    assert frozen_pooling("auto", str(ckpts["mpm"]), "frozen", spec)[0] == "mean"
    assert frozen_pooling("auto", str(ckpts["mpm"]), "full", spec)[0] == "cls"
    assert frozen_pooling("auto", str(ckpts["mpm"]), "lp-ft", spec)[0] == "cls"
    assert frozen_pooling("keep", str(ckpts["mpm"]), "linear", spec)[0] == "cls"
    assert frozen_pooling("auto", str(ckpts["contrastive"]), "linear", spec)[0] == "cls"
    assert frozen_pooling("auto", "none", "linear", spec)[0] == "cls"
    assert frozen_pooling("mean", "none", "linear", spec)[0] == "mean"
    assert frozen_pooling("best", str(ckpts["mpm"]), "linear", spec)[0] == "cls"  # both probed
    assert frozen_pooling("best", str(ckpts["mpm"]), "full", spec)[0] == "cls"
    with pytest.raises(ConfigError, match="frozen_pooling.*linear probe only"):
        frozen_pooling("best", str(ckpts["mpm"]), "frozen", spec)


def _probe_run(data: Path, init: Path | str, out: Path, *extra: str) -> dict:
    """A linear probe's run summary."""
    cfg = tiny_finetune_config(
        data,
        f"data.max_particles={MAXP}",
        "finetune.mode=linear",
        f"finetune.init={init}",
        "finetune.probe_l2=[0.01]",
        *extra,
    )
    return run_finetune(cfg, out, progress=False)


def _probe(data: Path, init: Path, out: Path, *extra: str) -> dict:
    """A linear probe's test metrics."""
    _probe_run(data, init, out, *extra)
    return json.loads((out / "test_metrics.json").read_text())


def _scores(run: Path, data: Path) -> np.ndarray:
    from colliderfm.evaluate.predict import predict

    _, probs = predict(load_model(run), data / "test", max_particles=MAXP, feature_set="part")
    return probs[:, 1]


def _scramble_pooling(src: Path, dst: Path) -> Path:
    """A copy of ``src`` whose class-attention weights are replaced by other random values."""
    import shutil

    shutil.copytree(src, dst)
    w = load_file(str(dst / "model.safetensors"))
    g = torch.Generator().manual_seed(9)
    n = 0
    for k in list(w):
        if k.startswith(("backbone.cls_token", "backbone.cls_blocks.")):
            w[k] = torch.randn(w[k].shape, generator=g)
            n += 1
    assert n > 0
    save_file(w, str(dst / "model.safetensors"))
    return dst


def test_mpm_probe_pools_by_the_mean(data: Path, ckpts: dict[str, Path], tmp_path: Path) -> None:
    a = _probe(data, ckpts["mpm"], tmp_path / "a")
    meta = read_checkpoint_meta(tmp_path / "a")
    assert meta.model.kwargs.get("pooling") == "mean"
    assert not any("cls_" in k for k in load_model(tmp_path / "a").state_dict())
    # the random class attention of the checkpoint plays no part: scrambling it changes nothing
    other = _scramble_pooling(ckpts["mpm"], tmp_path / "mpm2")
    b = _probe(data, other, tmp_path / "b")
    np.testing.assert_allclose(_scores(tmp_path / "a", data), _scores(tmp_path / "b", data))
    assert a["auc"] == pytest.approx(b["auc"])
    # while with `keep` it does (the probe sees the tokens through that random pooling)
    c = _probe(data, ckpts["mpm"], tmp_path / "c", "finetune.frozen_pooling=keep")
    d = _probe(data, other, tmp_path / "d", "finetune.frozen_pooling=keep")
    assert read_checkpoint_meta(tmp_path / "c").model.kwargs.get("pooling", "cls") == "cls"
    assert not np.allclose(_scores(tmp_path / "c", data), _scores(tmp_path / "d", data))
    assert c["auc"] != d["auc"]


def test_trained_pooling_is_kept(data: Path, ckpts: dict[str, Path], tmp_path: Path) -> None:
    _probe(data, ckpts["contrastive"], tmp_path / "a")
    assert read_checkpoint_meta(tmp_path / "a").model.kwargs.get("pooling", "cls") == "cls"
    cfg = tiny_finetune_config(
        data, f"data.max_particles={MAXP}", f"finetune.init={ckpts['mpm']}", "train.max_steps=2"
    )
    run_finetune(cfg, tmp_path / "full", progress=False)  # full mode: the pooling trains
    assert read_checkpoint_meta(tmp_path / "full").model.kwargs.get("pooling", "cls") == "cls"


def test_embed_mean_override_is_the_mean_pooled_backbone(ckpts: dict[str, Path]) -> None:
    """``embed(..., pooling="mean")`` of a class-attention backbone (what the periodic probe of
    an MPM pretraining uses) equals the same weights built with ``pooling="mean"`` (what a
    frozen fine-tune uses)."""
    from synth import synthetic_jets

    from colliderfm.data.stream import pad_chunk, to_batch
    from colliderfm.finetune.classifier import load_pretrained_backbone
    from colliderfm.models.factory import build_backbone

    spec = read_checkpoint_meta(ckpts["mpm"]).model.backbone()
    cls_bb = build_backbone(spec).eval()
    load_pretrained_backbone(cls_bb, ckpts["mpm"])
    mean_bb = build_backbone({**spec, "kwargs": {**spec["kwargs"], "pooling": "mean"}}).eval()
    load_pretrained_backbone(mean_bb, ckpts["mpm"])
    b = to_batch(pad_chunk(synthetic_jets(16, seed=2, max_particles=MAXP), MAXP))
    with torch.no_grad():
        own = cls_bb.embed(b.features, b.mask, b.vectors)
        over = cls_bb.embed(b.features, b.mask, b.vectors, pooling="mean")
        ref = mean_bb.embed(b.features, b.mask, b.vectors)
    torch.testing.assert_close(over, ref)
    assert not torch.allclose(own, ref)


@pytest.mark.parametrize("init", ["contrastive", "none"])
def test_best_pooling_is_chosen_on_validation(
    data: Path, ckpts: dict[str, Path], tmp_path: Path, init: str
) -> None:
    ckpt = ckpts[init] if init != "none" else "none"
    best = _probe_run(data, ckpt, tmp_path / "best", "finetune.frozen_pooling=best")
    choice = best["probe"]["pooling"]
    aucs = choice["val_auc"]
    assert set(aucs) == {"cls", "mean"} and all(0.0 <= a <= 1.0 for a in aucs.values())
    assert init == "none" or aucs["cls"] != aucs["mean"]  # a real choice (ties keep "cls")
    assert choice["chosen"] == ("mean" if aucs["mean"] > aucs["cls"] else "cls")
    pooled = read_checkpoint_meta(tmp_path / "best").model.kwargs.get("pooling", "cls")
    assert pooled == choice["chosen"]  # the saved model pools the chosen way
    # each pooling on its own gives the validation AUC the choice saw (a random backbone's
    # mean-pooled twin shares the token weights of its class-attention one, which a run of its
    # own, drawing its weights afresh, does not)
    alone = {"cls": _probe_run(data, ckpt, tmp_path / "keep", "finetune.frozen_pooling=keep")}
    if init != "none":
        alone["mean"] = _probe_run(data, ckpt, tmp_path / "mean", "finetune.frozen_pooling=mean")
    for name, res in alone.items():
        assert aucs[name] == pytest.approx(res["best"]["val_auc"], abs=1e-6)
    if choice["chosen"] not in alone:
        return
    assert best["test"]["auc"] == pytest.approx(alone[choice["chosen"]]["test"]["auc"], abs=1e-6)
    np.testing.assert_allclose(
        _scores(tmp_path / "best", data),
        _scores(tmp_path / ("keep" if choice["chosen"] == "cls" else "mean"), data),
        rtol=1e-5,
        atol=1e-6,
    )
