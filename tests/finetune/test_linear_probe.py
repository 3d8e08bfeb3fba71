"""``finetune.mode: linear``: a converged L-BFGS linear probe, its strength chosen on validation.

Cases:

- the L-BFGS fit folds the standardisation into raw-embedding weights (binary and multinomial)
  and converges on badly scaled features
- on separable synthetic jets the probe beats the old few-step AdamW linear head by far
  (measured: 8 AdamW steps 0.889 test AUC, the probe 0.9996)
- the saved checkpoint scores the test set as a by-hand L-BFGS fit on the same embeddings
  (to 1e-4: standardisation folded correctly), and ``evaluate`` gives the run's test metrics
- the strength is chosen by the validation metric, on validation data: the test set is never
  embedded while fitting
- multi-class (3 classes, multinomial head), the no-validation fallback (warning), resume and
  the new config keys' validation
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from synth import tiny_finetune_config, write_splits, write_synthetic_shards

import colliderfm.evaluate.probe as probe_mod
import colliderfm.finetune.probe as ft_probe
from colliderfm.checkpoints import load_model
from colliderfm.config import load_config
from colliderfm.data.features import n_features
from colliderfm.data.stream import training_loader
from colliderfm.errors import ConfigError
from colliderfm.evaluate.metrics import auc, classifier_metrics
from colliderfm.evaluate.predict import predict
from colliderfm.evaluate.probe import embed_source, fit_logistic
from colliderfm.evaluate.run import evaluate_checkpoint
from colliderfm.finetune.classifier import build_classifier
from colliderfm.finetune.modes import apply_mode
from colliderfm.finetune.probe import PROBE_L2_FALLBACK
from colliderfm.models.factory import backbone_spec
from colliderfm.recipes.finetune import classification_loss, run_finetune
from colliderfm.runtime import seed_everything
from colliderfm.train.checkpoint import load_state, read_meta
from colliderfm.train.loop import fit

MAXP = 32
GRID = [0.0, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_splits(tmp_path_factory.mktemp("lp"), (1000, 300, 400), seed=1, rows_per_shard=400)


@pytest.fixture(scope="module")
def probed(data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One linear-mode run on a random tiny backbone (the random-backbone control)."""
    out = tmp_path_factory.mktemp("lprun") / "run"
    summary = run_finetune(_cfg(data), out, progress=False)
    return out, summary


def _cfg(data: Path, *extra: str):  # noqa: ANN202
    return tiny_finetune_config(data, f"data.max_particles={MAXP}", "finetune.mode=linear", *extra)


def _reference_fit(
    x: np.ndarray, y: np.ndarray, l2: float, n_classes: int
) -> Callable[[np.ndarray], np.ndarray]:
    """The probe's recipe written out by hand: standardise, L-BFGS, return ``[N, C]`` logits
    as a function of new raw inputs (float64, zero start, strong Wolfe)."""
    mu, sd = x.astype(np.float64).mean(0), x.astype(np.float64).std(0) + 1e-6
    xt = torch.from_numpy((x - mu) / sd).double()
    c = 1 if n_classes == 2 else n_classes
    w = torch.zeros(c, x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(c, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=1000, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        z = xt @ w.T + b
        if c == 1:
            data = torch.nn.functional.binary_cross_entropy_with_logits(
                z[:, 0], torch.from_numpy(y).double()
            )
        else:
            data = torch.nn.functional.cross_entropy(z, torch.from_numpy(y))
        loss = data + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w_, b_ = w.detach().numpy(), b.detach().numpy()
    return lambda xn: ((xn - mu) / sd) @ w_.T + b_


def _old_linear_head_auc(data: Path, out: Path, steps: int) -> float:
    """What ``mode: linear`` did before: a linear head trained by ``steps`` AdamW steps."""
    cfg = tiny_finetune_config(
        data, f"data.max_particles={MAXP}", f"train.max_steps={steps}", "train.early_stopping=null"
    )
    seed_everything(cfg.train.seed)
    model = build_classifier(
        {**backbone_spec(cfg, n_features("part")), "n_classes": 2, "head_hidden": None}
    )
    mults = apply_mode(model, "linear", cfg.finetune)
    loader, spe = training_loader(cfg.data.train, 1000, cfg)
    meta = {"model": {"task": "t"}}
    fit(model, classification_loss, loader, cfg, out, spe, meta, lr_mults=mults, progress=False)
    labels, probs = predict(model, cfg.data.test, max_particles=MAXP)
    return float(classifier_metrics(labels, probs, ["QCD", "Tbqq"])["auc"])


def test_fit_folds_standardisation_into_raw_weights() -> None:
    rng = np.random.default_rng(0)
    n, d = 600, 6
    scale = np.array([1e-3, 1.0, 1e3, 10.0, 0.1, 1.0])  # badly scaled, offset features
    for n_classes in (2, 3):
        y = rng.integers(0, n_classes, n)
        centres = rng.normal(0, 1.5, (n_classes, d))
        x = (centres[y] + rng.normal(0, 1, (n, d))) * scale + 100.0
        f = fit_logistic(x, y, n_classes, l2=1e-3, max_iter=1000)
        assert f.converged and f.iters > 0 and f.grad_max < 1e-5
        w, b = f.head_parameters()  # what the classifier's Linear(D, C) head gets
        assert w.shape == (n_classes, d) and b.shape == (n_classes,)
        raw = x @ w.T + b  # raw inputs, no standardisation
        np.testing.assert_allclose(raw, f.class_logits(x), rtol=1e-7, atol=1e-7)
        assert (f.probabilities(x).argmax(1) == y).mean() > 0.8
        # a stronger penalty shrinks the weights
        assert np.abs(fit_logistic(x, y, n_classes, l2=10.0).w_std).sum() < np.abs(f.w_std).sum()


def test_probe_beats_the_old_few_step_head(
    data: Path, probed: tuple[Path, dict], tmp_path: Path
) -> None:
    out, summary = probed
    old = _old_linear_head_auc(data, tmp_path / "old", steps=8)
    new = summary["test"]["auc"]
    # measured on this data: old 0.889, probe 0.9996 (random tiny backbone, 1000 labels)
    assert new > 0.99 and new > old + 0.05, (old, new)
    assert summary["steps"] == 0 and summary["epochs"] == 0
    p = summary["probe"]
    assert [g["l2"] for g in p["grid"]] == GRID and all(g["converged"] for g in p["grid"])
    assert summary["lbfgs_iters"] == p["lbfgs_iters"] > 0 and p["chosen_by"] == "val_auc"
    assert p["lbfgs_iters_total"] == sum(g["lbfgs_iters"] for g in p["grid"])
    assert summary["probe_l2"] == p["l2"] in GRID and summary["n_train"] == 1000
    assert p["n_val"] == 300 and summary["best"]["step"] == 0
    assert summary["wall_s"] >= 0 and p["embed_s"] > 0 and p["fit_s"] > 0
    # a normal fine-tuning checkpoint: a linear head, the run's config, a finished last/
    meta = read_meta(out)
    assert (
        meta["model"].get("head_hidden") is None and meta["config"]["finetune"]["mode"] == "linear"
    )
    assert load_state(out / "last")["finished"] and (out / "metrics.csv").is_file()


def test_saved_checkpoint_scores_like_the_probe(data: Path, probed: tuple[Path, dict]) -> None:
    out, summary = probed
    model = load_model(out)
    x, y = embed_source(model.backbone, data / "train", max_particles=MAXP)
    xt, yt = embed_source(model.backbone, data / "test", max_particles=MAXP)
    ref = _reference_fit(x, y, summary["probe_l2"], 2)(xt.astype(np.float64))  # [M, 1]
    # the checkpoint's head on raw embeddings: logits [0, z] with z the probe's logit
    with torch.no_grad():
        logits = model.head(torch.from_numpy(xt)).double().numpy()
    np.testing.assert_allclose(logits[:, 0], 0.0, atol=1e-6)
    np.testing.assert_allclose(logits[:, 1], ref[:, 0], rtol=1e-4, atol=1e-4)
    # the whole model through `evaluate`: the run's test metrics, the probe's AUC
    labels, probs = predict(model, data / "test", max_particles=MAXP)
    np.testing.assert_allclose(probs[:, 1], 1 / (1 + np.exp(-ref[:, 0])), atol=1e-5)
    ev = evaluate_checkpoint(out, data / "test", plots=False)
    assert ev["auc"] == pytest.approx(summary["test"]["auc"], abs=1e-12)
    assert ev["auc"] == pytest.approx(auc(yt == 1, ref[:, 0]), abs=1e-4)


def test_strength_is_chosen_on_validation_only(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[object] = []
    real_stream = probe_mod.evaluation_stream

    def recording(source, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        read.append(source)
        return real_stream(source, *a, **k)

    seen: list[int] = []
    real_metrics = ft_probe.validation_metrics

    def rigged(labels, probs, classes, signal_class=1):  # noqa: ANN001, ANN202
        # the validation metric decides: here it prefers l2 = 0.1 whatever the fit
        seen.append(len(labels))
        m = real_metrics(labels, probs, classes, signal_class)
        l2 = rigged.l2s.pop(0)
        return {**m, "val_auc": 1.0 - abs(math.log10(max(l2, 1e-12)) + 1.0) / 10}

    rigged.l2s = list(GRID)  # type: ignore[attr-defined]
    monkeypatch.setattr(probe_mod, "evaluation_stream", recording)
    monkeypatch.setattr(ft_probe, "validation_metrics", rigged)
    summary = run_finetune(_cfg(data, "train.val_max=null"), tmp_path / "run", progress=False)
    assert summary["probe_l2"] == 0.1 and summary["probe"]["chosen_by"] == "val_auc"
    assert seen == [300] * len(GRID)  # one validation per strength, on the 300 validation jets
    # while fitting, only the training and validation sets were read; the test set only by
    # `evaluate` afterwards (its own stream)
    assert [Path(s) for s in read] == [data / "train", data / "val"]
    assert "test" in summary


def test_multiclass_probe(tmp_path: Path) -> None:
    for split, n, seed in (("train", 900, 1), ("val", 300, 2), ("test", 300, 3)):
        write_synthetic_shards(tmp_path / split, n=n, seed=seed, n_classes=3)
    cfg = _cfg(tmp_path, "finetune.probe_l2=[0.001,0.1]")
    summary = run_finetune(cfg, tmp_path / "run", progress=False)
    model = load_model(tmp_path / "run")
    assert model.n_classes == 3 and model.head_hidden is None
    assert read_meta(tmp_path / "run")["model"]["classes"] == ["QCD", "Tbqq", "Wqq"]
    assert len(summary["probe"]["grid"]) == 2 and summary["probe"]["converged"]
    # class 1 (wider jets) is separable; classes 0 and 2 are drawn alike in the synthetic data
    assert summary["test"]["auc_per_class"]["Tbqq"] > 0.97
    x, y = embed_source(model.backbone, tmp_path / "train", max_particles=MAXP)
    xt, _ = embed_source(model.backbone, tmp_path / "test", max_particles=MAXP)
    ref = _reference_fit(x, y, summary["probe_l2"], 3)(xt.astype(np.float64))
    with torch.no_grad():
        logits = model.head(torch.from_numpy(xt)).double().numpy()
    np.testing.assert_allclose(logits, ref, rtol=1e-3, atol=1e-3)


def test_no_validation_set_falls_back_with_a_warning(
    data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="colliderfm"):
        summary = run_finetune(_cfg(data, "data.val=null"), tmp_path / "a", progress=False)
    assert "no validation set" in caplog.text
    p = summary["probe"]
    assert summary["probe_l2"] == p["l2"] == PROBE_L2_FALLBACK and "no validation" in p["chosen_by"]
    assert len(p["grid"]) == 1 and p["grid"][0]["val_auc"] is None and summary["best"] == {}
    assert summary["test"]["auc"] > 0.99
    one = run_finetune(
        _cfg(data, "data.val=null", "finetune.probe_l2=[0.05]"), tmp_path / "b", progress=False
    )
    assert one["probe_l2"] == 0.05


def test_resume_of_a_finished_probe_and_no_overwrite(
    data: Path, probed: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, summary = probed
    with pytest.raises(ConfigError, match="a run already exists"):
        run_finetune(_cfg(data), out, progress=False)

    def refit(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a finished probe is not fitted again")

    monkeypatch.setattr("colliderfm.recipes.finetune.probe_head", refit)
    again = run_finetune(_cfg(data), out, resume=True, progress=False)
    assert again["probe"] == summary["probe"] and again["test"] == summary["test"]


def test_probe_config_keys_are_validated() -> None:
    ft = load_config(None, []).finetune
    assert ft.probe_l2 == GRID and ft.probe_max_iter == 1000
    assert load_config(None, ["finetune.probe_l2=[1e-2, 1]"]).finetune.probe_l2 == [0.01, 1.0]
    with pytest.raises(ConfigError, match="needs at least 1 value"):
        load_config(None, ["finetune.probe_l2=[]"])
    with pytest.raises(ConfigError, match=r"finetune.probe_l2\[1\]' = -1.0 is out of range"):
        load_config(None, ["finetune.probe_l2=[0.1, -1]"])
    with pytest.raises(ConfigError, match="probe_max_iter"):
        load_config(None, ["finetune.probe_max_iter=0"])
    with pytest.raises(ConfigError, match="not a finite number"):
        load_config(None, ["finetune.probe_l2=[.nan]"])


@pytest.mark.gpu
def test_probe_on_cuda_embeds_and_fits_there(
    data: Path, probed: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from colliderfm.data.schema import Batch

    moved: list[torch.device] = []
    original = Batch.to

    def spy(self: Batch, device: object, non_blocking: bool = True) -> Batch:
        moved.append(torch.device(device))  # type: ignore[arg-type]
        return original(self, device, non_blocking)  # type: ignore[arg-type]

    monkeypatch.setattr(Batch, "to", spy)
    summary = run_finetune(_cfg(data, "train.device=cuda"), tmp_path / "gpu", progress=False)
    assert moved and {d.type for d in moved} == {"cuda"}
    assert summary["probe"]["converged"]
    # embeddings in float32 on the GPU, float64 L-BFGS there: the CPU run's result
    assert summary["test"]["auc"] == pytest.approx(probed[1]["test"]["auc"], abs=2e-3)
    cpu = load_model(tmp_path / "gpu", device="cpu")
    assert next(cpu.parameters()).device.type == "cpu"
