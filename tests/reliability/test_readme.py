"""Every ``colliderfm`` command in README.md runs as written (the newcomer path of issue 18).

Cases:

- every command of README's ``bash`` blocks parses (click's ``make_context``, no ``--help``),
  and every ``configs/...`` file it names exists
- every shipped config names data that ``make quickstart`` makes or that its header says how
  to make (a ``colliderfm generate`` line for each path, in the header or README)
- the linear probe asked for more jets than the validation set holds uses them all, with a
  warning (was: "asked for 4000 labelled rows but only 1000 exist")
- the README's first SSL path, ``pretrain contrastive.yaml --out runs/clr`` then
  ``finetune --init runs/clr --mode linear``, plus scratch ``finetune`` and ``evaluate``, run
  in a temp directory laid out as README's paths, on tiny synthetic quickstart-like data with
  size overrides (``--set train.max_steps=2`` ...)
- opt-in (``-m slow``): every README command that needs no outside input runs
"""

from __future__ import annotations

import logging
import re
import shlex
from pathlib import Path

import pytest
import typer.main
from cli_helpers import MAX_PARTICLES, run_cli
from synth import write_synthetic_shards
from synth_events import write_event_shards

from colliderfm.cli import app

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: README's Results section continues here (every measurement, its command and its discussion)
DISCUSSION = ROOT / "docs" / "results-discussion.md"

#: commands that need inputs no test has (downloads, batch-system variables, user data)
NEEDS_OUTSIDE_INPUT = (
    "$SLURM",
    "parts/*",
    "nano_",
    "ttsemi_",
    "data/toptag-100k",
    "data/wz-higgs",
    "data/region-A",
    "data/cms",
    "data/baseline",  # 100k generated jets (docs/results-discussion.md)
    "torchrun",
    "node01",
    "zoo:",  # no checkpoint is shipped yet (scripts/zoo_pretrain.py is pretraining them)
)

#: size overrides that make a training command take seconds
TRAIN_SETS = [
    "train.max_steps=2",
    "train.steps_per_epoch=2",
    "train.batch_size=16",
    "train.val_max=64",
    "train.threads=1",
    "train.log_every=1",
    "model.preset=tiny",
    "model.pair_features=false",
    f"data.max_particles={MAX_PARTICLES}",
    "data.shuffle_buffer=64",
    "objective.probe_every=1",
]


def readme_commands(part: str | None = None) -> list[list[str]]:
    """The ``colliderfm`` commands of README's ``bash`` blocks, continuation lines joined.

    Args:
        part: ``"guide"`` (before ``## Results``), ``"results"`` (the commands that produced
            the results, from there on and in ``docs/results-discussion.md``: they reuse run
            names of the guide), or None for all.

    Returns:
        Each command's arguments after ``colliderfm`` (shell-split, comments removed).
    """
    text = README.read_text()
    if part is not None:
        guide, _, results = text.partition("\n## Results")
        text = guide if part == "guide" else results
    if part != "guide":
        text += "\n" + DISCUSSION.read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            args = shlex.split(line, comments=True)
            if args[:1] == ["colliderfm"]:
                out.append(args[1:])
    return out


def _resolve(args: list[str]) -> object:
    """Parse ``colliderfm ARGS`` down to the verb's context (raises click's UsageError)."""
    cmd, name, rest = typer.main.get_command(app), "colliderfm", list(args)
    while True:
        ctx = cmd.make_context(name, rest)
        if not hasattr(cmd, "resolve_command"):
            return ctx
        more = [*getattr(ctx, "_protected_args", []), *ctx.args]
        name, cmd, rest = cmd.resolve_command(ctx, more)


def test_readme_has_the_commands() -> None:
    cmds = readme_commands()
    assert len(cmds) > 30
    assert [
        "pretrain",
        "--config",
        "configs/pretrain/contrastive.yaml",
        "--out",
        "runs/clr",
    ] in cmds


@pytest.mark.parametrize("args", readme_commands(), ids=lambda a: " ".join(a)[:70])
def test_every_readme_command_parses(args: list[str]) -> None:
    _resolve([re.sub(r"^\$\w+$", "0", a) for a in args])  # $SLURM_ARRAY_TASK_ID: a number
    for a in args:
        if a.startswith("configs/"):
            assert (ROOT / a).is_file(), a
        if "=configs/" in a:
            assert (ROOT / a.split("=", 1)[1]).is_file(), a


def _generated_paths() -> set[str]:
    """Paths some README or config-header line says how to make (``generate ... --out P``)."""
    text = README.read_text() + DISCUSSION.read_text()
    text += "".join(p.read_text() for p in (ROOT / "configs").rglob("*.yaml"))
    made = set(re.findall(r"generate (?:jets|events) [^\n]*--out (\S+)", text))
    made |= {f"data/default/toptag/{s}" for s in ("train", "val", "test")}  # make quickstart
    return made


@pytest.mark.parametrize(
    "config", sorted((ROOT / "configs").glob("[fp]*/*.yaml")), ids=lambda p: p.name
)
def test_shipped_config_data_can_be_made(config: Path) -> None:
    from colliderfm.config import load_config

    cfg = load_config(config)
    made = _generated_paths()
    for path in (cfg.data.train, cfg.data.val, cfg.data.test, cfg.objective.probe_data):
        assert path is None or path in made, f"{config.name}: nothing says how to make {path}"


def test_probe_uses_what_there_is(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from colliderfm.pretrain.probe import LinearProbe

    write_synthetic_shards(tmp_path / "val", n=120)
    with caplog.at_level(logging.WARNING, logger="colliderfm"):
        probe = LinearProbe(tmp_path / "val", n=4000, max_particles=MAX_PARTICLES)
    assert len(probe.fit_set) + len(probe.test_set) == 120
    assert "fewer than the 4000 asked for" in caplog.text
    small = LinearProbe(tmp_path / "val", n=40, max_particles=MAX_PARTICLES)
    assert len(small.fit_set) + len(small.test_set) == 40


def _layout(root: Path) -> None:
    """Tiny quickstart-like data at README's paths (quickstart's 3:1:1 split, jets and events)."""
    toptag = root / "data/default/toptag"
    write_synthetic_shards(toptag / "train", n=160, seed=1)
    write_synthetic_shards(toptag / "val", n=60, seed=2)
    write_synthetic_shards(toptag / "test", n=60, seed=3)
    write_synthetic_shards(root / "data/default/pretrain", n=160, seed=4, n_classes=4)
    events = root / "data/default/events"
    write_event_shards(events / "train", n=160, seed=1)
    write_event_shards(events / "val", n=60, seed=2)
    write_event_shards(events / "test", n=60, seed=3)
    write_event_shards(events / "pretrain", n=160, seed=4, labelled=False)
    # the Results section's data sets (made there by generate/convert lines in its prose)
    write_synthetic_shards(root / "data/toptag/train", n=160, seed=5)
    write_synthetic_shards(root / "data/toptag/val", n=60, seed=6)
    write_synthetic_shards(root / "data/toptag/test", n=60, seed=7)
    write_synthetic_shards(root / "data/pretrain-mix", n=160, seed=8, n_classes=4)


def _sized(args: list[str]) -> list[str]:
    """README command plus the overrides that make it take seconds."""
    verb = args[0]
    if verb in ("pretrain", "finetune"):
        extra = TRAIN_SETS + ["objective.params.tokenizer_steps=2"] * (
            "configs/pretrain/mpm.yaml" in args
        )
        if "--n-train" in args:  # README's sizes fit quickstart's 3000 jets; these are tiny
            i = args.index("--n-train")
            args = [*args[: i + 1], "40", *args[i + 2 :]]
        return [*args, *(x for s in extra for x in ("--set", s))]
    if verb == "study" and args[1] != "report":
        study = [
            "budget.max_steps=2",
            "budget.eval_every=1",
            "budget.batch_size=16",
            "n_train=[20]",
            "seeds=[0]",
            "test_max=40",
        ]
        base = [s for s in TRAIN_SETS if not s.startswith(("train.max_steps", "train.batch"))]
        if "scaling" in args:
            study.append("pretrain.sizes=[40]")
            pre = [*TRAIN_SETS, "objective.probe_data=null"]
            study.append(f"pretrain.overrides=[{', '.join(pre)}]")
        return [*args, *(x for s in study + base for x in ("--set", s))]
    if verb == "generate":
        i = args.index("--n")
        return [*args[: i + 1], "2", *args[i + 2 :]]
    return args


def _run(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(_sized(args), monkeypatch, capsys)
    assert code == 0, f"colliderfm {' '.join(args)}\n{err[-3000:]}"


FAST = [
    ["pretrain", "--config", "configs/pretrain/contrastive.yaml", "--out", "runs/clr"],
    [
        "finetune",
        "--config",
        "configs/finetune/top_tagging.yaml",
        "--init",
        "runs/clr",
        "--mode",
        "linear",
        "--out",
        "runs/clr-probe",
    ],
    [
        "finetune",
        "--config",
        "configs/finetune/top_tagging.yaml",
        "--init",
        "none",
        "--mode",
        "full",
        "--out",
        "runs/scratch",
    ],
    [
        "evaluate",
        "--checkpoint",
        "runs/scratch",
        "--data",
        "data/default/toptag/test",
        "--out",
        "runs/scratch/metrics.json",
    ],
]


def test_readme_first_commands_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cmds = readme_commands()
    for args in FAST:
        assert args in cmds, args
    _layout(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    for args in FAST:
        _run(args, monkeypatch, capsys)
    assert (tmp_path / "runs/scratch/metrics.json").is_file()


@pytest.mark.slow
def test_every_readme_command_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for part in ("guide", "results"):  # each in a workspace of its own
        _run_all(readme_commands(part), tmp_path / part, monkeypatch, capsys)


def _run_all(
    commands: list[list[str]],
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root.mkdir()
    _layout(root)
    monkeypatch.chdir(root)
    (root / "configs").symlink_to(ROOT / "configs")
    for args in commands:
        line = " ".join(args)
        if any(s in line for s in NEEDS_OUTSIDE_INPUT):
            continue
        if (
            args[0] == "generate"
            and "--out" in args
            and Path(args[args.index("--out") + 1]).exists()
        ):
            continue  # the synthetic layout stands in for this generated set
        _run(args, monkeypatch, capsys)


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize(
    "doc", [README, *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name
)
def test_relative_links_point_at_files_and_headings_that_exist(doc: Path) -> None:
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)  # links in code are not links
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):  # http:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path) if path else doc
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md":
            heads = re.findall(r"^#+ (.+)$", file.read_text(), flags=re.M)
            if anchor not in {_anchor(h) for h in heads}:
                broken.append(target)
    assert broken == [], f"{doc.relative_to(ROOT)}: broken links {broken}"
