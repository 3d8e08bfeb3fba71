"""Run logs: a CSV of every logged value and TensorBoard event files (rank 0 only)."""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("colliderfm")


def setup_console_logging(level: int = logging.INFO) -> None:
    """Log ``colliderfm`` messages to stderr as ``[colliderfm] message``.

    Args:
        level: logging level.
    """
    logger = logging.getLogger("colliderfm")
    if not logger.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("[colliderfm] %(message)s"))
        logger.addHandler(h)
    logger.setLevel(level)
    logger.propagate = False


class RunLogger:
    """Append metrics to ``metrics.csv`` (long format: step, epoch, name, value) and TensorBoard.

    Args:
        out: run directory.
        enabled: False on non-zero DDP ranks (then every call is a no-op).
        tensorboard: also write TensorBoard events under ``out/tb``.
    """

    def __init__(self, out: str | Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(out) / "metrics.csv"
        self._tb: Any = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        self._file = open(self.path, "a", newline="")  # noqa: SIM115
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(["step", "epoch", "name", "value"])
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(out) / "tb"))
            except ImportError:  # pragma: no cover - tensorboard is a dependency
                self._tb = None

    def log(self, step: int, epoch: int, values: dict[str, float]) -> None:
        """Record values at a step.

        Args:
            step: optimizer step.
            epoch: epoch index.
            values: name -> scalar.
        """
        if not self.enabled:
            return
        for k, v in values.items():
            self._csv.writerow([step, epoch, k, f"{float(v):.6g}"])
            if self._tb is not None:
                self._tb.add_scalar(k, float(v), step)
        self._file.flush()

    def close(self) -> None:
        """Flush and close the files."""
        if not self.enabled:
            return
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Read a ``metrics.csv`` back as ``name -> [(step, value), ...]``.

    Args:
        path: run directory or the CSV file.

    Returns:
        Series per metric name.
    """
    p = Path(path)
    p = p / "metrics.csv" if p.is_dir() else p
    out: dict[str, list[tuple[int, float]]] = {}
    with open(p) as f:
        for row in csv.DictReader(f):
            out.setdefault(row["name"], []).append((int(row["step"]), float(row["value"])))
    return out
