"""The Typer application, its sub-apps and the options several verbs share."""

from __future__ import annotations

from typing import Annotated

import typer

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
