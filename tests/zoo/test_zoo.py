"""The model zoo: ``zoo:NAME`` entries list, resolve, verify, load and initialise fine-tuning.

Nothing is shipped yet, so a real tiny pretraining checkpoint is laid out as a zoo entry in a
temporary root and the module's root is pointed there with monkeypatch.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from fnmatch import fnmatch
from pathlib import Path

import pytest
import torch
import yaml
from cli_helpers import (
    assert_no_checkpoint,
    assert_one_error_line,
    make_pretrain_ckpt,
    run_cli,
    tiny_config,
)
from safetensors.torch import load_file
from synth import tiny_finetune_config, write_splits

import colliderfm
from colliderfm import zoo
from colliderfm.checkpoints import describe_checkpoint, is_checkpoint, load_model
from colliderfm.errors import CheckpointError, ConfigError
from colliderfm.recipes.finetune import run_finetune

NAME = "jets-tiny-test"
ROOT_DIR = Path(__file__).resolve().parents[2]


def _pretrain_ckpt(path: Path) -> Path:
    """A tiny contrastive pretraining checkpoint, saved the way the pretraining recipe does."""
    return make_pretrain_ckpt(path, "contrastive")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _make_entry(ckpt: Path, root: Path, name: str = NAME, probe_auc: float | None = 0.8123) -> Path:
    """Lay a checkpoint out as a zoo entry: weights, config, SHA256SUMS, card, meta.json."""
    folder = root / name
    folder.mkdir(parents=True)
    for f in ("model.safetensors", "config.yaml"):
        shutil.copy2(ckpt / f, folder / f)
    sums = "".join(f"{_sha(folder / f)}  {f}\n" for f in ("model.safetensors", "config.yaml"))
    (folder / "SHA256SUMS").write_text(sums)
    (folder / "MODEL_CARD.md").write_text(f"# {name}\n\nA tiny test checkpoint.\n")
    n_params = sum(p.numel() for p in load_model(ckpt).backbone.parameters())
    meta = {
        "name": name,
        "recipe": "contrastive",
        "backbone": "part",
        "preset": "tiny",
        "parameters": n_params,
        "pretraining_data": "synthetic test jets",
        "steps": 1234,
        "probe_auc": probe_auc,
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _pretrain_ckpt(tmp_path_factory.mktemp("zoo-src") / "clr")


@pytest.fixture
def root(ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A zoo root with one entry, installed as the module's root."""
    r = tmp_path / "zoo"
    _make_entry(ckpt, r)
    monkeypatch.setattr(zoo, "ZOO_ROOT", r)
    return r


@pytest.fixture
def empty_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    r = tmp_path / "empty-zoo"
    r.mkdir()
    (r / "__pycache__").mkdir()  # not an entry
    monkeypatch.setattr(zoo, "ZOO_ROOT", r)
    return r


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_splits(tmp_path_factory.mktemp("zoo-ft"), (256, 64, 64), seed=1)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# --- listing -----------------------------------------------------------------------------------


def test_list_entries_reads_meta(root: Path, ckpt: Path) -> None:
    (root / ".hidden").mkdir()  # hidden folders and files are not entries
    (root / "README.md").write_text("x")
    entries = zoo.list_entries()
    assert [e.name for e in entries] == [NAME]
    e = entries[0]
    assert e.path == root / NAME
    assert e.meta["recipe"] == "contrastive" and e.meta["probe_auc"] == pytest.approx(0.8123)
    assert e.meta["parameters"] == sum(p.numel() for p in load_model(ckpt).backbone.parameters())
    with pytest.raises(AttributeError):
        e.name = "other"  # type: ignore[misc]  (frozen)
    assert zoo.list_entries(root) == entries  # an explicit root gives the same


def test_empty_and_missing_roots_list_nothing(empty_root: Path, tmp_path: Path) -> None:
    assert zoo.list_entries() == []
    assert zoo.list_entries(tmp_path / "does-not-exist") == []


def test_malformed_meta_names_the_file(root: Path) -> None:
    meta = root / NAME / "meta.json"
    info = json.loads(meta.read_text())
    del info["steps"]
    meta.write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match=r"meta\.json lacks steps.*corrupted"):
        zoo.list_entries()
    meta.write_text("{not json")
    with pytest.raises(CheckpointError, match=r"meta\.json is not valid JSON"):
        zoo.list_entries()


def test_is_zoo_ref() -> None:
    assert zoo.is_zoo_ref("zoo:jets-contrastive-small")
    assert zoo.is_zoo_ref("zoo:")
    assert not zoo.is_zoo_ref("runs/clr")
    assert not zoo.is_zoo_ref("none")
    assert not zoo.is_zoo_ref("./zoo:x")


# --- resolving and loading ---------------------------------------------------------------------


def test_resolve_gives_a_checkpoint_the_loaders_accept(root: Path, ckpt: Path) -> None:
    path = zoo.resolve(f"zoo:{NAME}")
    assert path == root / NAME
    assert is_checkpoint(path)
    assert describe_checkpoint(path)["task"] == "pretrain"
    assert zoo.checkpoint_path(f"zoo:{NAME}") == path
    assert zoo.checkpoint_path(str(ckpt)) == ckpt  # plain paths pass through
    original = _state(load_model(ckpt))
    _assert_same(_state(colliderfm.load(f"zoo:{NAME}")), original)
    _assert_same(_state(load_model(path)), original)
    _assert_same(_state(colliderfm.load(str(ckpt))), original)


def test_unknown_name_lists_the_available_ones(root: Path, ckpt: Path) -> None:
    _make_entry(ckpt, root, "jets-other")
    with pytest.raises(CheckpointError) as exc:
        zoo.resolve("zoo:nope")
    msg = str(exc.value)
    assert "zoo:nope" in msg and f"available: jets-other, {NAME}" in msg
    with pytest.raises(CheckpointError, match="available"):
        colliderfm.load("zoo:nope")
    with pytest.raises(CheckpointError, match="available"):
        zoo.resolve("zoo:")
    with pytest.raises(CheckpointError, match="available"):
        zoo.resolve("zoo:../zoo/" + NAME)  # only names of entries, never paths
    with pytest.raises(CheckpointError, match="not a zoo reference"):
        zoo.resolve(str(ckpt))


def test_unknown_name_in_an_empty_zoo_says_it_is_empty(empty_root: Path) -> None:
    with pytest.raises(CheckpointError, match="the zoo is empty"):
        zoo.resolve("zoo:jets-contrastive-small")


def test_flipped_byte_is_a_corrupted_weights_file(root: Path) -> None:
    weights = root / NAME / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # inside the tensor data: safetensors itself would not notice
    weights.write_bytes(bytes(raw))
    for call in (lambda: zoo.resolve(f"zoo:{NAME}"), lambda: colliderfm.load(f"zoo:{NAME}")):
        with pytest.raises(CheckpointError) as exc:
            call()
        msg = str(exc.value)
        assert str(weights) in msg and "corrupted" in msg and "SHA256SUMS" in msg
    assert zoo.resolve(f"zoo:{NAME}", verify=False) == root / NAME  # the check can be skipped


def test_edited_config_is_corrupted(root: Path) -> None:
    config = root / NAME / "config.yaml"
    config.write_text(config.read_text() + "\n# edited\n")
    with pytest.raises(CheckpointError, match=r"config\.yaml does not match.*corrupted"):
        zoo.resolve(f"zoo:{NAME}")


@pytest.mark.parametrize("missing", ["model.safetensors", "config.yaml", "SHA256SUMS"])
def test_missing_file_is_corrupted(root: Path, missing: str) -> None:
    (root / NAME / missing).unlink()
    with pytest.raises(CheckpointError) as exc:
        zoo.resolve(f"zoo:{NAME}")
    msg = str(exc.value)
    assert str(root / NAME / missing) in msg and "missing" in msg and "corrupted" in msg


def test_checksums_must_cover_both_files(root: Path) -> None:
    sums = root / NAME / "SHA256SUMS"
    sums.write_text(sums.read_text().splitlines()[0] + "\n")  # the weights' line only
    with pytest.raises(CheckpointError, match=r"no checksum of config\.yaml"):
        zoo.resolve(f"zoo:{NAME}")
    sums.write_text("not a checksum line\n")
    with pytest.raises(CheckpointError, match="SHA256SUMS has a line"):
        zoo.resolve(f"zoo:{NAME}")


def test_checksums_written_by_sha256sum_are_read(root: Path) -> None:
    tool = shutil.which("sha256sum")
    if tool is None:
        pytest.skip("no sha256sum on this machine")
    folder = root / NAME
    check = subprocess.run([tool, "-c", "SHA256SUMS"], cwd=folder, capture_output=True)
    assert check.returncode == 0, check.stdout  # our layout is sha256sum's format
    made = subprocess.run(
        [tool, "-b", "model.safetensors", "config.yaml"], cwd=folder, capture_output=True
    )
    (folder / "SHA256SUMS").write_bytes(made.stdout)  # binary mode: "HASH *FILE"
    assert zoo.resolve(f"zoo:{NAME}") == folder


# --- fine-tuning and studies -------------------------------------------------------------------


def test_finetune_init_from_zoo_loads_the_backbone(root: Path, ckpt: Path, data: Path) -> None:
    cfg = tiny_finetune_config(
        data,
        f"finetune.init=zoo:{NAME}",
        "finetune.mode=frozen",
        "train.max_steps=2",
        "train.batch_size=32",
        "data.max_particles=16",
    )
    assert cfg.finetune.init == f"zoo:{NAME}"  # the override keeps the reference as given
    out = root.parent / "ft"
    run_finetune(cfg, out, progress=False)
    tuned = load_model(out)
    tensors = load_file(str(ckpt / "model.safetensors"))
    saved = {k[len("backbone.") :]: v for k, v in tensors.items() if k.startswith("backbone.")}
    _assert_same(_state(tuned.backbone), saved)  # frozen: still exactly the zoo weights
    assert yaml.safe_load((out / "config.yaml").read_text())["config"]["finetune"]["init"] == (
        f"zoo:{NAME}"
    )


def test_finetune_refuses_a_corrupted_or_unknown_entry(root: Path, data: Path) -> None:
    with pytest.raises(CheckpointError, match=f"available: {NAME}"):
        run_finetune(
            tiny_finetune_config(data, "finetune.init=zoo:nope"), root.parent / "a", progress=False
        )
    weights = root / NAME / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupted"):
        run_finetune(
            tiny_finetune_config(data, f"finetune.init=zoo:{NAME}"),
            root.parent / "b",
            progress=False,
        )
    assert_no_checkpoint(root.parent / "a")
    assert_no_checkpoint(root.parent / "b")


def test_study_arms_take_zoo_refs(root: Path, data: Path, tmp_path: Path) -> None:
    from colliderfm.studies.config import load_study_config
    from colliderfm.studies.sweep import check_points, make_points, point_config

    base = {
        "data": {"train": str(data / "train"), "val": str(data / "val"), "max_particles": 16},
        "model": {"name": "part", "preset": "tiny", "pair_features": False},
    }
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))

    def study(init: str) -> Path:
        s = {
            "base": "base.yaml",
            "arms": [{"name": "zoo-linear", "init": init, "mode": "linear"}],
            "n_train": [32],
            "seeds": [0],
            "budget": {"mode": "fixed", "max_steps": 2, "eval_every": 1},
            "test": str(data / "test"),
        }
        path = tmp_path / "study.yaml"
        path.write_text(yaml.safe_dump(s))
        return path

    cfg = load_study_config(study(f"zoo:{NAME}"))
    points = make_points(cfg.arms, cfg.n_train, cfg.seeds)
    assert point_config(cfg, points[0]).finetune.init == f"zoo:{NAME}"
    check_points(cfg, points)  # the arm's checkpoint is found and fits the config
    cfg = load_study_config(study("zoo:nope"))
    with pytest.raises(ConfigError, match=f"arm 'zoo-linear': zoo:nope.*available: {NAME}"):
        check_points(cfg, make_points(cfg.arms, cfg.n_train, cfg.seeds))


# --- command line ------------------------------------------------------------------------------


def test_cli_models_pretrained_lists_the_zoo(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["models", "--pretrained"], monkeypatch, capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["name", "recipe", "model", "parameters"]
    assert "probe AUC" in lines[0] and "pretraining data" in lines[0]
    row = lines[1]
    n = zoo.list_entries()[0].meta["parameters"]
    for cell in (f"zoo:{NAME}", "contrastive", "part/tiny", f"{n:,}", "1,234", "0.8123"):
        assert cell in row, (cell, row)
    assert row.endswith("synthetic test jets")


def test_cli_models_pretrained_without_auc(
    tmp_path: Path, ckpt: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _make_entry(ckpt, tmp_path / "z", probe_auc=None)
    monkeypatch.setattr(zoo, "ZOO_ROOT", tmp_path / "z")
    code, out, _ = run_cli(["models", "--pretrained"], monkeypatch, capsys)
    assert code == 0 and " n/a " in out.splitlines()[1]


def test_cli_models_pretrained_shows_the_probe_gain(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    folder = _make_entry(ckpt, tmp_path / "z", probe_auc=0.9756)
    meta = json.loads((folder / "meta.json").read_text())
    meta["probe"] = {"pooling": "mean", "gain_over_random": 0.0206, "random_mean_auc": 0.955}
    (folder / "meta.json").write_text(json.dumps(meta))
    monkeypatch.setattr(zoo, "ZOO_ROOT", tmp_path / "z")
    code, out, _ = run_cli(["models", "--pretrained"], monkeypatch, capsys)
    assert code == 0 and "0.9756 (+0.021 vs random)" in out.splitlines()[1]


def test_cli_models_pretrained_on_an_empty_zoo(
    empty_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["models", "--pretrained"], monkeypatch, capsys)
    assert code == 0, err
    assert out.splitlines() == [
        "no pretrained checkpoints are shipped yet (the model zoo is empty)"
    ]


def test_cli_models_without_flag_is_unchanged(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from colliderfm.models.registry import list_models

    code, out, _ = run_cli(["models"], monkeypatch, capsys)
    want = [f"{'model':<12}{'preset':<8}{'parameters':>12}"]
    want += [f"{name:<12}{preset:<8}{n:>12,}" for name, preset, n in list_models()]
    assert code == 0 and out.splitlines() == want


def test_cli_finetune_unknown_zoo_name_is_one_error_line(
    root: Path,
    data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tiny_config(tmp_path / "ft.yaml", data / "train")
    out = tmp_path / "run"
    args = ["finetune", "--config", str(config), "--out", str(out), "--init", "zoo:nope"]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert_one_error_line(code, err, "zoo:nope", f"available: {NAME}")
    assert_no_checkpoint(out)


def test_cli_finetune_zoo_name_on_an_empty_zoo(
    empty_root: Path,
    data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tiny_config(tmp_path / "ft.yaml", data / "train")
    args = ["finetune", "--config", str(config), "--out", str(tmp_path / "r"), "--init", "zoo:x"]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert_one_error_line(code, err, "zoo:x", "zoo is empty")


# --- what is shipped ---------------------------------------------------------------------------


def test_shipped_entries_verify_load_and_match_their_meta() -> None:
    # nothing is shipped yet: this guards every checkpoint added under src/colliderfm/zoo/
    for e in zoo.list_entries():
        path = zoo.resolve(f"zoo:{e.name}")
        assert (path / zoo.CARD).is_file(), f"{e.name}: no {zoo.CARD}"
        model = colliderfm.load(f"zoo:{e.name}")
        info = describe_checkpoint(path)
        assert (info["model"]["name"], info["model"]["preset"]) == (
            e.meta["backbone"],
            e.meta["preset"],
        )
        assert e.meta["parameters"] == sum(p.numel() for p in model.backbone.parameters())
        assert e.meta["recipe"] in (info["model"].get("objective"), info["task"])


def test_zoo_entries_are_package_data() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((ROOT_DIR / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["colliderfm"]
    for f in ("model.safetensors", "config.yaml", "SHA256SUMS", "MODEL_CARD.md", "meta.json"):
        assert any(fnmatch(f"zoo/jets-contrastive-small/{f}", g) for g in globs), f
    assert Path(zoo.__file__).resolve().parent == zoo.ZOO_ROOT  # the entries sit beside it
