"""Transfer studies: data efficiency, pretraining-set scaling, compute efficiency, reports.

``run_study(kind, config, out)`` is what ``colliderfm study KIND`` calls; ``write_report(DIR)``
regenerates plots and ``report.md`` from ``DIR/results.json``.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

from colliderfm.errors import ConfigError
from colliderfm.studies.config import KINDS, load_study_config

__all__ = ["KINDS", "run_study", "write_report"]


def run_study(
    kind: str,
    config: str | Path,
    out: str | Path,
    overrides: list[str] | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Load a study config and run (or resume) a study of the given kind.

    Args:
        kind: ``data-efficiency``, ``scaling`` or ``compute``.
        config: study YAML.
        out: study directory.
        overrides: ``key=value`` strings (study keys, or fine-tuning config keys).
        command: command line for the report (default: this process's argv).

    Returns:
        The results dict (also in ``out/results.json``).
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown study '{kind}' (choose from {', '.join(KINDS)})")
    study = load_study_config(config, overrides)
    if command is None:
        command = " ".join(shlex.quote(a) for a in [os.path.basename(sys.argv[0]), *sys.argv[1:]])
    if kind == "data-efficiency":
        from colliderfm.studies.data_efficiency import run_data_efficiency

        return run_data_efficiency(study, out, command)
    if kind == "scaling":
        from colliderfm.studies.scaling import run_scaling

        return run_scaling(study, out, command)
    from colliderfm.studies.compute import run_compute

    return run_compute(study, out, command)


def write_report(out: str | Path) -> Path:
    """Regenerate the plots and ``report.md`` of a study directory from its ``results.json``.

    Args:
        out: study directory.

    Returns:
        Path of ``report.md``.
    """
    from colliderfm.studies.report import write_report as _write

    return _write(out)
