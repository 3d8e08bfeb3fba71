"""Path errors say what is wrong (principle 7 of issue 18, the messages).

Cases, each through :func:`reader_for` (every input's lookup) and a few through the CLI:

- a symbolic link loop: "symbolic link loop", not "no such file"
- a broken symbolic link: names its missing target, not just "no such file"
- a FIFO: "named pipe", not "file is empty" (and nothing blocks reading it)
- a Unix socket: "socket", not "file is empty"
- a character device (``/dev/null``): "character device", not "file is empty"
- a path through a file (``file.parquet/x``): says a part of the path is a file
- an unreadable file (permissions): "permission denied"
- an unlistable directory (permissions): "permission denied", "cannot be listed"
- a directory where a Parquet file is expected (a shard): "is a directory"
- a FIFO where a Parquet shard is expected: "named pipe"
- still: a missing path is "no such file or directory", an empty file "file is empty"
- with ``--format`` given too (was: no path check at all, the reader's own "no such file")
- CLI ``inspect`` / ``evaluate --data`` / ``finetune`` ``data.train``: one error line, exit 2
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import assert_one_error_line, make_classifier_ckpt, run_cli, tiny_config

from colliderfm.data.readers.base import reader_for
from colliderfm.data.readers.parquet import open_parquet
from colliderfm.errors import DataError


def _deny(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Make ``path`` unreadable: chmod, and as root (who reads anything) deny it in os.access."""
    path.chmod(0)
    if os.geteuid() == 0:
        real = os.access

        def access(p: object, mode: int, *a: object, **k: object) -> bool:
            return False if Path(str(p)) == path else real(p, mode, *a, **k)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "access", access)


@pytest.fixture
def sock(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "s"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    yield path
    s.close()


def _problem(path: Path, fmt: str | None = None) -> str:
    with pytest.raises(DataError) as info:
        reader_for(path, fmt)
    return info.value.problem


def test_symlink_loop(tmp_path: Path) -> None:
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    assert "symbolic link loop" in _problem(tmp_path / "a")
    assert "no such file" not in _problem(tmp_path / "a")


def test_broken_symlink(tmp_path: Path) -> None:
    os.symlink(tmp_path / "gone.parquet", tmp_path / "link")
    problem = _problem(tmp_path / "link")
    assert "broken symbolic link" in problem and "gone.parquet" in problem


def test_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "f")
    problem = _problem(tmp_path / "f")
    assert "named pipe" in problem and "empty" not in problem
    assert "named pipe" in _problem(tmp_path / "f", "toptagging")


def test_socket(sock: Path) -> None:
    problem = _problem(sock)
    assert "socket" in problem and "empty" not in problem


def test_character_device() -> None:
    assert "character device" in _problem(Path("/dev/null"))


def test_path_through_a_file(tmp_path: Path) -> None:
    (tmp_path / "file.parquet").write_bytes(b"PAR1")
    assert "part of the path is a file" in _problem(tmp_path / "file.parquet" / "x")


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "x.parquet"
    p.write_bytes(b"PAR1 not really")
    _deny(monkeypatch, p)
    assert "permission denied" in _problem(p)


def test_unlistable_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "shards"
    d.mkdir()
    _deny(monkeypatch, d)
    try:
        problem = _problem(d)
    finally:
        d.chmod(0o755)
    assert "permission denied" in problem and "cannot be listed" in problem


def test_directory_or_fifo_where_a_shard_is_expected(tmp_path: Path) -> None:
    (tmp_path / "part-00000.parquet").mkdir()
    with pytest.raises(DataError, match="is a directory, not a file"):
        open_parquet(tmp_path / "part-00000.parquet", "shard")
    os.mkfifo(tmp_path / "part-00001.parquet")
    with pytest.raises(DataError, match="named pipe"):
        open_parquet(tmp_path / "part-00001.parquet", "shard")


def test_plain_cases_unchanged(tmp_path: Path) -> None:
    assert _problem(tmp_path / "missing") == "no such file or directory"
    assert _problem(tmp_path / "missing", "parquet") == "no such file or directory"
    (tmp_path / "empty").write_bytes(b"")
    assert _problem(tmp_path / "empty") == "file is empty"


@pytest.mark.parametrize("verb", ["inspect", "evaluate", "finetune"])
def test_cli_says_what_is_wrong(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    verb: str,
) -> None:
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    os.mkfifo(tmp_path / "fifo")
    for bad, needle in [(tmp_path / "a", "symbolic link loop"), (tmp_path / "fifo", "named pipe")]:
        if verb == "inspect":
            args = ["inspect", str(bad)]
        elif verb == "evaluate":
            ck = tmp_path / "ck"
            if not ck.exists():
                make_classifier_ckpt(ck)
            args = ["evaluate", "--checkpoint", str(ck), "--data", str(bad)]
        else:
            cfg = tiny_config(tmp_path / "c.yaml", bad, steps=1)
            args = ["finetune", "--config", str(cfg), "--init", "none"]
            args += ["--out", str(tmp_path / "run")]
        code, _, err = run_cli(args, monkeypatch, capsys)
        assert_one_error_line(code, err, str(bad), needle)
