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
study_app = typer.Typer(
    no_args_is_help=True,
    help="Transfer studies: data efficiency, pretraining-set scaling, compute efficiency.",
)
app.add_typer(study_app, name="study")

Overrides = Annotated[
    list[str] | None,
    typer.Option(  # noqa: UP045
        "--set", help="Override a config value: section.key=value (repeatable)."
    ),
]

# options shared by the `generate` verbs
Seed = Annotated[int, typer.Option(help="Seed (same seed -> same bytes).")]
Workers = Annotated[int, typer.Option(help="Parallel generator processes.", min=1)]
Overwrite = Annotated[bool, typer.Option(help="Replace an existing output.")]
NumShards = Annotated[
    int | None, typer.Option(help="Batch mode: cut the data set into this many shards.")
]
ShardIndex = Annotated[
    int | None, typer.Option(help="Batch mode: the one shard this job writes (0-based).")
]


def _split(items: str) -> list[str]:
    """A comma-separated option as a list of its non-empty items."""
    return [p.strip() for p in items.split(",") if p.strip()]


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
    seed: Seed = 0,
    workers: Workers = 1,
    jets_per_shard: Annotated[int, typer.Option(help="Jets per Parquet shard.", min=1)] = 10_000,
    pt_min: Annotated[float, typer.Option(help="Jet pT window low edge, GeV.")] = 550.0,
    pt_max: Annotated[float, typer.Option(help="Jet pT window high edge, GeV.")] = 650.0,
    overwrite: Overwrite = False,
    num_shards: NumShards = None,
    shard_index: ShardIndex = None,
) -> None:
    """Generate labelled jets (top vs QCD, or JetClass-like classes) as Parquet shards."""
    from colliderfm.data.generate.jets import generate_jets

    procs = _split(process)
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


@generate_app.command(
    "events",
    epilog="Examples:\n\n  colliderfm generate events --process ttbar,h2hdm --n 10000 "
    "--out data/events --workers 2\n\n  colliderfm generate events --process datalike "
    "--n 50000 --out data/datalike --seed 1\n\n  colliderfm generate events --process "
    "ttbar,h2hdm --mass 750 --n 5000 --out data/events-m750",
)
def generate_events_cmd(
    process: Annotated[
        str,
        typer.Option(
            help="Comma-separated processes: ttbar (label 0), h2hdm (label 1), datalike "
            "(unlabelled SM mix, another tune)."
        ),
    ] = "ttbar,h2hdm",
    n: Annotated[int, typer.Option(help="Selected events per process.", min=1)] = 1000,
    out: Annotated[Path, typer.Option(help="Output shard directory.")] = Path("data/events"),
    seed: Seed = 0,
    workers: Workers = 1,
    events_per_shard: Annotated[
        int, typer.Option(help="Events per Parquet shard.", min=1)
    ] = 10_000,
    mass: Annotated[float, typer.Option(help="Heavy Higgs (H -> tt) mass for h2hdm, GeV.")] = 550.0,
    btag_eff: Annotated[float, typer.Option(help="b-tag efficiency of b-jets.")] = 0.70,
    min_leptons: Annotated[int, typer.Option(help="Selection: leptons required.", min=0)] = 1,
    min_bjets: Annotated[int, typer.Option(help="Selection: b-tagged jets required.", min=0)] = 2,
    min_light_jets: Annotated[
        int, typer.Option(help="Selection: untagged jets required.", min=0)
    ] = 2,
    overwrite: Overwrite = False,
    num_shards: NumShards = None,
    shard_index: ShardIndex = None,
) -> None:
    """Generate whole collision events (leptons, b-jets, jets, MET) as event shards."""
    from colliderfm.data.generate.events import EventSettings, generate_events
    from colliderfm.data.selection import Selection

    procs = _split(process)
    settings = EventSettings(
        btag_eff=btag_eff,
        selection=Selection(
            min_leptons=min_leptons, min_bjets=min_bjets, min_light_jets=min_light_jets
        ),
    )
    manifest = generate_events(
        procs,
        n,
        out,
        seed=seed,
        workers=workers,
        events_per_shard=events_per_shard,
        mass=mass,
        settings=settings,
        overwrite=overwrite,
        num_shards=num_shards,
        shard_index=shard_index,
    )
    eff = manifest["source"]["selection_efficiency"]
    typer.echo(
        f"wrote {manifest['n']} events to {out}: {manifest['counts']} "
        f"(selection efficiency: {', '.join(f'{k} {v:.1%}' for k, v in eff.items())})"
    )


@app.command(
    epilog="Examples:\n\n  colliderfm convert JetClass_TTBar_000.root --format jetclass "
    "--out data/jetclass\n\n  colliderfm convert train.h5 --format toptagging "
    "--out data/toptag-train\n\n  colliderfm convert nano_*.root --format nanoaod "
    "--out data/cms-events --btag-wp 0.2783 --min-bjets 2\n\n"
    "  colliderfm convert data/toptag data/wz-higgs --unlabel --out data/pretrain-mix"
)
def convert(
    inputs: Annotated[list[Path], typer.Argument(help="Input files (same format).")],
    format: Annotated[
        str | None,
        typer.Option(  # noqa: UP045
            help="jetclass | toptagging | nanoaod (detected when omitted)."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Output shard directory.")] = Path("data/converted"),
    chunk_size: Annotated[
        int, typer.Option(help="Jets (NanoAOD: events) read per chunk.", min=1)
    ] = 8192,
    overwrite: Overwrite = False,
    btag_wp: Annotated[
        float, typer.Option(help="NanoAOD: Jet_btagDeepFlavB b-tag threshold (DeepJet medium).")
    ] = 0.2783,
    lepton_pt_min: Annotated[float, typer.Option(help="NanoAOD: lepton pT cut, GeV.")] = 25.0,
    lepton_eta_max: Annotated[float, typer.Option(help="NanoAOD: lepton |eta| cut.")] = 2.5,
    iso_max: Annotated[float, typer.Option(help="NanoAOD: max relative lepton isolation.")] = 0.15,
    jet_pt_min: Annotated[float, typer.Option(help="NanoAOD: jet pT cut, GeV.")] = 25.0,
    jet_eta_max: Annotated[float, typer.Option(help="NanoAOD: jet |eta| cut.")] = 2.5,
    min_leptons: Annotated[int, typer.Option(help="NanoAOD: leptons required.", min=0)] = 1,
    min_bjets: Annotated[int, typer.Option(help="NanoAOD: b-tagged jets required.", min=0)] = 2,
    min_light_jets: Annotated[
        int, typer.Option(help="NanoAOD: untagged jets required.", min=0)
    ] = 2,
    max_leptons: Annotated[int, typer.Option(help="NanoAOD: leptons kept.", min=0)] = 2,
    max_jets: Annotated[int, typer.Option(help="NanoAOD: jets kept.", min=0)] = 10,
    label: Annotated[
        int, typer.Option(help="NanoAOD: label of every event (-1 data, 0 ttbar, 1 h2hdm).")
    ] = -1,
    unlabel: Annotated[
        bool,
        typer.Option(
            "--unlabel",
            help="Hide the labels (all -1), e.g. for an unlabelled pretraining mix of inputs "
            "with different classes (jets) or of data and simulation (events).",
        ),
    ] = False,
) -> None:
    """Convert JetClass ROOT, Top Tagging HDF5 or CMS NanoAOD files into canonical shards."""
    from colliderfm.data.convert import convert as do_convert
    from colliderfm.data.readers.nanoaod import NanoAODOptions
    from colliderfm.data.selection import Selection

    # the NanoAOD reader's options (convert refuses non-default ones for other formats)
    nano = NanoAODOptions(
        btag_wp=btag_wp,
        lepton_pt_min=lepton_pt_min,
        lepton_eta_max=lepton_eta_max,
        iso_max=iso_max,
        jet_pt_min=jet_pt_min,
        jet_eta_max=jet_eta_max,
        selection=Selection(min_leptons, min_bjets, min_light_jets, max_leptons, max_jets),
    )
    manifest = do_convert(
        inputs,
        format,
        out,
        chunk_size=chunk_size,
        overwrite=overwrite,
        nanoaod=nano,
        label=label,
        unlabel=unlabel,
    )
    skipped = manifest.get("skipped") or {}
    extra = f" (skipped: {skipped})" if any(skipped.values()) else ""
    what = "events" if manifest.get("kind") == "events" else "jets"
    typer.echo(f"wrote {manifest['n']} {what} to {out}: {manifest['counts']}{extra}")


@app.command(
    epilog="Example (after a SLURM array of `colliderfm generate jets ... --num-shards 100 "
    "--shard-index $SLURM_ARRAY_TASK_ID --out parts/$SLURM_ARRAY_TASK_ID`):\n\n"
    "  colliderfm merge parts/* --out data/big"
)
def merge(
    inputs: Annotated[list[Path], typer.Argument(help="Shard directories to combine.")],
    out: Annotated[Path, typer.Option(help="Output shard directory.")],
    overwrite: Overwrite = False,
) -> None:
    """Check and combine shard directories (reports missing or duplicated batch shards)."""
    from colliderfm.data.merge import merge_shards

    manifest = merge_shards(inputs, out, overwrite=overwrite)
    typer.echo(f"wrote {manifest['n']} jets to {out}: {manifest['counts']}")


@app.command(
    epilog="Examples:\n\n  colliderfm inspect data/toptag\n\n  colliderfm inspect "
    "JetClass_TTBar_000.root --max-jets 10000\n\n  colliderfm inspect runs/scratch"
)
def inspect(
    path: Annotated[
        Path,
        typer.Argument(help="Shard directory, .parquet, ROOT or HDF5 file, or a checkpoint."),
    ],
    max_jets: Annotated[
        int | None,
        typer.Option(  # noqa: UP045
            help="Only read the first N jets."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Summarise a data set (jets, classes, multiplicities, feature ranges) or a checkpoint."""
    from colliderfm.checkpoints import describe_checkpoint, format_checkpoint, is_checkpoint

    if is_checkpoint(path):
        info = describe_checkpoint(path)
        typer.echo(json.dumps(info, indent=2, default=str) if as_json else format_checkpoint(info))
        return
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
    "--set train.epochs=20 --out runs/big\n\n  colliderfm finetune --config "
    "configs/finetune/top_tagging.yaml --cwola --init none --out runs/cwola"
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
    except OSError as exc:  # disk full, permission denied, ...: the environment, not a bug
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"colliderfm: error: {where}{exc.strerror or exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # usage errors (click's, or the copy newer typer vendors)
        if isinstance(exc, _usage_error_types()):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(2)
        raise


def _usage_error_types() -> tuple[type[Exception], ...]:
    """Click's ``ClickException`` classes (newer typer releases vendor their own copy of click)."""
    types: list[type[Exception]] = []
    try:
        import click

        types.append(click.ClickException)
    except ImportError:
        pass
    try:
        from typer._click.exceptions import ClickException

        types.append(ClickException)
    except ImportError:
        pass
    return tuple(types)


if __name__ == "__main__":
    main()
