"""Generation speed and physics: the generator against its previous settings, in the same run.

For every class asked for, this script generates ``n`` selected jets (or events) twice, one worker
each, with seeds that differ:

* **previous** settings (version 0.1): no early vetoes, 250-jet / 200-event units (one Pythia
  initialisation each);
* **current** settings: the early vetoes of :mod:`colliderfm.data.generate.vetoes` (events),
  1000-jet / 500-event units;
* optionally (``--variants fast,every``) the ``--fast`` mode (MPI off) and, for jets, every
  passing jet of an event (``--jets-per-event 0``), each compared with the current default.

It prints selected rows per CPU-second of both and their ratio next to the targets of the
generation issue, then a two-sample test between the two samples: the KS p-value of each 1D
distribution (jets: mass, pT, multiplicity, leading-constituent pT fraction; events: mass of all
objects, HT, objects per type, MET) and the held-out AUC of a small MLP (two hidden layers of 64,
on those features and a few more) trained on half of each sample to tell them apart (0.5: it
cannot). The generated sets are kept under ``--work`` with their timings, so a rerun reuses them
(whatever seed they were made with; the manifests record it).

Run: ``python benchmarks/bench_generation.py --jets top,qcd --events datalike --n 5000
--json docs/generation.json`` (hours of CPU at n = 5000: data-like
events take ~0.4 CPU-s each with the previous settings). ``pytest -m bench`` runs a small smoke
version (n = 60 top and QCD jets).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from colliderfm.data.generate import events as events_mod
from colliderfm.data.generate import jets as jets_mod
from colliderfm.data.generate.event_processes import EventSettings
from colliderfm.data.generate.pythia_jets import JetSettings
from colliderfm.data.readers.parquet import iter_parquet_jets
from colliderfm.data.schema import ConstituentChunk, ObjectType
from colliderfm.evaluate.metrics import auc

#: Ratio targets of the generation issue (selected rows per CPU-second, current / previous).
TARGETS = {"top": 3.0, "qcd": 3.0, "datalike": 5.0, "ttbar": 2.0, "h2hdm": 2.0}
OTHER_JET_TARGET = 2.0
#: The previous settings' unit sizes.
PREVIOUS_UNITS = {"jets": 250, "events": 200}


@contextmanager
def _unit_size(kind: str, rows: int) -> Iterator[None]:
    """Temporarily set the rows per unit of a generator (the previous settings used smaller)."""
    mod, name = (jets_mod, "UNIT_JETS") if kind == "jets" else (events_mod, "UNIT_EVENTS")
    saved = getattr(mod, name)
    setattr(mod, name, rows)
    try:
        yield
    finally:
        setattr(mod, name, saved)


#: The variants a class can be generated with (the previous settings, the current default, the
#: ``--fast`` mode (MPI off) and, for jets, every passing jet of an event, ``--jets-per-event 0``)
#: and the offset each adds to the seed, so that the samples are independent.
VARIANTS = {"previous": 0, "every": 1, "current": 2, "fast": 3}


def _generate(kind: str, process: str, n: int, work: Path, variant: str, seed: int) -> dict:
    """Generate one sample (or reuse it) and return its record with the CPU seconds."""
    out = work / f"{process}-{variant}"
    previous, fast = variant == "previous", variant == "fast"
    seed += VARIANTS[variant]
    record = out.with_suffix(".json")
    if record.exists() and (out / "manifest.json").exists():
        rec = json.loads(record.read_text())
        if rec["n"] == n:
            return rec
    t0 = time.process_time()
    units = PREVIOUS_UNITS[kind] if previous else None
    with _unit_size(kind, units) if units else _nothing():
        if kind == "jets":
            settings = JetSettings(jets_per_event=0 if variant == "every" else 1, mpi=not fast)
            m = jets_mod.generate_jets(
                [process], n, out, seed=seed, progress=False, overwrite=True, settings=settings
            )
        else:
            settings = EventSettings(early_veto=not previous, mpi=not fast)
            m = events_mod.generate_events(
                [process], n, out, seed=seed, progress=False, overwrite=True, settings=settings
            )
    cpu = time.process_time() - t0
    rec = {"n": n, "cpu_s": cpu, "rate": n / cpu, "source": m["source"]}
    record.write_text(json.dumps(rec, indent=1, default=str))
    return rec


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _jet_features(c: ConstituentChunk) -> tuple[np.ndarray, list[str]]:
    """Per-jet features; the first four are the ones with KS tests."""
    seg = c.offsets[:-1]
    pt = np.hypot(c.px, c.py).astype(np.float64)
    jet = np.repeat(np.arange(len(c)), c.counts)
    jpt = np.add.reduceat(pt, seg)
    lead = np.maximum.reduceat(pt, seg) / jpt
    eta = np.arcsinh(c.pz / np.maximum(pt, 1e-9))
    phi = np.arctan2(c.py, c.px)
    deta = eta - c.jet["jet_eta"][jet]
    dphi = np.remainder(phi - c.jet["jet_phi"][jet] + np.pi, 2 * np.pi) - np.pi
    girth = np.add.reduceat(pt * np.hypot(deta, dphi), seg) / jpt
    ptd = np.sqrt(np.add.reduceat(pt**2, seg)) / jpt
    charged = np.add.reduceat(pt * (c.charge != 0), seg) / jpt
    cols = {
        "jet_mass": c.jet["jet_mass"],
        "jet_pt": c.jet["jet_pt"],
        "multiplicity": c.counts,
        "leading_fraction": lead,
        "jet_eta": c.jet["jet_eta"],
        "girth": girth,
        "ptD": ptd,
        "charged_fraction": charged,
    }
    return np.stack([np.asarray(v, np.float64) for v in cols.values()], 1), list(cols)


def _event_features(c: ConstituentChunk) -> tuple[np.ndarray, list[str]]:
    """Per-event features; all of them get KS tests."""
    seg = c.offsets[:-1]
    pt = np.hypot(c.px, c.py).astype(np.float64)
    t = c.type_id
    not_met = t != int(ObjectType.MET)

    def s(x: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.asarray(x, np.float64), seg)

    m2 = (
        s(c.energy * not_met) ** 2
        - s(c.px * not_met) ** 2
        - s(c.py * not_met) ** 2
        - s(c.pz * not_met) ** 2
    )
    cols = {
        "m_all": np.sqrt(np.clip(m2, 0, None)),
        "HT": s(pt * not_met),
        "MET": s(pt * (t == int(ObjectType.MET))),
        **{f"n_{o.name.lower()}": s(t == int(o)) for o in ObjectType if o != ObjectType.MET},
    }
    return np.stack(list(cols.values()), 1), list(cols)


def ks_test(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and asymptotic p-value (ties: right-continuous).

    Args:
        a, b: the samples.

    Returns:
        ``(D, p)``.
    """
    grid = np.unique(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    d = float(np.abs(fa - fb).max())
    en = math.sqrt(len(a) * len(b) / (len(a) + len(b)))
    lam = (en + 0.12 + 0.11 / en) * d
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * (k * lam) ** 2) for k in range(1, 101))
    return d, float(min(max(p, 0.0), 1.0))


def classifier_auc(x0: np.ndarray, x1: np.ndarray, seed: int = 0) -> float:
    """Held-out AUC of a small MLP trained to tell sample 0 from sample 1.

    Args:
        x0, x1: ``[N0, F]``, ``[N1, F]`` features.
        seed: split and initialisation seed.

    Returns:
        AUC on the held-out half.
    """
    import torch

    rng = np.random.default_rng(seed)
    x = np.concatenate([x0, x1]).astype(np.float64)
    y = np.concatenate([np.zeros(len(x0)), np.ones(len(x1))])
    idx = rng.permutation(len(x))
    tr, te = idx[: len(x) // 2], idx[len(x) // 2 :]
    mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-9
    xt = torch.tensor((x - mu) / sd, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 1),
    )
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    for _ in range(300):  # full batch
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xt[tr])[:, 0], yt[tr])
        loss.backward()
        opt.step()
    with torch.no_grad():
        score = net(xt[te])[:, 0].numpy()
    return auc(y[te], score)


def two_sample(kind: str, old: Path, new: Path) -> dict[str, Any]:
    """KS p-values and classifier AUC between two generated samples."""
    feats = _jet_features if kind == "jets" else _event_features
    a = ConstituentChunk.concat(list(iter_parquet_jets(old)))
    b = ConstituentChunk.concat(list(iter_parquet_jets(new)))
    (xa, names), (xb, _) = feats(a), feats(b)
    n_ks = 4 if kind == "jets" else len(names)
    ks = {names[i]: ks_test(xa[:, i], xb[:, i])[1] for i in range(n_ks)}
    n_te = (len(xa) + len(xb)) / 4  # held-out rows per sample
    return {
        "auc": classifier_auc(xa, xb),
        "auc_null_sd": math.sqrt((2 * n_te + 1) / (12 * n_te * n_te)),
        "ks_p": ks,
    }


def _compare(kind: str, key: str, n: int, work: Path, variant: str, seed: int) -> dict:
    """Speed ratio and two-sample test of a variant against the current default."""
    cur = _generate(kind, key, n, work, "current", seed)
    var = _generate(kind, key, n, work, variant, seed)
    cmp = two_sample(kind, work / f"{key}-current", work / f"{key}-{variant}")
    res = {
        f"{variant}_per_cpu_s": var["rate"],
        f"{variant}_ratio": var["rate"] / cur["rate"],
        f"{variant}_auc": cmp["auc"],
        f"{variant}_ks_p": cmp["ks_p"],
    }
    ks = ", ".join(f"{k} {p:.2g}" for k, p in cmp["ks_p"].items())
    print(
        f"{key:9s} {variant}: {var['rate']:7.2f}/CPU-s = {res[variant + '_ratio']:.2f}x the "
        f"default; two-sample AUC against the default {cmp['auc']:.3f}; KS p: {ks}",
        flush=True,
    )
    return res


def run(
    jets: list[str],
    events: list[str],
    n: int,
    work: Path,
    seed: int = 0,
    variants: tuple[str, ...] = (),
) -> dict[str, dict[str, Any]]:
    """Generate, time and compare every class.

    Args:
        jets: jet process keys.
        events: event process keys (``datalike``, ``ttbar``, ``h2hdm``).
        n: selected rows per class and setting.
        work: directory of the generated samples (reused when present).
        seed: base seed (each variant adds its offset in :data:`VARIANTS`).
        variants: also compare these with the current default (``fast``; ``every`` for jets):
            speed ratio and two-sample test, keys ``<variant>_*``.

    Returns:
        Class -> ``{previous, current, ratio, target, auc, auc_null_sd, ks_p, ...}``.
    """
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for kind, keys in (("jets", jets), ("events", events)):
        for key in keys:
            old = _generate(kind, key, n, work, "previous", seed)
            new = _generate(kind, key, n, work, "current", seed)
            target = TARGETS.get(key, OTHER_JET_TARGET)
            res = {
                "kind": kind,
                "n": n,
                "previous_per_cpu_s": old["rate"],
                "current_per_cpu_s": new["rate"],
                "ratio": new["rate"] / old["rate"],
                "target": target,
                "previous_efficiency": old["source"]["selection_efficiency"],
                "current_efficiency": new["source"]["selection_efficiency"],
                "vetoed": new["source"].get("vetoed"),
                **two_sample(kind, work / f"{key}-previous", work / f"{key}-current"),
            }
            ks = ", ".join(f"{k} {p:.2g}" for k, p in res["ks_p"].items())
            print(
                f"{key:9s} previous {res['previous_per_cpu_s']:7.2f}/CPU-s  current "
                f"{res['current_per_cpu_s']:7.2f}/CPU-s  ratio {res['ratio']:5.2f}x "
                f"(target {target:.0f}x: {'met' if res['ratio'] >= target else 'NOT met'})  "
                f"two-sample AUC {res['auc']:.3f} (null sd {res['auc_null_sd']:.3f})  KS p: {ks}",
                flush=True,
            )
            for variant in variants:
                if variant != "every" or kind == "jets":
                    res.update(_compare(kind, key, n, work, variant, seed))
            results[key] = res
    return results


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """The README table of :func:`run`'s results."""
    rows = [
        "| class | n | previous /CPU-s | current /CPU-s | ratio | target | two-sample AUC | "
        "min KS p | `--fast`: speed, AUC, min KS p | `--jets-per-event 0`: speed, AUC, min KS p |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def extra(r: dict[str, Any], v: str) -> str:
        if f"{v}_auc" not in r:
            return ""
        return f"{r[v + '_ratio']:.2f}x, {r[v + '_auc']:.3f}, {min(r[v + '_ks_p'].values()):.1g}"

    for key, r in results.items():
        rows.append(
            f"| {key} | {r['n']} | {r['previous_per_cpu_s']:.2f} | {r['current_per_cpu_s']:.2f} "
            f"| {r['ratio']:.2f}x | {r['target']:.0f}x | {r['auc']:.3f} +- {r['auc_null_sd']:.3f} "
            f"| {min(r['ks_p'].values()):.2g} | {extra(r, 'fast')} | {extra(r, 'every')} |"
        )
    return "\n".join(rows) + "\n"


@pytest.mark.bench
def test_bench_generation(tmp_path: Path) -> None:
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")
    res = run(["top", "qcd"], [], 60, tmp_path)
    assert all(r["ratio"] > 0 and 0 <= r["auc"] <= 1 for r in res.values())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", default="top,qcd", help="jet processes ('' for none)")
    parser.add_argument("--events", default="datalike", help="event processes ('' for none)")
    parser.add_argument("--n", type=int, default=2000, help="selected rows per class and setting")
    parser.add_argument("--work", type=Path, default=Path("generation-bench"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variants", default="", help="also compare these with the default: fast, every"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--markdown", type=Path, help="write the README table here")
    args = parser.parse_args()
    split = [k for k in args.jets.split(",") if k], [k for k in args.events.split(",") if k]
    variants = tuple(v for v in args.variants.split(",") if v)
    out = run(*split, args.n, args.work, args.seed, variants)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(out))
