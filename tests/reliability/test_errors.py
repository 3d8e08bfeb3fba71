"""One error format: command-line mistakes print the same one line as every other error.

Cases (each: exit 2, exactly one stderr line ``colliderfm: error: ...`` naming the command and
the problem, no ``Usage:`` block, no traceback):

* ``generate jets --n 0`` and ``--workers 0`` (out of range);
* ``finetune`` without ``--config`` (missing option);
* ``nosuchverb`` (unknown verb) and ``study nosuch`` (unknown sub-verb);
* ``inspect --no-such-option x`` (unknown option);
* ``generate jets --n many`` (not a number);
* ``inspect`` without its argument (missing argument);
* and, for contrast, ``colliderfm`` and ``colliderfm generate`` alone print their help, exit 0.
"""

from __future__ import annotations

import pytest
from cli_helpers import run_cli


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["generate", "jets", "--n", "0"], ["generate jets", "--n"]),
        (["generate", "jets", "--workers", "0"], ["generate jets", "--workers"]),
        (["generate", "jets", "--n", "many"], ["generate jets", "--n", "integer"]),
        (["finetune", "--out", "x"], ["finetune", "Missing option", "--config"]),
        (["nosuchverb"], ["No such command", "nosuchverb"]),
        (["study", "nosuch"], ["study", "nosuch"]),
        (["inspect", "--no-such-option", "x"], ["inspect", "No such option"]),
        (["inspect"], ["inspect", "Missing argument"]),
    ],
)
def test_usage_error_is_one_line(
    args: list[str], needles: list[str], monkeypatch: pytest.MonkeyPatch, capsys: object
) -> None:
    code, out, err = run_cli(args, monkeypatch, capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("colliderfm: error: "), err
    assert all(n in lines[0] for n in needles), lines[0]
    assert "Usage:" not in err + out and "Traceback" not in err


@pytest.mark.parametrize("args", [[], ["generate"]])
def test_bare_group_prints_help(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: object
) -> None:
    code, out, err = run_cli(args, monkeypatch, capsys)
    assert code == 0 and "Usage:" in out and "Commands" in out and not err.strip()
