"""Committed study reports name no machine, and each one's config is committed and loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from colliderfm.studies.config import load_study_config

ROOT = Path(__file__).resolve().parents[2]
REPORTS = sorted((ROOT / "docs" / "studies").glob("*/report.md"))
MACHINE = re.compile(r"(?<![\w.~-])/(work|tmp|home|Users|scratch)/")


def test_there_are_committed_reports() -> None:
    assert len(REPORTS) >= 10


@pytest.mark.parametrize("report", REPORTS, ids=lambda p: p.parent.name)
def test_report_names_no_machine_and_its_config_loads(
    report: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for f in [report, *report.parent.glob("*.csv")]:
        hits = [ln for ln in f.read_text().splitlines() if MACHINE.search(ln)]
        assert hits == [], f"{f.relative_to(ROOT)} names machine paths"
    config = Path("configs") / "study" / f"{report.parent.name}.yaml"
    commands = re.findall(r"^colliderfm study \S+ --config (\S+)", report.read_text(), re.M)
    assert commands and commands[-1] == str(config)  # the last invocation ran from it
    monkeypatch.chdir(ROOT)  # committed configs name their files from the repository root
    study = load_study_config(config)
    assert study.arms and all(not Path(a.init).is_absolute() for a in study.arms)


def test_results_page_and_readme_name_no_machine() -> None:
    for f in (
        ROOT / "docs" / "results.md",
        ROOT / "docs" / "results-discussion.md",
        ROOT / "README.md",
    ):
        assert [ln for ln in f.read_text().splitlines() if MACHINE.search(ln)] == []
