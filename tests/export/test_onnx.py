"""ONNX export: parity with torch under onnxruntime, dynamic axes, the sidecar, user errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from cli_helpers import make_pretrain_ckpt
from synth import synthetic_jets

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from colliderfm import load  # noqa: E402
from colliderfm.data.features import FEATURE_SETS, NORMALISATION, particle_features  # noqa: E402
from colliderfm.data.stream import ConstituentStream  # noqa: E402
from colliderfm.errors import CheckpointError, ColliderFMError  # noqa: E402
from colliderfm.export.onnx import FEATURE_DEFINITIONS, ExportError, export_onnx  # noqa: E402
from colliderfm.train.checkpoint import save_checkpoint  # noqa: E402

CLASSES = ["QCD", "Tbqq", "Wqq"]
MAX_PARTICLES = 40


def _classifier_ckpt(path: Path, feature_set: str = "part", **kwargs: Any) -> Path:
    """A tiny classifier saved right after initialisation (random but fixed weights)."""
    from colliderfm.finetune.classifier import build_classifier

    torch.manual_seed(0)
    m = {
        "name": "part",
        "preset": "tiny",
        "in_dim": len(FEATURE_SETS[feature_set]),
        "kwargs": kwargs,
        "task": "classifier",
        "n_classes": len(CLASSES),
        "classes": CLASSES,
        "head_hidden": 16,
        "feature_set": feature_set,
    }
    model = build_classifier(m)
    with torch.no_grad():  # non-trivial head outputs
        for p in model.head.parameters():
            p.normal_(0.0, 0.5)
    cfg = {"data": {"max_particles": MAX_PARTICLES, "features": feature_set}}
    return save_checkpoint(path, model, {"model": m, "config": cfg})


def _pretrain_ckpt(path: Path) -> Path:
    return make_pretrain_ckpt(path, "contrastive", kwargs={}, max_particles=MAX_PARTICLES)


def _batches(feature_set: str = "part") -> list[Any]:
    """Real batches (synthetic jets through ConstituentStream), shaped unlike the export's trace."""
    jets = synthetic_jets(40, seed=5, max_particles=60, n_classes=3)
    out = []
    for bs in (7, 16):
        stream = ConstituentStream(
            jets,
            batch_size=bs,
            max_particles=MAX_PARTICLES,
            shuffle=False,
            feature_set=feature_set,
            rank=0,
            world_size=1,
        )
        out.append(next(iter(stream)))
    return out


def _feed(sess: Any, batch: Any, float_mask: bool = False) -> dict[str, np.ndarray]:
    mask = batch.mask.float() if float_mask else batch.mask
    arrays = {
        "features": batch.features.numpy(),
        "mask": mask.numpy(),
        "vectors": batch.vectors.numpy(),
    }
    return {i.name: arrays[i.name] for i in sess.get_inputs()}


@pytest.mark.parametrize(
    ("kwargs", "float_mask", "feature_set"),
    [
        ({}, False, "part"),
        ({"pair_features": False, "pooling": "mean"}, True, "kinematic"),
    ],
)
def test_classifier_parity_dynamic_axes(
    tmp_path: Path, kwargs: dict[str, Any], float_mask: bool, feature_set: str
) -> None:
    ckpt = _classifier_ckpt(tmp_path / "ckpt", feature_set, **kwargs)
    out = tmp_path / "model.onnx"
    info = export_onnx(ckpt, out, mask_dtype="float" if float_mask else "bool")
    assert out.is_file() and Path(info["sidecar"]).is_file()
    assert info["max_abs_diff"] is not None and info["max_abs_diff"] < 1e-4
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left
    names = [i["name"] for i in info["inputs"]]
    assert names == (["features", "mask"] if kwargs else ["features", "mask", "vectors"])
    model = load(str(ckpt))  # what colliderfm itself runs (packed path)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["logits", "probs"]
    shapes = set()
    for batch in _batches(feature_set):
        assert not batch.mask.all()  # padding present
        shapes.add(tuple(batch.features.shape[:2]))
        logits, probs = sess.run(None, _feed(sess, batch, float_mask))
        with torch.no_grad():
            want = model(batch.features, batch.mask, batch.vectors)  # [B, C]
        assert logits.shape == (len(batch), len(CLASSES))
        assert np.abs(logits - want.numpy()).max() < 1e-4
        assert np.abs(probs - torch.softmax(want, -1).numpy()).max() < 1e-4
    assert len(shapes) == 2 and (2, 4) not in shapes  # other B and P than the trace


def test_pretrain_exports_embedding(tmp_path: Path) -> None:
    ckpt = _pretrain_ckpt(tmp_path / "ckpt")
    out = tmp_path / "enc.onnx"
    info = export_onnx(ckpt, out, opset=17)
    assert info["task"] == "pretrain" and [o["name"] for o in info["outputs"]] == ["embedding"]
    model = load(str(ckpt))
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in _batches():
        (emb,) = sess.run(None, _feed(sess, batch))
        with torch.no_grad():
            want = model.backbone.embed(batch.features, batch.mask, batch.vectors)  # [B, D]
        assert emb.shape == (len(batch), 48)
        assert np.abs(emb - want.numpy()).max() < 1e-4


def _reference_features(
    side: dict[str, Any], vectors: np.ndarray, mask: np.ndarray, charge: np.ndarray, pid: np.ndarray
) -> np.ndarray:
    """Features prepared the way a C++ user would, from the sidecar's description alone."""
    eps = 1e-8
    v = vectors.astype(np.float64) * mask[..., None]  # [B, P, 4]
    jet = v.sum(1, keepdims=True)  # [B, 1, 4]

    def kin(x: np.ndarray) -> tuple[np.ndarray, ...]:
        pt = np.hypot(x[..., 0], x[..., 1])
        eta = np.where(pt > 0, np.arcsinh(x[..., 2] / np.maximum(pt, eps)), 0.0)
        return pt, x[..., 3], eta, np.arctan2(x[..., 1], x[..., 0])

    pt, e, eta, phi = kin(v)
    jpt, je, jeta, jphi = kin(jet)
    log = lambda a: np.log(np.maximum(a, eps))  # noqa: E731
    deta = eta - jeta
    dphi = np.mod(phi - jphi + np.pi, 2 * np.pi) - np.pi
    apid = np.abs(pid)
    known, charged = apid > 0, charge != 0
    lep = (apid == 11) | (apid == 13)
    raw = {
        "log_pt": log(pt),
        "log_e": log(e),
        "log_ptrel": log(pt) - log(jpt),
        "log_erel": log(e) - log(je),
        "deta": deta,
        "dphi": dphi,
        "dr": np.hypot(deta, dphi),
        "charge": charge,
        "is_charged_hadron": known & charged & ~lep,
        "is_neutral_hadron": known & ~charged & ~lep & (apid != 22),
        "is_photon": apid == 22,
        "is_electron": apid == 11,
        "is_muon": apid == 13,
    }
    cols = [(raw[f["name"]] + f["shift"]) * f["scale"] for f in side["features"]["per_feature"]]
    return np.stack(cols, -1) * mask[..., None]  # [B, P, F]


def test_sidecar_describes_inputs(tmp_path: Path) -> None:
    ckpt = _classifier_ckpt(tmp_path / "ckpt")
    out = tmp_path / "model.onnx"
    export_onnx(ckpt, out, verify=False)
    side = json.loads(out.with_name("model.onnx.json").read_text())
    assert side["classes"] == CLASSES and side["opset"] == 17
    assert side["colliderfm_version"] and side["checkpoint"]["task"] == "classifier"
    assert side["features"]["names"] == list(FEATURE_SETS["part"])
    assert set(FEATURE_DEFINITIONS) >= {n for s in FEATURE_SETS.values() for n in s}
    for f in side["features"]["per_feature"]:
        assert (f["shift"], f["scale"]) == NORMALISATION.get(f["name"], (0.0, 1.0))
    fv = side["four_vectors"]
    assert fv["components"] == ["px", "py", "pz", "E"] and fv["units"] == "GeV"
    assert fv["max_particles"] == MAX_PARTICLES and "descending" in fv["order"]
    inputs = {i["name"]: i for i in side["inputs"]}
    assert inputs["features"]["shape"] == ["batch", "particles", 13]
    assert inputs["mask"]["dtype"] == "bool" and inputs["vectors"]["shape"][-1] == 4
    assert [o["name"] for o in side["outputs"]] == ["logits", "probs"]
    # following the sidecar reproduces colliderfm's own preprocessing
    batch = _batches()[1]
    ref = _reference_features(
        side, batch.vectors.numpy(), batch.mask.numpy(), batch.charge.numpy(), batch.type_id.numpy()
    )
    got = particle_features(batch.vectors, batch.mask, batch.charge, batch.type_id).numpy()
    assert np.abs(ref - got).max() < 1e-4
    import onnx

    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["classes"]) == CLASSES and props["sidecar"] == "model.onnx.json"


def test_bad_inputs_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nope: checkpoint not found"):
        export_onnx(tmp_path / "nope", tmp_path / "m.onnx")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        export_onnx(tmp_path / "empty", tmp_path / "m.onnx")
    tok = save_checkpoint(tmp_path / "tok", torch.nn.Linear(2, 2), {"model": {"task": "vqvae"}})
    with pytest.raises(ExportError, match="cannot export a 'vqvae' checkpoint"):
        export_onnx(tok, tmp_path / "m.onnx")
    ckpt = _classifier_ckpt(tmp_path / "ckpt")
    with pytest.raises(ExportError, match="opset 11"):
        export_onnx(ckpt, tmp_path / "m.onnx", opset=11)
    with pytest.raises(ExportError, match="does not exist"):
        export_onnx(ckpt, tmp_path / "no" / "dir" / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_cli_error_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from colliderfm.cli import main

    monkeypatch.setattr(
        sys,
        "argv",
        [
            "colliderfm",
            "export",
            "onnx",
            "--checkpoint",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "m.onnx"),
        ],
    )
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("colliderfm: error:") and "nope" in err[0]
    assert issubclass(ExportError, ColliderFMError)


def test_cli_help_has_examples() -> None:
    from typer.testing import CliRunner

    from colliderfm.cli import app

    res = CliRunner().invoke(app, ["export", "onnx", "--help"])
    assert res.exit_code == 0 and "colliderfm export onnx --checkpoint" in res.output


# ---- event models: the ObjectTransformer (objt) on the ``event`` feature set ----

EVENT_CLASSES = ["ttbar", "h2hdm"]
MAX_OBJECTS = 12


def _objt_classifier_ckpt(path: Path, **kwargs: Any) -> Path:
    """A tiny objt event classifier saved right after initialisation, as finetune writes it."""
    from colliderfm.finetune.classifier import build_classifier

    torch.manual_seed(2)
    m = {
        "name": "objt",
        "preset": "tiny",
        "in_dim": len(FEATURE_SETS["event"]),
        "kwargs": kwargs,
        "task": "classifier",
        "n_classes": len(EVENT_CLASSES),
        "classes": EVENT_CLASSES,
        "head_hidden": 16,
        "feature_set": "event",
    }
    model = build_classifier(m)
    with torch.no_grad():  # non-trivial head outputs
        for p in model.head.parameters():
            p.normal_(0.0, 0.5)
    cfg = {"data": {"max_particles": MAX_OBJECTS, "features": "event"}}
    return save_checkpoint(path, model, {"model": m, "config": cfg})


def _event_batches() -> list[Any]:
    """Synthetic event batches of other sizes than the trace, objects shuffled, with padding."""
    from synth_events import synthetic_events

    out = []
    for n, slots, seed in ((7, 9, 3), (19, MAX_OBJECTS, 4)):
        b = synthetic_events(n, seed=seed, max_objects=slots, shuffle=True)
        b.vectors = b.vectors + torch.where(b.mask, 0.0, 7.0).unsqueeze(-1)  # junk at padding
        out.append(b)
    return out


@pytest.mark.parametrize("kwargs", [{}, {"pair_features": False, "pooling": "mean"}])
def test_event_classifier_cli_export_parity(
    tmp_path: Path,
    kwargs: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``colliderfm export onnx`` on an objt checkpoint: dynamic batch and object axes, parity."""
    from cli_helpers import run_cli

    ckpt = _objt_classifier_ckpt(tmp_path / "ckpt", **kwargs)
    out = tmp_path / "events.onnx"
    code, stdout, err = run_cli(
        ["export", "onnx", "--checkpoint", str(ckpt), "--out", str(out)], monkeypatch, capsys
    )
    assert code == 0, err
    info = json.loads(stdout)
    assert info["max_abs_diff"] is not None and info["max_abs_diff"] < 1e-4
    names = [i["name"] for i in info["inputs"]]
    assert names == (["features", "mask"] if kwargs else ["features", "mask", "vectors"])
    assert info["inputs"][0]["shape"] == ["batch", "objects", 11]
    model = load(str(ckpt))  # what colliderfm itself runs (packed path)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.shape[:2] for i in sess.get_inputs()] == [["batch", "objects"]] * len(names)
    shapes = set()
    for batch in _event_batches():
        assert not batch.mask.all()
        shapes.add(tuple(batch.features.shape[:2]))
        logits, probs = sess.run(None, _feed(sess, batch))
        with torch.no_grad():
            want = model(batch.features, batch.mask, batch.vectors)  # [B, C]
        assert logits.shape == (len(batch), len(EVENT_CLASSES))
        assert np.abs(logits - want.numpy()).max() < 1e-4
        assert np.abs(probs - torch.softmax(want, -1).numpy()).max() < 1e-4
    assert len(shapes) == 2 and (2, 4) not in shapes  # other B and N than the trace


def _reference_event_features(
    side: dict[str, Any],
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    e: np.ndarray,
    obj_type: np.ndarray,
    mask: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Event features and four-vectors prepared from (pT, eta, phi, E, type) and the sidecar."""
    eps = 1e-8
    met = obj_type == int(side["objects"]["met_type"])
    eta = np.where(met, 0.0, eta)
    pz = np.where(met, 0.0, pt * np.sinh(eta))
    e = np.where(met, pt, e)
    vectors = np.stack((pt * np.cos(phi), pt * np.sin(phi), pz, e), -1) * mask[..., None]
    types = {v: int(k) for k, v in side["objects"]["types"].items()}
    raw = {
        "log_pt": np.log(np.maximum(pt, eps)),
        "eta": np.clip(eta, -5.0, 5.0),
        "sin_phi": np.sin(phi),
        "cos_phi": np.cos(phi),
        "log_e": np.log(np.maximum(e, eps)),
        "is_masked": np.zeros_like(pt),
    }
    for name in ("electron", "muon", "bjet", "jet", "met"):
        raw[f"is_{name}"] = (obj_type == types[name]).astype(np.float64)
    cols = [(raw[f["name"]] + f["shift"]) * f["scale"] for f in side["features"]["per_feature"]]
    return np.stack(cols, -1) * mask[..., None], vectors  # [B, N, 11], [B, N, 4]


def test_event_sidecar_describes_inputs(tmp_path: Path) -> None:
    from colliderfm.data.features import EVENT_FEATURES, event_features

    ckpt = _objt_classifier_ckpt(tmp_path / "ckpt")
    out = tmp_path / "events.onnx"
    export_onnx(ckpt, out, verify=False)
    side = json.loads(out.with_name("events.onnx.json").read_text())
    assert side["classes"] == EVENT_CLASSES and side["checkpoint"]["model"] == "objt"
    feats = side["features"]
    assert feats["set"] == "event" and feats["names"] == list(EVENT_FEATURES)
    assert feats["reference"].endswith("event_features")
    per = {f["name"]: f for f in feats["per_feature"]}
    for name, f in per.items():
        assert (f["shift"], f["scale"]) == NORMALISATION.get(f"event_{name}", (0.0, 1.0))
        assert f["definition"]
    assert (per["log_pt"]["shift"], per["eta"]["scale"]) == (-4.0, 0.5)
    assert side["objects"]["types"] == {
        "1": "electron",
        "2": "muon",
        "3": "bjet",
        "4": "jet",
        "5": "met",
    }
    fv = side["four_vectors"]
    assert fv["max_objects"] == MAX_OBJECTS and "sinh(eta)" in fv["from_pt_eta_phi"]
    inputs = {i["name"]: i for i in side["inputs"]}
    assert inputs["features"]["shape"] == ["batch", "objects", 11]
    # following the sidecar from (pT, eta, phi, E, type) reproduces colliderfm's own features
    rng = np.random.default_rng(0)
    b, n = 6, 8
    mask = np.arange(n)[None, :] < rng.integers(2, n + 1, b)[:, None]
    obj_type = rng.integers(1, 6, (b, n)) * mask
    pt = rng.exponential(60.0, (b, n)) + 20.0
    eta, phi = rng.normal(0.0, 2.0, (b, n)), rng.uniform(-np.pi, np.pi, (b, n))
    e = pt * np.cosh(eta) * 1.01
    ref, vectors = _reference_event_features(side, pt, eta, phi, e, obj_type, mask)
    got = event_features(
        torch.from_numpy(vectors.astype(np.float32)),
        torch.from_numpy(mask),
        torch.from_numpy(obj_type),
    ).numpy()
    assert np.abs(ref - got).max() < 1e-4
