"""The recipe runner: the setup recipes share, and what every checkpoint records."""

import ast
from pathlib import Path

import pytest
from cli_helpers import run_cli
from synth import tiny_finetune_config, write_splits

from colliderfm.recipes.finetune import run_finetune
from colliderfm.train.checkpoint import read_checkpoint_meta
from colliderfm.train.meta import data_fingerprint

SRC = Path(__file__).resolve().parents[2] / "src" / "colliderfm"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_splits(tmp_path_factory.mktemp("rn"), (400, 100, 100), seed=3, rows_per_shard=200)


def test_checkpoint_records_the_data_fingerprint(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny_finetune_config(data, "train.max_steps=2", "finetune.n_train=100")
    run_finetune(cfg, tmp_path / "run", progress=False)
    meta = read_checkpoint_meta(tmp_path / "run")
    subset = {"n_train": 100, "seed": cfg.train.seed}
    assert meta.data.subset == subset and meta.data.n_train == 100
    assert meta.data.fingerprint == data_fingerprint([data / "train"], subset)[0]
    assert meta.data.sources[0]["n"] == 400
    code, out, _ = run_cli(["inspect", str(tmp_path / "run")], monkeypatch, capsys)
    assert code == 0 and meta.data.fingerprint in out and "classifier" in out


def test_only_the_runner_calls_the_training_loop() -> None:
    callers = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            loop = isinstance(node, ast.ImportFrom) and node.module == "colliderfm.train.loop"
            if loop and any(a.name == "fit" for a in node.names):
                callers.append(path.relative_to(SRC).as_posix())
    assert callers == ["recipes/runner.py"]
