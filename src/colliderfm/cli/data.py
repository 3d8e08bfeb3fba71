"""Data verbs: ``generate jets|events``, ``convert``, ``merge``, ``inspect``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from colliderfm.cli.app import (
    NumShards,
    Overwrite,
    Seed,
    ShardIndex,
    Workers,
    _split,
    app,
    generate_app,
)

Fast = Annotated[
    bool,
    typer.Option(
        help="Opt-in fast mode for large unlabelled sets: multi-parton interactions off "
        "(other physics: see README for what it changes)."
    ),
]


def _rates(source: dict, what: str) -> str:
    """One line with each process's selection efficiency and selected rows per CPU-second."""
    eff, rate = source["selection_efficiency"], source.get("selected_per_cpu_s", {})
    parts = [f"{k} {eff[k]:.3g} ({rate.get(k, float('nan')):.3g}/CPU-s)" for k in eff]
    return f"{what} (selected per CPU-second): {', '.join(parts)}"


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
    jets_per_event: Annotated[
        int,
        typer.Option(
            help="Most passing jets kept per event, highest pT first (0: all; more jets per "
            "Pythia event, but not independent and another pT spectrum).",
            min=0,
        ),
    ] = 1,
    fast: Fast = False,
    overwrite: Overwrite = False,
    num_shards: NumShards = None,
    shard_index: ShardIndex = None,
) -> None:
    """Generate labelled jets (top vs QCD, or JetClass-like classes) as Parquet shards."""
    from colliderfm.data.generate.jets import JetSettings, generate_jets

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
        settings=JetSettings(mpi=not fast, jets_per_event=jets_per_event),
    )
    typer.echo(f"wrote {manifest['n']} jets to {out}: {manifest['counts']}")
    typer.echo(_rates(manifest["source"], "jets per event"))


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
    fast: Fast = False,
    early_veto: Annotated[
        bool,
        typer.Option(
            help="Stop Pythia early on events that cannot pass the selection (same physics; "
            "off: for comparisons)."
        ),
    ] = True,
    label_subprocesses: Annotated[
        bool,
        typer.Option(
            help="With --process datalike: label each event by its sub-process (ttbar, "
            "singletop, wjets, ttV = labels 0-3), for supervised pretraining on simulation; "
            "the same events as without it."
        ),
    ] = False,
    overwrite: Overwrite = False,
    num_shards: NumShards = None,
    shard_index: ShardIndex = None,
) -> None:
    """Generate whole collision events (leptons, b-jets, jets, MET) as event shards."""
    from colliderfm.data.generate.events import EventSettings, generate_events
    from colliderfm.data.selection import Selection

    procs = _split(process)
    settings = EventSettings(
        mpi=not fast,
        early_veto=early_veto,
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
        label_subprocesses=label_subprocesses,
    )
    typer.echo(f"wrote {manifest['n']} events to {out}: {manifest['counts']}")
    typer.echo(_rates(manifest["source"], "selection efficiency"))


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
    "JetClass_TTBar_000.root --max-jets 10000\n\n  colliderfm inspect data/toptag --verify"
    "\n\n  colliderfm inspect runs/scratch"
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
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Hash every shard of a shard directory and check it against the manifest's "
            "sha256 (a mismatch is an error naming the shard).",
        ),
    ] = False,
) -> None:
    """Summarise a data set (jets, classes, multiplicities, feature ranges) or a checkpoint."""
    from colliderfm.checkpoints import describe_checkpoint, format_checkpoint, is_checkpoint

    if is_checkpoint(path):
        if verify:
            from colliderfm.errors import ColliderFMError

            raise ColliderFMError(
                f"{path}: --verify checks data (shard directories), not checkpoints"
            )
        info = describe_checkpoint(path)
        typer.echo(json.dumps(info, indent=2, default=str) if as_json else format_checkpoint(info))
        return
    from colliderfm.data.inspect import format_report
    from colliderfm.data.inspect import inspect as do_inspect

    info = do_inspect(path, max_jets=max_jets, verify=verify)
    typer.echo(json.dumps(info, indent=2, default=str) if as_json else format_report(info))
