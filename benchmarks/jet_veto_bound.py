"""How much could an early veto speed up jet generation? An upper bound from a dry run.

A veto can only skip the part of an event after the scale at which it decides, and it must keep
every event whose jet would pass the final selection. This script generates jets of a class with
the default physics and a recording (never vetoing) user hook that clusters the partons when the
interleaved evolution reaches ``--scale`` GeV (anti-kT R = 0.8, fjcore, as the veto would). For
every event that passes the selection it finds the early jet nearest to the selected jet
(``dR < 0.8``), and reports:

* the early/final pT ratio of the selected jets (how well the early jet predicts the final one);
* the tightest early-jet window (pT range and ``|y|`` of the matched early jets on this sample,
  i.e. an optimistic zero-loss veto: a real veto needs margins) and the fraction of all events
  with an early jet inside it, which is the fraction such a veto would have to finish;
* the same for the central 99.8% of the matched early-jet pT (a veto losing 0.2% of the jets);
* for a plain veto "an early jet with ``pT > T`` and ``|y| < 2.1``" at T = 450-500 GeV: the
  fraction of events it finishes and the selected jets it would have lost;
* the resulting bound on the gain in selected jets per CPU-second,
  ``1 / (kept + (1 - kept) * cost)``, with ``cost`` the fraction of an event's CPU time spent
  before the veto decides (``--cost``, measured in ``docs/generation.md``: ~0 at 20 GeV, ~0.28 at
  5 GeV).

Usage::

    python benchmarks/jet_veto_bound.py --process qcd,top --events 5000 --scale 20 --cost 0
    python benchmarks/jet_veto_bound.py --process qcd,top --events 5000 --scale 5 --cost 0.28
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from colliderfm.data.generate import pythia_jets as pj
from colliderfm.errors import require


def _recorder(scale: float) -> Any:
    """A user hook that records the early jets at ``scale`` GeV of every event (never vetoes)."""
    pythia8 = require("pythia8mc", "gen")

    class Recorder(pythia8.UserHooks):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            pythia8.UserHooks.__init__(self)
            self.jets = pythia8.SlowJet(-1, 0.8, 200.0, 3.0, 2, 2, None, True, True)
            self.keys: list[float] = []  # pT of the first outgoing hard parton (to align events)
            self.rows: list[list[tuple[float, float, float]]] = []

        def canVetoPT(self) -> bool:  # noqa: N802 - Pythia's name
            return True

        def scaleVetoPT(self) -> float:  # noqa: N802
            return scale

        def doVetoPT(self, ipos: int, event: Any) -> bool:  # noqa: N802
            if ipos > 3:
                return False
            self.jets.analyze(event)
            self.keys.append(event[5].pT())
            self.rows.append(
                [
                    (self.jets.pT(i), self.jets.y(i), self.jets.phi(i))
                    for i in range(self.jets.sizeJet())
                ]
            )
            return False

    return Recorder()


def dry_run(process: str, n_events: int, scale: float, seed: int) -> dict[str, Any]:
    """Generate ``n_events`` events of a jet class, recording early jets and the selected jet.

    Args:
        process: jet class key (``qcd``, ``top``, ...).
        n_events: events to finish.
        scale: evolution scale of the early jets, GeV.
        seed: Pythia seed.

    Returns:
        ``early`` (per event: list of ``(pT, y, phi)``), ``final`` (per event: ``(pT, eta, phi)``
        of the selected jet or None) and ``cpu_s``.
    """
    pythia8 = require("pythia8mc", "gen")
    require("fastjet", "gen")
    s = pj.JetSettings()
    spec = pj.SPECS[process]
    pythia = pythia8.Pythia("", False)
    for line in s.pythia_settings(process, seed, 0):
        if not pythia.readString(line):
            raise RuntimeError(f"Pythia rejected {line!r}")
    hook = _recorder(scale)
    pythia.setUserHooksPtr(hook)
    if not pythia.init():
        raise RuntimeError(f"Pythia failed to initialise {process!r}")
    charges = pj._Charges(pythia.particleData)
    rng = np.random.default_rng(seed)
    final: list[tuple[float, float, float] | None] = []
    keys: list[float] = []
    t0 = time.process_time()
    while len(final) < n_events:
        rec = pj._record_arrays(pythia.nextBatch(200))
        jets, events = pj.select_jets(rec, s, spec, charges, rng, 0)
        out: list[tuple[float, float, float] | None] = [None] * (len(rec["offsets"]) - 1)
        _, first = np.unique(events, return_index=True)  # the highest-pT selected jet per event
        for j in first:
            out[int(events[j])] = (
                float(jets.jet["jet_pt"][j]),
                float(jets.jet["jet_eta"][j]),
                float(jets.jet["jet_phi"][j]),
            )
        final += out
        p = rec["p4"][rec["offsets"][:-1] + 5]
        keys += np.hypot(p[:, 0], p[:, 1]).tolist()
    cpu = time.process_time() - t0
    # the hook also saw events Pythia aborted and redid: align on the hard parton's pT
    early, j = [], 0
    for k in keys:
        while abs(hook.keys[j] - k) > 2e-3 * max(k, 1.0):
            j += 1
        early.append(hook.rows[j])
        j += 1
    return {"early": early, "final": final, "cpu_s": cpu}


def bound(run: dict[str, Any], cost: float) -> dict[str, float]:
    """The veto bound of one dry run (see the module docstring).

    Args:
        run: output of :func:`dry_run`.
        cost: fraction of an event's CPU time spent before the veto decides.

    Returns:
        Efficiency, early/final pT quantiles, kept fractions and gain bounds.
    """
    early, final = run["early"], run["final"]
    n = len(final)
    pts, ys, ratios, unmatched = [], [], [], 0
    for i, f in enumerate(final):
        if f is None:
            continue
        best = None
        for ept, ey, ephi in early[i]:
            dr = np.hypot(ey - f[1], (ephi - f[2] + np.pi) % (2 * np.pi) - np.pi)
            if dr < 0.8 and (best is None or dr < best[0]):
                best = (dr, ept, ey)
        if best is None:
            unmatched += 1
            continue
        pts.append(best[1])
        ys.append(abs(best[2]))
        ratios.append(best[1] / f[0])
    r = np.array(ratios)
    ymax = max(ys)

    def kept(lo: float, hi: float) -> float:
        return float(
            np.mean([any(lo <= p <= hi and abs(y) <= ymax for p, y, _ in e) for e in early])
        )

    thresholds = {}
    for t in (450.0, 470.0, 480.0, 490.0, 500.0):
        keep = [any(p > t and abs(y) < 2.1 for p, y, _ in e) for e in early]
        lost = sum(f is not None and not k for f, k in zip(final, keep, strict=True))
        thresholds[t] = (float(np.mean(keep)), lost)
    k0 = kept(min(pts), max(pts))
    q = np.quantile(pts, [0.001, 0.999])
    k1 = kept(float(q[0]), float(q[1]))
    return {
        "events": n,
        "efficiency": (n - final.count(None)) / n,
        "unmatched": unmatched,
        "ratio_q01": float(np.quantile(r, 0.01)),
        "ratio_q99": float(np.quantile(r, 0.99)),
        "window": (min(pts), max(pts)),
        "kept_zero_loss": k0,
        "gain_zero_loss": 1 / (k0 + (1 - k0) * cost),
        "kept_998": k1,
        "gain_998": 1 / (k1 + (1 - k1) * cost),
        "thresholds": thresholds,
        "cpu_s": run["cpu_s"],
    }


def main(argv: list[str] | None = None) -> int:
    """Print the bound for each class.

    Args:
        argv: command-line arguments.

    Returns:
        Exit code.
    """
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--process", default="qcd,top")
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--scale", type=float, default=20.0)
    ap.add_argument("--cost", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=12345)
    args = ap.parse_args(argv)
    print(
        f"early jets at {args.scale:g} GeV, veto cost {args.cost:g} of an event\n"
        "| class | events | selected | early/final pT 1%-99% | zero-loss window (GeV) | "
        "finished | gain bound | 99.8% window: finished | gain bound |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    rows = []
    for process in args.process.split(","):
        b = bound(dry_run(process, args.events, args.scale, args.seed), args.cost)
        rows.append((process, b))
        print(
            f"| {process} | {b['events']} | {b['efficiency']:.3f} | "
            f"{b['ratio_q01']:.3f}-{b['ratio_q99']:.3f} | "
            f"{b['window'][0]:.0f}-{b['window'][1]:.0f} | {b['kept_zero_loss']:.3f} | "
            f"{b['gain_zero_loss']:.2f}x | {b['kept_998']:.3f} | {b['gain_998']:.2f}x |",
            flush=True,
        )
    print(
        "\nveto 'an early jet with pT > T, |y| < 2.1': fraction of events finished, "
        "selected jets lost, gain\n| class | "
        + " | ".join(f"T = {t:g} GeV" for t in rows[0][1]["thresholds"])
        + " |"
    )
    print("|---|" + "---|" * len(rows[0][1]["thresholds"]))
    for process, b in rows:
        cells = [
            f"{k:.3f}, {lost}, {1 / (k + (1 - k) * args.cost):.2f}x"
            for k, lost in b["thresholds"].values()
        ]
        print(f"| {process} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
