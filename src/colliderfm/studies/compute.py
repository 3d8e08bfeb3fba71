"""Compute-efficiency study: validation AUC vs training step and wall time, pretrained vs scratch.

The sweep is the data-efficiency one (usually one ``n_train`` and a longer budget with frequent
validation); the analysis reads each point's validation curve (from the run's ``metrics.csv``)
and reports how many steps (and seconds) each arm needs to reach the from-scratch control's best
validation AUC.

Wall time at a step is estimated as ``step * train_wall_s / steps`` (the run's mean time per step,
validation included), because the training loop logs steps, not timestamps. The analysis
(:func:`~colliderfm.studies.results.steps_to_target`) lives with the other statistics in
:mod:`colliderfm.studies.results`; it is re-exported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from colliderfm.studies.config import StudyConfig
from colliderfm.studies.results import first_reach, reference_arm, steps_to_target
from colliderfm.studies.sweep import execute

__all__ = ["first_reach", "reference_arm", "run_compute", "steps_to_target"]


def run_compute(study: StudyConfig, out: str | Path, command: str | None = None) -> dict[str, Any]:
    """Run (or resume) a compute-efficiency study.

    Args:
        study: validated study config.
        out: study directory.
        command: the command line, recorded in the report.

    Returns:
        The results written to ``out/results.json``.
    """
    return execute("compute", study, list(study.arms), out, command)
