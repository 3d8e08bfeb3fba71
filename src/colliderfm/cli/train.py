"""Model verbs: ``models``, ``pretrain``, ``finetune``, ``evaluate``, ``export onnx``, ``study``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from colliderfm.cli.app import Overrides, app, export_app, study_app


@app.command(epilog="Examples:\n\n  colliderfm models\n\n  colliderfm models --pretrained")
def models(
    pretrained: Annotated[
        bool,
        typer.Option(
            help="List the pretrained checkpoints shipped with the package (use one with "
            "--init zoo:NAME) instead of the backbones."
        ),
    ] = False,
) -> None:
    """List registered backbones and their size presets with parameter counts."""
    if pretrained:
        _pretrained_models()
        return
    from colliderfm.models.registry import list_models

    typer.echo(f"{'model':<12}{'preset':<8}{'parameters':>12}")
    for name, preset, n in list_models():
        typer.echo(f"{name:<12}{preset:<8}{n:>12,}")


def _pretrained_models() -> None:
    """Print the zoo as a table (one line when it is empty)."""
    from colliderfm import zoo

    entries = zoo.list_entries()
    if not entries:
        typer.echo("no pretrained checkpoints are shipped yet (the model zoo is empty)")
        return
    head = ["name", "recipe", "model", "parameters", "steps", "probe AUC", "pretraining data"]
    rows = []
    for e in entries:
        m = e.meta
        auc = m["probe_auc"]
        gain = (m.get("probe") or {}).get("gain_over_random")  # written by zoo_probe.py's card
        shown = "n/a" if auc is None else f"{float(auc):.4f}"
        if auc is not None and isinstance(gain, (int, float)):
            shown += f" ({float(gain):+.3f} vs random)"
        rows.append(
            [
                f"zoo:{e.name}",
                str(m["recipe"]),
                f"{m['backbone']}/{m['preset']}",
                f"{m['parameters']:,}",
                f"{m['steps']:,}",
                shown,
                str(m["pretraining_data"]),
            ]
        )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
    right = {3, 4, 5}  # numbers

    def line(cells: list[str]) -> str:
        out = [cells[i].rjust(w) if i in right else cells[i].ljust(w) for i, w in enumerate(widths)]
        return "  ".join([*out, cells[-1]])

    for r in [head, *rows]:
        typer.echo(line(r))


@app.command(
    epilog="Examples:\n\n  colliderfm finetune --config configs/finetune/top_tagging.yaml "
    "--init none --mode full --out runs/scratch\n\n  colliderfm finetune --config "
    "configs/finetune/top_tagging.yaml --init runs/pretrain --mode linear "
    "--n-train 1000 --out runs/probe\n\n  colliderfm finetune --config "
    "configs/finetune/top_tagging.yaml --set data.train=data/big "
    "--set train.epochs=20 --out runs/big\n\n  colliderfm finetune --config "
    "configs/finetune/top_tagging.yaml --cwola --init none --out runs/cwola"
)
def finetune(
    config: Annotated[Path, typer.Option(help="YAML recipe.")],
    out: Annotated[Path, typer.Option(help="Run directory.")],
    init: Annotated[
        str | None,
        typer.Option(  # noqa: UP045
            help="Pretrained checkpoint directory, zoo:NAME (a shipped one: colliderfm models "
            "--pretrained), or 'none' for training from scratch."
        ),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(  # noqa: UP045
            help="full | frozen | linear | lp-ft (linear: a converged L-BFGS linear probe on "
            "the frozen backbone, no training steps; its L2 strength from finetune.probe_l2 "
            "chosen on validation AUC)."
        ),
    ] = None,
    n_train: Annotated[
        int | None,
        typer.Option(  # noqa: UP045
            help="Class-balanced, seeded subset of N training jets."
        ),
    ] = None,
    overrides: Overrides = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out.")] = False,
    cwola: Annotated[
        bool,
        typer.Option(
            help="Weak supervision (CWoLa): train on two mixed samples (finetune.cwola_fractions "
            "of the labelled data, or finetune.cwola_samples=[A,B]); validate on true labels."
        ),
    ] = False,
) -> None:
    """Train a classifier: from scratch (--init none) or from a pretrained backbone."""
    from colliderfm.config import load_config
    from colliderfm.recipes import run_finetune
    from colliderfm.train.distributed import distributed

    sets = list(overrides or [])
    if init is not None:
        sets.append(f"finetune.init={init}")
    if mode is not None:
        sets.append(f"finetune.mode={mode}")
    if n_train is not None:
        sets.append(f"finetune.n_train={n_train}")
    if cwola:
        sets.append("finetune.cwola=true")
    cfg = load_config(config, sets)
    with distributed() as (rank, _):  # under torchrun: one process group for the run
        summary = run_finetune(cfg, out, resume=resume)
    if rank == 0:
        typer.echo(json.dumps(summary, indent=2, default=str))


@app.command(
    epilog="Examples:\n\n  colliderfm pretrain --config configs/pretrain/contrastive.yaml "
    "--out runs/clr\n\n  colliderfm pretrain --config configs/pretrain/mpm.yaml "
    "--out runs/mpm --set train.epochs=5\n\n  colliderfm pretrain --config "
    "configs/pretrain/vqvae.yaml --out runs/tokenizer"
)
def pretrain(
    config: Annotated[Path, typer.Option(help="YAML recipe (configs/pretrain/*.yaml).")],
    out: Annotated[Path, typer.Option(help="Run directory.")],
    overrides: Overrides = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out.")] = False,
) -> None:
    """Self-supervised pretraining of a backbone on unlabelled jets or events (labels ignored)."""
    from colliderfm.config import load_config
    from colliderfm.recipes import run_pretrain
    from colliderfm.train.distributed import distributed

    cfg = load_config(config, overrides)
    with distributed() as (rank, _):  # under torchrun: one process group for the run
        summary = run_pretrain(cfg, out, resume=resume)
    if rank == 0:
        typer.echo(json.dumps(summary, indent=2, default=str))


@app.command(
    epilog="Examples:\n\n  colliderfm evaluate --checkpoint runs/scratch --data "
    "data/toptag-test --out runs/scratch/metrics.json\n\n  colliderfm evaluate "
    "--checkpoint runs/scratch --data test.h5"
)
def evaluate(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint directory.")],
    data: Annotated[
        Path, typer.Option(help="Shards, .parquet, JetClass ROOT or Top Tagging HDF5.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(  # noqa: UP045
            help="Metrics JSON (plots written next to it)."
        ),
    ] = None,
    max_jets: Annotated[
        int | None,
        typer.Option(  # noqa: UP045
            help="Evaluate only the first N jets."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Jets per forward pass.", min=1)] = 512,
    device: Annotated[
        str,
        typer.Option(
            help="Where the model runs: auto (CUDA when available), cpu, cuda, cuda:N, mps."
        ),
    ] = "auto",
) -> None:
    """AUC, accuracy and background rejection of a classifier on any readable input."""
    from colliderfm.evaluate.run import evaluate_checkpoint

    metrics = evaluate_checkpoint(
        checkpoint, data, out, batch_size=batch_size, max_jets=max_jets, device=device
    )
    typer.echo(json.dumps(metrics, indent=2, default=str))


@export_app.command(
    "onnx",
    epilog="Examples:\n\n  colliderfm export onnx --checkpoint "
    "runs/scratch --out top_tagger.onnx\n\n  colliderfm export onnx "
    "--checkpoint runs/clr --out encoder.onnx --float-mask",
)
def export_onnx_cmd(
    checkpoint: Annotated[Path, typer.Option(help="Classifier or pretraining checkpoint.")],
    out: Annotated[Path, typer.Option(help="ONNX file (the sidecar goes to OUT.json).")],
    opset: Annotated[int, typer.Option(help="ONNX opset (14-20).")] = 17,
    float_mask: Annotated[
        bool, typer.Option(help="Take the mask as float32 (1 = real particle) instead of bool.")
    ] = False,
    verify: Annotated[
        bool, typer.Option(help="Check the file with onnxruntime against torch.")
    ] = True,
) -> None:
    """Export to ONNX (dynamic batch and particle axes) plus a JSON sidecar describing inputs."""
    from colliderfm.export.onnx import export_onnx

    info = export_onnx(
        checkpoint, out, opset=opset, mask_dtype="float" if float_mask else "bool", verify=verify
    )
    typer.echo(json.dumps(info, indent=2, default=str))


def _study(kind: str, config: Path, out: Path, overrides: list[str] | None) -> None:
    from colliderfm.studies import run_study

    res = run_study(kind, config, out, overrides)
    for r in res["summary"]:
        auc = "n/a" if r["auc_mean"] is None else f"{r['auc_mean']:.4f} +- {r['auc_std']:.4f}"
        typer.echo(f"{r['arm']:<24} N={r['n_train']:<8} test AUC {auc} ({r['seeds']} seeds)")
    typer.echo(f"report: {out / 'report.md'}")


_STUDY_EPILOG = (
    "Any --set key of a fine-tuning section (data, model, finetune, train) goes to every "
    "point's fine-tuning config; other keys change the study (n_train, seeds, budget.*, ...)."
)


@study_app.command(
    "data-efficiency",
    epilog="Examples:\n\n  colliderfm study data-efficiency --config "
    "configs/study/data_efficiency.yaml --out studies/de\n\n  colliderfm study "
    "data-efficiency --config configs/study/data_efficiency.yaml --out studies/de-quick "
    "--set 'n_train=[100,1000]' --set 'seeds=[0,1,2]' --set budget.max_steps=100\n\n"
    + _STUDY_EPILOG,
)
def study_data_efficiency(
    config: Annotated[Path, typer.Option(help="Study YAML (configs/study/*.yaml).")],
    out: Annotated[Path, typer.Option(help="Study directory (rerun to resume).")],
    overrides: Overrides = None,
) -> None:
    """AUC and rejection vs the number of labelled examples, per arm (pretrained or scratch)."""
    _study("data-efficiency", config, out, overrides)


@study_app.command(
    "scaling",
    epilog="Examples:\n\n  colliderfm study scaling --config configs/study/scaling.yaml "
    "--out studies/scaling\n\n  colliderfm study scaling --config "
    "configs/study/scaling.yaml --out studies/scaling --set 'pretrain.sizes=[1000,10000]'\n\n"
    + _STUDY_EPILOG,
)
def study_scaling(
    config: Annotated[Path, typer.Option(help="Study YAML (configs/study/scaling.yaml).")],
    out: Annotated[Path, typer.Option(help="Study directory (rerun to resume).")],
    overrides: Overrides = None,
) -> None:
    """Downstream test AUC at fixed N_train vs the size of the pretraining set."""
    _study("scaling", config, out, overrides)


@study_app.command(
    "compute",
    epilog="Examples:\n\n  colliderfm study compute --config configs/study/compute.yaml "
    "--out studies/compute\n\n" + _STUDY_EPILOG,
)
def study_compute(
    config: Annotated[Path, typer.Option(help="Study YAML (configs/study/compute.yaml).")],
    out: Annotated[Path, typer.Option(help="Study directory (rerun to resume).")],
    overrides: Overrides = None,
) -> None:
    """Validation AUC vs fine-tuning step and time; steps to reach scratch's best AUC."""
    _study("compute", config, out, overrides)


@study_app.command(
    "report",
    epilog="Example:\n\n  colliderfm study report studies/de",
)
def study_report(
    directory: Annotated[Path, typer.Argument(help="Study directory holding results.json.")],
) -> None:
    """Regenerate a study's plots and report.md from its results.json (no training)."""
    from colliderfm.studies import write_report

    typer.echo(f"report: {write_report(directory)}")
