"""Data-efficiency study: test AUC and rejection vs the number of labelled jets (or events).

Every arm (a pretrained backbone with a fine-tuning mode, or the from-scratch control) is
fine-tuned on class-balanced, seeded subsets of ``n_train`` labelled examples with the same
budget, for several seeds, and evaluated on the same test set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from colliderfm.studies.config import StudyConfig
from colliderfm.studies.sweep import execute


def run_data_efficiency(
    study: StudyConfig, out: str | Path, command: str | None = None
) -> dict[str, Any]:
    """Run (or resume) a data-efficiency study.

    Args:
        study: validated study config.
        out: study directory (points, results, plots, report).
        command: the command line, recorded in the report.

    Returns:
        The results written to ``out/results.json``.
    """
    return execute("data-efficiency", study, list(study.arms), out, command)
