"""CPU-vs-CUDA parity: the same fp32 fine-tuning steps from the same seed on both devices.

Fine-tunes the ``part`` classifier from scratch on synthetic jets (``gpu_data.write_jets``) through
the library's own entry (:func:`colliderfm.recipes.run_finetune`, the ``finetune`` command's
code) once per device, logging the training loss at every step (``train.log_every=1``), and
compares the per-step losses. Initial weights are drawn on the CPU before the model moves, the
loader runs on the CPU with the same seed and there is no dropout, so the runs differ only in
arithmetic.

On CUDA the training loop runs fp32 matmuls in TF32 (10-bit mantissa), which alone moves the
losses by about 1e-3, so CUDA is run twice: ``cuda-strict`` (the loop's TF32 switch is
intercepted in this process: true fp32 matmuls) is the gated comparison (exit 1 when its largest
per-step difference from the CPU exceeds ``--tol``); ``cuda`` (as shipped, TF32) is reported
beside it. Without CUDA (``--allow-cpu-only``, the smoke mode) the CPU run is compared with a
second CPU run, which checks the script, not the GPU.

Run: ``python benchmarks/gpu_parity.py [--steps 20] [--tol 1e-3] [--markdown PATH]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_data, when run through pytest

from gpu_data import write_jets  # noqa: E402

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "finetune" / "top_tagging.yaml"


class _KeepFP32:
    """Stands in for ``torch.backends.cuda.matmul``: ignores requests to turn TF32 on."""

    def __init__(self, inner: Any) -> None:
        object.__setattr__(self, "_inner", inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "_inner"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "allow_tf32" and value:
            return  # the training loop's TF32 switch: keep true fp32
        setattr(object.__getattribute__(self, "_inner"), name, value)


@contextlib.contextmanager
def strict_fp32() -> Iterator[None]:
    """True fp32 CUDA matmuls inside the block, even where the training loop asks for TF32.

    Yields:
        Nothing; ``torch.backends.cuda.matmul`` and its TF32 setting are restored after.
    """
    inner = torch.backends.cuda.matmul
    saved = inner.allow_tf32
    inner.allow_tf32 = False
    torch.backends.cuda.matmul = _KeepFP32(inner)  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.backends.cuda.matmul = inner  # type: ignore[assignment]
        inner.allow_tf32 = saved


def write_data(root: Path, steps: int, batch: int, seed: int = 0) -> Path:
    """Training (one pass = ``steps`` batches and a little more), validation and test jets.

    Args:
        root: parent directory.
        steps: optimizer steps.
        batch: jets per step.
        seed: RNG seed.

    Returns:
        ``root`` (with ``train``, ``val``, ``test``).
    """
    write_jets(root / "train", steps * batch + batch, seed=seed)
    write_jets(root / "val", 256, seed=seed + 1)
    write_jets(root / "test", 256, seed=seed + 2)
    return root


def finetune_losses(
    data: Path,
    out: Path,
    device: str,
    steps: int,
    batch: int,
    preset: str = "small",
    strict: bool = False,
    seed: int = 0,
) -> list[float]:
    """Per-step training losses of one fp32 fine-tuning run from scratch.

    Args:
        data: from :func:`write_data`.
        out: run directory (must not exist yet).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        steps: optimizer steps.
        batch: jets per step.
        preset: backbone preset.
        strict: true fp32 matmuls on CUDA (:func:`strict_fp32`); else the loop's TF32.
        seed: ``train.seed``.

    Returns:
        The training loss after each step (as logged in ``metrics.csv``).
    """
    from colliderfm.config import load_config
    from colliderfm.recipes import run_finetune
    from colliderfm.train.logging import read_metrics

    cfg = load_config(
        CONFIG,
        [
            f"data.train={data / 'train'}",
            f"data.val={data / 'val'}",
            f"data.test={data / 'test'}",
            "finetune.init=none",
            "finetune.mode=full",
            f"model.preset={preset}",
            f"train.device={device}",
            "train.precision=fp32",
            f"train.max_steps={steps}",
            f"train.steps_per_epoch={steps}",
            f"train.batch_size={batch}",
            "train.log_every=1",
            "train.workers=0",
            f"train.seed={seed}",
        ],
    )
    with strict_fp32() if strict else contextlib.nullcontext():
        run_finetune(cfg, out, progress=False)
    series = sorted(read_metrics(out)["train_loss"])
    return [v for _, v in series]


def compare(ref: list[float], other: list[float]) -> float:
    """The largest per-step absolute difference (inf when the lengths differ).

    Args:
        ref: reference losses.
        other: losses to compare.

    Returns:
        ``max |ref - other|``.
    """
    if len(ref) != len(other) or not ref:
        return float("inf")
    return max(abs(a - b) for a, b in zip(ref, other, strict=True))


def markdown(losses: dict[str, list[float]], diffs: dict[str, float], tol: float, note: str) -> str:
    """The per-step losses and differences as markdown.

    Args:
        losses: run name -> per-step losses (the first is the reference).
        diffs: run name -> max abs difference from the reference.
        tol: the gate.
        note: a line on what was compared.

    Returns:
        Markdown text.
    """
    names = list(losses)
    lines = [note, "", "| step | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for i in range(max(len(v) for v in losses.values())):
        cells = [f"{v[i]:.6f}" if i < len(v) else "-" for v in losses.values()]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    lines += ["", "| run | max abs diff vs " + names[0] + " | gate |", "|---|---|---|"]
    for name, d in diffs.items():
        gate = f"<= {tol:g}: {'pass' if d <= tol else 'FAIL'}" if name.endswith("*") else "info"
        lines.append(f"| {name} | {d:.3g} | {gate} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command-line entry point (exit 1 when the gated difference exceeds ``--tol``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--device", default="cuda", help="the device compared with the CPU")
    ap.add_argument(
        "--allow-cpu-only",
        action="store_true",
        help="without CUDA compare two CPU runs instead of failing",
    )
    ap.add_argument("--work", type=Path, default=None, help="keep the runs here (default: temp)")
    ap.add_argument("--markdown", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    cuda = torch.cuda.is_available() and a.device.startswith("cuda")
    if not cuda and not a.allow_cpu_only:
        print("gpu_parity: no CUDA device (pass --allow-cpu-only to compare cpu with cpu)")
        sys.exit(2)
    with contextlib.ExitStack() as stack:
        work = a.work or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        data = write_data(work / "data", a.steps, a.batch)
        losses = {"cpu": finetune_losses(data, work / "cpu", "cpu", a.steps, a.batch, a.preset)}
        if cuda:
            note = (
                f"{a.steps} fp32 fine-tuning steps ({a.preset}, batch {a.batch}, seed 0): cpu vs "
                f"{torch.cuda.get_device_name(a.device)}; gated (*): true fp32 on CUDA; "
                "cuda: as shipped (TF32 matmuls)"
            )
            losses["cuda-strict*"] = finetune_losses(
                data, work / "cuda-strict", a.device, a.steps, a.batch, a.preset, strict=True
            )
            losses["cuda"] = finetune_losses(
                data, work / "cuda", a.device, a.steps, a.batch, a.preset
            )
        else:
            note = (
                f"NO CUDA: {a.steps} fp32 fine-tuning steps ({a.preset}, batch {a.batch}) on "
                "cpu compared with a second cpu run (checks the script, not a GPU)"
            )
            losses["cpu-again*"] = finetune_losses(
                data, work / "cpu-again", "cpu", a.steps, a.batch, a.preset
            )
    diffs = {k: compare(losses["cpu"], v) for k, v in losses.items() if k != "cpu"}
    text = markdown(losses, diffs, a.tol, note)
    print(text, end="")
    if a.markdown:
        a.markdown.write_text(text)
    if a.json:
        a.json.write_text(json.dumps({"losses": losses, "max_abs_diff": diffs, "tol": a.tol}))
    gated = [d for k, d in diffs.items() if k.endswith("*")]
    if any(d > a.tol for d in gated):
        print(f"gpu_parity: FAIL: max abs loss difference {max(gated):.3g} > {a.tol:g}")
        sys.exit(1)
    print(f"gpu_parity: ok (max abs loss difference {max(gated):.3g} <= {a.tol:g})")


if __name__ == "__main__":
    main()
