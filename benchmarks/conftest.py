"""pytest setup of the benchmarks: collect ``bench_*.py`` and fail a run in which none ran.

The benchmark files are named ``bench_*.py`` (each is also a script), which pytest's default
``python_files`` does not match; this hook collects them, for ``make bench``
(``pytest -m bench benchmarks``) and for one file (``pytest -m bench benchmarks/bench_loader.py``).
The default test run (``make test``, ``testpaths = ["tests"]``, ``-m 'not bench'``) never loads
this directory.

A benchmark run in which no benchmark passed (none collected, all deselected or all skipped)
exits with pytest's "no tests collected" status 5, so ``make bench`` cannot succeed silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

_passed: list[str] = []  # node ids of the benchmarks that passed
_nothing_ran: list[bool] = []  # set when the run is turned into exit status 5


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Collect ``bench_*.py`` files as test modules.

    Args:
        file_path: a file pytest visits below this directory.
        parent: its collector.

    Returns:
        A module collector for a benchmark file, else None (pytest's own rules apply).
    """
    if parent.session.isinitpath(file_path):
        return None  # named on the command line: pytest collects it itself
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember the benchmarks that passed.

    Args:
        report: one phase of one test.
    """
    if report.when == "call" and report.passed:
        _passed.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int | pytest.ExitCode) -> None:
    """Turn a benchmark run in which nothing ran into exit status 5.

    Args:
        session: the test session.
        exitstatus: the status pytest would exit with.
    """
    collect_only = bool(session.config.getoption("collectonly", False))
    if exitstatus == pytest.ExitCode.OK and not _passed and not collect_only:
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
        _nothing_ran.append(True)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say why a benchmark run failed with status 5.

    Args:
        terminalreporter: pytest's terminal reporter.
        exitstatus: the session's exit status (before :func:`pytest_sessionfinish`).
        config: the pytest config.
    """
    if _nothing_ran:
        terminalreporter.write_line("benchmarks: no benchmark ran (none selected, or all skipped)")
