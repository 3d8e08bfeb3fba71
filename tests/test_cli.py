"""The command line: every verb is listed, every command's help shows runnable examples, user
errors are one line with exit code 2."""

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from colliderfm.cli import app

VERBS = ["generate", "convert", "inspect", "models", "finetune", "evaluate"]
#: every verb of the documented command line (DESIGN.md, README), besides ``VERBS``
MORE_VERBS = ["pretrain", "merge", "export", "study"]


def _commands(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every leaf command of a click group, with its path (``("generate", "jets")``)."""
    subs = getattr(cmd, "commands", None)
    if not subs:
        yield path, cmd
        return
    for name, sub in subs.items():
        yield from _commands(sub, (*path, name))


ROOT = typer.main.get_command(app)
TOP = list(getattr(ROOT, "commands", {}))  # the verbs, from the app itself
COMMANDS = dict(_commands(ROOT))  # every command, sub-apps included


def _help(path: tuple[str, ...]) -> str:
    """A command's ``--help`` on a wide terminal (one example per line, nothing re-wrapped)."""
    res = CliRunner().invoke(app, [*path, "--help"], terminal_width=10_000)
    assert res.exit_code == 0, res.output
    return res.output


def _examples(help_text: str, path: tuple[str, ...]) -> list[list[str]]:
    """The example command lines of a help text: the ``colliderfm <path> ...`` paragraphs after
    its "Example"/"Examples" heading, split into words."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", help_text)]
    heading = [i for i, p in enumerate(paragraphs) if re.match(r"Examples?\b", p)]
    if not heading:
        return []
    lines = [shlex.split(p) for p in paragraphs[heading[0] + 1 :] if p.startswith("colliderfm ")]
    return [words for words in lines if tuple(words[1 : 1 + len(path)]) == path]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "colliderfm", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_verb() -> None:
    assert set(VERBS + MORE_VERBS) <= set(TOP)  # the enumeration sees the documented verbs
    out = CliRunner().invoke(app, ["--help"]).output
    for verb in TOP:
        assert verb in out


def test_every_command_is_enumerated() -> None:
    paths = {" ".join(p) for p in COMMANDS}
    assert {"generate jets", "generate events", "export onnx", "study report"} <= paths
    assert {"study data-efficiency", "study scaling", "study compute", "models"} <= paths
    assert len(paths) >= len(TOP)


@pytest.mark.parametrize("path", list(COMMANDS), ids=" ".join)
def test_each_verb_help_has_examples(path: tuple[str, ...]) -> None:
    out = _help(path)
    assert "colliderfm " + " ".join(path) in out
    examples = _examples(out, path)
    assert examples, f"`colliderfm {' '.join(path)} --help` has no Examples section with a command"
    for words in examples:  # every example parses: its options exist, its values convert
        COMMANDS[path].make_context(" ".join(words[: 1 + len(path)]), words[1 + len(path) :])


def test_a_help_without_examples_fails_the_check() -> None:
    out = _help(("models",))
    assert _examples(out, ("models",)) == [
        ["colliderfm", "models"],
        ["colliderfm", "models", "--pretrained"],
    ]
    cut = out[: out.index("Example")]
    assert _examples(cut, ("models",)) == []
    assert _examples(out.replace("Examples:", "Usage notes:"), ("models",)) == []
    assert _examples(_help(("inspect",)), ("models",)) == []  # another verb's examples


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
