"""The ``colliderfm`` command line: one small function per verb, each one library call.

User errors (bad files, bad configs) print one line ``colliderfm: error: ...`` and exit 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from colliderfm.errors import ColliderFMError

app = typer.Typer(
    name="colliderfm",
    no_args_is_help=True,
    add_completion=False,
    help="Foundation models for collider physics: generate or convert data, pretrain, "
    "fine-tune, evaluate.",
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)
generate_app = typer.Typer(no_args_is_help=True, help="Generate data with Pythia 8 + FastJet.")
app.add_typer(generate_app, name="generate")
export_app = typer.Typer(
    no_args_is_help=True, help="Export a trained model for inference outside colliderfm."
)
app.add_typer(export_app, name="export")

Overrides = Annotated[
    list[str] | None,
    typer.Option(  # noqa: UP045
        "--set", help="Override a config value: section.key=value (repeatable)."
    ),
]


def _fail(msg: str) -> None:
    typer.echo(f"colliderfm: error: {msg}", err=True)
    raise typer.Exit(2)


@generate_app.command(
    "jets",
    epilog="Examples:\n\n  colliderfm generate jets --process top,qcd "
    "--n 10000 --out data/toptag --workers 2\n\n  colliderfm generate jets "
    "--process qcd,hbb,hcc,hgg,h4q,hlnuqq,zqq,wqq,top,tblnu --n 1000 --out "
    "data/jetclass-like",
)
def generate_jets_cmd(
    process: Annotated[
        str,
        typer.Option(
            help="Comma-separated processes: qcd, top, hbb, hcc, hgg, h4q, hlnuqq, zqq, wqq, tblnu."
        ),
    ] = "top,qcd",
    n: Annotated[int, typer.Option(help="Jets per process.", min=1)] = 1000,
    out: Annotated[Path, typer.Option(help="Output shard directory.")] = Path("data/jets"),
    seed: Annotated[int, typer.Option(help="Seed (same seed -> same bytes).")] = 0,
    workers: Annotated[int, typer.Option(help="Parallel generator processes.", min=1)] = 1,
    jets_per_shard: Annotated[int, typer.Option(help="Jets per Parquet shard.", min=1)] = 10_000,
    pt_min: Annotated[float, typer.Option(help="Jet pT window low edge, GeV.")] = 550.0,
    pt_max: Annotated[float, typer.Option(help="Jet pT window high edge, GeV.")] = 650.0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    num_shards: Annotated[
        int | None,
        typer.Option(help="Batch mode: cut the data set into this many shards."),
    ] = None,
    shard_index: Annotated[
        int | None,
        typer.Option(help="Batch mode: the one shard this job writes (0-based)."),
    ] = None,
) -> None:
    """Generate labelled jets (top vs QCD, or JetClass-like classes) as Parquet shards."""
    from colliderfm.data.generate.jets import generate_jets

    procs = [p.strip() for p in process.split(",") if p.strip()]
    manifest = generate_jets(
        procs,
        n,
        out,
        seed=seed,
        workers=workers,
        jets_per_shard=jets_per_shard,
        pt_min=pt_min,
        pt_max=pt_max,
        overwrite=overwrite,
        num_shards=num_shards,
        shard_index=shard_index,
    )
    typer.echo(f"wrote {manifest['n']} jets to {out}: {manifest['counts']}")


@app.command(
    epilog="Examples:\n\n  colliderfm convert JetClass_TTBar_000.root --format jetclass "
    "--out data/jetclass\n\n  colliderfm convert train.h5 --format toptagging "
    "--out data/toptag-train"
)
def convert(
    inputs: Annotated[list[Path], typer.Argument(help="Input files (same format).")],
    format: Annotated[
        str | None,
        typer.Option(  # noqa: UP045
            help="jetclass | toptagging (detected when omitted)."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Output shard directory.")] = Path("data/converted"),
    chunk_size: Annotated[int, typer.Option(help="Jets read per chunk.", min=1)] = 8192,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Convert JetClass ROOT or Top Tagging HDF5 files into canonical Parquet shards."""
    from colliderfm.data.convert import convert as do_convert

    manifest = do_convert(inputs, format, out, chunk_size=chunk_size, overwrite=overwrite)
    skipped = manifest.get("skipped") or {}
    extra = f" (skipped: {skipped})" if any(skipped.values()) else ""
    typer.echo(f"wrote {manifest['n']} jets to {out}: {manifest['counts']}{extra}")


@app.command(
    epilog="Example (after a SLURM array of `colliderfm generate jets ... --num-shards 100 "
    "--shard-index $SLURM_ARRAY_TASK_ID --out parts/$SLURM_ARRAY_TASK_ID`):\n\n"
    "  colliderfm merge parts/* --out data/big"
)
def merge(
    inputs: Annotated[list[Path], typer.Argument(help="Shard directories to combine.")],
    out: Annotated[Path, typer.Option(help="Output shard directory.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Check and combine shard directories (reports missing or duplicated batch shards)."""
    from colliderfm.data.merge import merge_shards

    manifest = merge_shards(inputs, out, overwrite=overwrite)
    typer.echo(f"wrote {manifest['n']} jets to {out}: {manifest['counts']}")


@app.command(
    epilog="Examples:\n\n  colliderfm inspect data/toptag\n\n  colliderfm inspect "
    "JetClass_TTBar_000.root --max-jets 10000"
)
def inspect(
    path: Annotated[Path, typer.Argument(help="Shard directory, .parquet, ROOT or HDF5 file.")],
    max_jets: Annotated[
        int | None,
        typer.Option(  # noqa: UP045
            help="Only read the first N jets."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Summarise a data set: jets, classes, multiplicities, feature ranges."""
    from colliderfm.data.inspect import format_report
    from colliderfm.data.inspect import inspect as do_inspect

    info = do_inspect(path, max_jets=max_jets)
    typer.echo(json.dumps(info, indent=2, default=str) if as_json else format_report(info))


@app.command(epilog="Example:\n\n  colliderfm models")
def models() -> None:
    """List registered backbones and their size presets with parameter counts."""
    from colliderfm.models.registry import list_models

    typer.echo(f"{'model':<12}{'preset':<8}{'parameters':>12}")
    for name, preset, n in list_models():
        typer.echo(f"{name:<12}{preset:<8}{n:>12,}")


@app.command(
    epilog="Examples:\n\n  colliderfm finetune --config configs/finetune/top_tagging.yaml "
    "--init none --mode full --out runs/scratch\n\n  colliderfm finetune --config "
    "configs/finetune/top_tagging.yaml --init runs/pretrain --mode linear "
    "--n-train 1000 --out runs/probe\n\n  colliderfm finetune --config "
    "configs/finetune/top_tagging.yaml --set data.train=data/big "
    "--set train.epochs=20 --out runs/big"
)
def finetune(
    config: Annotated[Path, typer.Option(help="YAML recipe.")],
    out: Annotated[Path, typer.Option(help="Run directory.")],
    init: Annotated[
        str | None,
        typer.Option(  # noqa: UP045
            help="Pretrained checkpoint, or 'none' for training from scratch."
        ),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(  # noqa: UP045
            help="full | frozen | linear | lp-ft."
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
) -> None:
    """Train a classifier: from scratch (--init none) or from a pretrained backbone."""
    from colliderfm.config import load_config
    from colliderfm.finetune.run import run_finetune
    from colliderfm.train.distributed import distributed

    sets = list(overrides or [])
    if init is not None:
        sets.append(f"finetune.init={init}")
    if mode is not None:
        sets.append(f"finetune.mode={mode}")
    if n_train is not None:
        sets.append(f"finetune.n_train={n_train}")
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
    """Self-supervised pretraining of a backbone on unlabelled jets (labels are ignored)."""
    from colliderfm.config import load_config
    from colliderfm.tokenizers.train import is_tokenizer, train_tokenizer
    from colliderfm.train.distributed import distributed

    cfg = load_config(config, overrides)
    with distributed() as (rank, _):  # under torchrun: one process group for the run
        if is_tokenizer(cfg.objective.name):
            summary = train_tokenizer(cfg, out, resume=resume)
        else:
            from colliderfm.pretrain.run import run_pretrain

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
) -> None:
    """AUC, accuracy and background rejection of a classifier on any readable input."""
    from colliderfm.evaluate.run import evaluate_checkpoint

    metrics = evaluate_checkpoint(checkpoint, data, out, batch_size=batch_size, max_jets=max_jets)
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


def main() -> None:
    """Console entry point: run the app, turning user errors into one line and exit code 2."""
    from colliderfm.train.logging import setup_console_logging

    setup_console_logging()
    try:
        app(standalone_mode=False)
    except ColliderFMError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        typer.echo(f"colliderfm: error: {msg}", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("colliderfm: aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("colliderfm: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
