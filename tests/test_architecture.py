"""The package's import structure: no cycles, registries are leaves, layers point down.

Every ``import`` in ``src/colliderfm`` counts, including those inside functions (a lazy import
is still a dependency), so a cycle cannot hide behind a function-level import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = "colliderfm"

#: lower number = lower layer; a module may import only modules of its own layer or below
LAYERS = {
    "colliderfm.errors": 0,
    "colliderfm.registry": 0,
    "colliderfm.version": 0,
    "colliderfm.builders": 1,
    "colliderfm.fileio": 1,
    "colliderfm.runtime": 1,
    "colliderfm.config": 1,
    "colliderfm.physics": 2,
    "colliderfm.physics.augment": 4,  # augmentations act on Batches and rebuild features
    "colliderfm.physics.augment_events": 4,
    "colliderfm.data": 3,
    "colliderfm.models": 3,
    "colliderfm.evaluate": 4,
    "colliderfm.evaluate.run": 7,  # `evaluate` on a checkpoint: rebuilds the model
    "colliderfm.tokenizers": 4,
    "colliderfm.train": 4,
    "colliderfm.zoo": 4,  # shipped checkpoints: zoo:NAME -> a checkpoint directory
    "colliderfm.pretrain": 5,
    "colliderfm.finetune": 5,
    "colliderfm.checkpoints": 6,
    "colliderfm.export": 7,
    "colliderfm.recipes": 7,
    "colliderfm.studies": 8,
    "colliderfm": 9,  # the package's __init__ (load)
    "colliderfm.__main__": 10,
    "colliderfm.cli": 10,
}

#: registries import no entry of theirs (timm's _registry.py)
LEAVES = (
    "colliderfm.registry",
    "colliderfm.builders",
    "colliderfm.models.registry",
    "colliderfm.pretrain.base",
    "colliderfm.tokenizers.base",
)


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted((SRC / PKG).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    """The module of ours that ``name`` (a module or a name inside one) refers to."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _imports(mod: str, path: Path, mods: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for n in names:
            if n == PKG or n.startswith(PKG + "."):
                target = _resolve(n, mods)
                if target is not None and target != mod:
                    out.add(target)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(m, p, mods) for m, p in mods.items()}


def _layer(mod: str) -> int:
    while mod not in LAYERS:
        mod = mod.rpartition(".")[0]
        assert mod, "every module needs a layer in LAYERS"
    return LAYERS[mod]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("leaf", LEAVES)
def test_registries_are_leaves(leaf: str) -> None:
    # a registry may import the interface its entries share, never an entry's module
    allowed = {
        "colliderfm.errors",
        "colliderfm.registry",
        "colliderfm.builders",
        "colliderfm.config",
        "colliderfm.data.schema",
        "colliderfm.models.factory",
        "colliderfm.models.registry",
    }
    assert _graph()[leaf] <= allowed


def test_no_module_imports_a_layer_above_it() -> None:
    bad = [
        f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
        for m, targets in _graph().items()
        for t in sorted(targets)
        if _layer(t) > _layer(m)
    ]
    assert bad == []
