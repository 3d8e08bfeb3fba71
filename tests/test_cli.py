import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from colliderfm.cli import app

VERBS = ["generate", "convert", "inspect", "models", "finetune", "evaluate"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "colliderfm", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_verb() -> None:
    out = CliRunner().invoke(app, ["--help"]).output
    for verb in VERBS:
        assert verb in out


@pytest.mark.parametrize(
    "verb", [["generate", "jets"], ["convert"], ["inspect"], ["finetune"], ["evaluate"]]
)
def test_each_verb_help_has_examples(verb: list[str]) -> None:
    res = CliRunner().invoke(app, [*verb, "--help"])
    assert res.exit_code == 0 and "colliderfm " + verb[0] in res.output


def test_user_error_is_one_line_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty.root"
    empty.write_bytes(b"")
    res = _run("inspect", str(empty))
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(empty) in lines[0] and "empty" in lines[0]
    assert "Traceback" not in res.stderr


def test_config_error_exit_2(tmp_path: Path) -> None:
    res = _run("finetune", "--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "r"))
    assert res.returncode == 2 and "config file not found" in res.stderr
    assert not (tmp_path / "r").exists()
