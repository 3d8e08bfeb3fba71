"""``colliderfm inspect``: what is in a jet file, streamed (shards, Parquet, JetClass, Top Tagging).

:func:`inspect` returns a JSON-serialisable dict; :func:`format_report` renders it as a compact
text block. Statistics are accumulated chunk by chunk, so any file size works in bounded memory;
``max_jets`` stops early for a quick look.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from colliderfm.data.readers.base import Reader, reader_for
from colliderfm.data.schema import ConstituentChunk, ObjectType, jet_scalars_from_particles
from colliderfm.errors import ColliderFMError
from colliderfm.physics.kinematics import np_eta, np_phi

HIST_BINS = 10
#: Manifest ``source`` entries too long for the one-line text summary (still in ``--json``).
_LONG_SOURCE_KEYS = ("inputs", "pythia_settings", "settings", "seed_derivation", "nanoaod")
BAR = 30

#: Quantity name -> unit, in report order.
PARTICLE_QUANTITIES = {"pt": "GeV", "energy": "GeV", "eta": "", "deta": "", "dphi": "rad"}
JET_QUANTITIES = {"pt": "GeV", "eta": "", "phi": "rad", "energy": "GeV", "mass": "GeV"}


class _Range:
    """Running min / max / mean of a stream of arrays."""

    def __init__(self) -> None:
        self.lo, self.hi, self.total, self.n = math.inf, -math.inf, 0.0, 0

    def add(self, a: np.ndarray) -> None:
        if a.size:
            self.lo = min(self.lo, float(a.min()))
            self.hi = max(self.hi, float(a.max()))
            self.total += float(a.sum(dtype=np.float64))
            self.n += int(a.size)

    def result(self) -> dict[str, float] | None:
        if not self.n:
            return None
        return {"min": self.lo, "mean": self.total / self.n, "max": self.hi}


class _Stats:
    """Accumulates everything :func:`inspect` reports, one chunk at a time."""

    def __init__(self) -> None:
        self.n = 0
        self.labels: Counter[int] = Counter()
        self.mult = np.zeros(0, dtype=np.int64)  # bincount of particles per jet
        self.part = {k: _Range() for k in PARTICLE_QUANTITIES}
        self.jet = {k: _Range() for k in JET_QUANTITIES}
        self.charge: Counter[int] = Counter()
        self.type_id: Counter[int] = Counter()

    def add(self, chunk: ConstituentChunk) -> None:
        if not len(chunk):
            return
        self.n += len(chunk)
        values, n = np.unique(chunk.label, return_counts=True)
        self.labels.update(dict(zip(values.tolist(), n.tolist(), strict=True)))
        bc = np.bincount(chunk.counts)
        if bc.size > self.mult.size:
            self.mult = np.pad(self.mult, (0, bc.size - self.mult.size))
        self.mult[: bc.size] += bc
        jet = dict(chunk.jet)
        if any(k not in jet for k in ("jet_eta", "jet_phi")) and chunk.counts.min() > 0:
            jet = {**jet_scalars_from_particles(chunk), **jet}
        for k in JET_QUANTITIES:
            if f"jet_{k}" in jet:
                self.jet[k].add(np.asarray(jet[f"jet_{k}"]))
        px, py, pz = (a.astype(np.float64) for a in (chunk.px, chunk.py, chunk.pz))
        eta, phi = np_eta(px, py, pz), np_phi(px, py)
        self.part["pt"].add(np.hypot(px, py))
        self.part["energy"].add(chunk.energy)
        self.part["eta"].add(eta)
        if "jet_eta" in jet and "jet_phi" in jet:
            self.part["deta"].add(eta - np.repeat(jet["jet_eta"], chunk.counts))
            self.part["dphi"].add(
                np_phi(
                    np.cos(phi - np.repeat(jet["jet_phi"], chunk.counts)),
                    np.sin(phi - np.repeat(jet["jet_phi"], chunk.counts)),
                )
            )
        for counter, arr in ((self.charge, chunk.charge), (self.type_id, chunk.type_id)):
            values, n = np.unique(arr, return_counts=True)
            counter.update(dict(zip(values.tolist(), n.tolist(), strict=True)))

    def multiplicity(self) -> dict[str, Any] | None:
        if not self.n:
            return None
        k = np.arange(self.mult.size)
        nz = np.flatnonzero(self.mult)
        lo, hi = int(nz[0]), int(nz[-1])
        cum = np.cumsum(self.mult)
        median = float(
            (
                np.searchsorted(cum, (self.n - 1) // 2, side="right")
                + np.searchsorted(cum, self.n // 2, side="right")
            )
            / 2
        )
        width = max(1, math.ceil((hi - lo + 1) / HIST_BINS))
        hist = [
            {"lo": a, "hi": min(a + width - 1, hi), "n": int(self.mult[a : a + width].sum())}
            for a in range(lo, hi + 1, width)
        ]
        return {
            "min": lo,
            "mean": float((k * self.mult).sum() / self.n),
            "median": median,
            "max": hi,
            "histogram": hist,
        }


def inspect(path: str | Path, max_jets: int | None = None, verify: bool = False) -> dict[str, Any]:
    """Summarise a jet input: format, jets and classes, multiplicities, kinematic ranges, schema.

    Args:
        path: shard directory, ``.parquet`` file, JetClass ROOT or Top Tagging HDF5 file.
        max_jets: stop after this many jets (None: read everything).
        verify: first hash every shard of a shard directory and compare it with the manifest's
            sha256 (even shards verified before); a mismatch is an error naming the shard.
            The result is ``verified`` (``shards``, ``hashed``, ``unchecked``); for inputs
            without checksums (foreign files) it is None.

    Returns:
        JSON-serialisable dict with ``path, format, schema, classes, n_jets`` (jets scanned after
        skipping bad ones), ``n_total`` (jets stored, from metadata, or None), ``complete``,
        ``counts`` (per class name; ``unlabelled`` for -1), ``skipped`` (bad jets seen while
        scanning), ``multiplicity`` (min/mean/median/max and ``histogram`` bins), ``particle`` and
        ``jet`` (min/mean/max of pT, energy in GeV, eta, phi, mass; particle ``deta``/``dphi``
        relative to the jet axis), ``charge`` and ``type_id`` counts, and for shard directories the
        ``manifest`` summary (source, skipped at conversion, shards). Event shards and NanoAOD
        files (default selection) instead get ``n_events``, ``counts``, ``objects_per_event``,
        ``objects`` (per ObjectType name), ``objects_per_event_by_type`` and
        ``object_kinematics`` (min/mean/max of pt, eta, energy per object type); ``max_jets``
        then counts events.
    """
    if max_jets is not None and max_jets < 1:
        raise ColliderFMError(f"max_jets must be >= 1, got {max_jets}")
    path = Path(path)
    reader = reader_for(path)
    verified = reader.verify(path, force=True) if verify else None
    info: dict[str, Any] = {"path": str(path), "format": reader.name, "schema": reader.schema(path)}
    if verify:
        info["verified"] = verified
    if reader.note:
        info["note"] = reader.note
    mf = reader.manifest(path)
    if mf is not None:
        info["manifest"] = {
            "kind": mf.get("kind"),
            "n": mf.get("n"),
            "counts": mf.get("counts"),
            "skipped": mf.get("skipped", {}),
            "shards": len(mf["shards"]),
            "source": mf.get("source", {}),
            "schema_version": mf.get("schema_version"),
            "created_by": mf.get("created_by"),
        }
    if reader.kind(path) == "events":
        return _inspect_events(path, reader, info, max_jets)
    classes = reader.classes(path)
    stats, skipped = _Stats(), Counter()
    complete = True
    chunk_size = 8192 if max_jets is None else max(1, min(8192, max_jets))
    for chunk in reader.iter_chunks(path, chunk_size=chunk_size, skipped=skipped):
        if max_jets is not None and stats.n + len(chunk) >= max_jets:
            stats.add(chunk.take(np.arange(max_jets - stats.n)))
            complete = False
            break
        stats.add(chunk)
    names = dict(enumerate(classes))
    n_total = reader.count(path)
    if not complete and n_total is not None:
        complete = stats.n + sum(skipped.values()) >= n_total
    info.update(
        {
            "classes": list(classes),
            "n_jets": stats.n,
            "n_total": n_total,
            "complete": complete,
            "counts": {
                names.get(k, "unlabelled" if k == -1 else str(k)): v
                for k, v in sorted(stats.labels.items())
            },
            "skipped": dict(skipped),
            "multiplicity": stats.multiplicity(),
            "particle": {k: r.result() for k, r in stats.part.items() if r.n},
            "jet": {k: r.result() for k, r in stats.jet.items() if r.n},
            "charge": {str(k): v for k, v in sorted(stats.charge.items())},
            "pid": {str(k): v for k, v in sorted(stats.type_id.items(), key=lambda kv: -kv[1])},
        }
    )
    return info


#: Object-type names in ObjectType order (index = value).
OBJECT_NAMES = {int(t): t.name.lower() for t in ObjectType}


def _inspect_events(
    path: Path, reader: Reader, info: dict[str, Any], max_events: int | None
) -> dict[str, Any]:
    """Event statistics: events, classes, objects per event and per type, kinematic ranges."""
    classes = reader.classes(path)
    n, mult = 0, np.zeros(0, dtype=np.int64)
    labels: Counter[int] = Counter()
    per_type: Counter[int] = Counter()
    ranges = {t: {k: _Range() for k in ("pt", "eta", "energy")} for t in OBJECT_NAMES}
    skipped: Counter[str] = Counter()
    complete = True
    for chunk in reader.iter_chunks(path, skipped=skipped):
        if max_events is not None and n + len(chunk) >= max_events:
            chunk = chunk.take(np.arange(max_events - n))
            complete = False
        n += len(chunk)
        values, k = np.unique(chunk.label, return_counts=True)
        labels.update(dict(zip(values.tolist(), k.tolist(), strict=True)))
        bc = np.bincount(chunk.counts)
        mult = np.pad(mult, (0, max(0, bc.size - mult.size)))
        mult[: bc.size] += bc
        px, py, pz = (a.astype(np.float64) for a in (chunk.px, chunk.py, chunk.pz))
        pt, eta = np.hypot(px, py), np_eta(px, py, pz)
        for t in OBJECT_NAMES:
            sel = chunk.type_id == t
            per_type[t] += int(sel.sum())
            ranges[t]["pt"].add(pt[sel])
            ranges[t]["eta"].add(eta[sel])
            ranges[t]["energy"].add(chunk.energy[sel])
        if not complete:
            break
    names = dict(enumerate(classes))
    nz = np.flatnonzero(mult)
    info.update(
        {
            "classes": list(classes),
            "n_events": n,
            "complete": complete,
            "counts": {
                names.get(k, "unlabelled" if k == -1 else str(k)): v
                for k, v in sorted(labels.items())
            },
            "skipped": dict(skipped),
            "objects_per_event": None
            if not n
            else {
                "min": int(nz[0]),
                "mean": float((np.arange(mult.size) * mult).sum() / n),
                "max": int(nz[-1]),
            },
            "objects": {OBJECT_NAMES[t]: per_type[t] for t in OBJECT_NAMES},
            "objects_per_event_by_type": {
                OBJECT_NAMES[t]: round(per_type[t] / max(n, 1), 3) for t in OBJECT_NAMES
            },
            "object_kinematics": {
                OBJECT_NAMES[t]: {k: r.result() for k, r in ranges[t].items() if r.n}
                for t in OBJECT_NAMES
                if per_type[t]
            },
        }
    )
    return info


def _num(x: float) -> str:
    return f"{x:.4g}"


def format_report(info: dict[str, Any]) -> str:
    """Render :func:`inspect`'s dict as a compact human-readable text block.

    Args:
        info: the dict returned by :func:`inspect`.

    Returns:
        Multi-line text (no trailing newline).
    """
    lines = [f"{info['path']}  [{info['format']}]"]
    mf = info.get("manifest")
    if mf:
        lines.append(
            f"shards: {mf['shards']} ({mf['kind']}, schema v{mf['schema_version']}, "
            f"{mf['created_by']}), {mf['n']} rows"
        )
        if mf.get("source"):
            src = ", ".join(
                f"{k}={v}" for k, v in mf["source"].items() if k not in _LONG_SOURCE_KEYS
            )
            inputs = mf["source"].get("inputs") or []
            lines.append(
                f"source: {src}"
                + (
                    f"; {len(inputs)} input(s): "
                    + ", ".join(
                        Path(str(i.get("path", i))).name if isinstance(i, dict) else str(i)
                        for i in inputs[:4]
                    )
                    + (" ..." if len(inputs) > 4 else "")
                    if inputs
                    else ""
                )
            )
        if mf.get("skipped"):
            lines.append("skipped at conversion: " + _kv(mf["skipped"]))
    if "verified" in info:
        v = info["verified"]
        lines.append(
            "verified: no checksums recorded for this format"
            if v is None
            else f"verified: sha256 of {v['hashed']} of {v['shards']} shards matches the manifest"
            + (f" ({v['unchecked']} listed without sha256)" if v["unchecked"] else "")
        )
    if info.get("note"):
        lines.append(f"note: {info['note']}")
    if "n_jets" in info:
        total = info.get("n_total")
        scanned = f"{info['n_jets']} jets" + ("" if info["complete"] else " (stopped at max_jets)")
        lines.append(
            scanned
            + (f" of {total} stored" if total is not None else "")
            + (f"; skipped while reading: {_kv(info['skipped'])}" if info["skipped"] else "")
        )
        if info["counts"]:
            lines.append("classes: " + " | ".join(f"{k} {v}" for k, v in info["counts"].items()))
        m = info["multiplicity"]
        if m:
            lines.append(
                f"particles/jet: min {m['min']}  mean {m['mean']:.1f}  "
                f"median {m['median']:g}  max {m['max']}"
            )
            top = max(b["n"] for b in m["histogram"]) or 1
            for b in m["histogram"]:
                label = f"{b['lo']}-{b['hi']}" if b["hi"] != b["lo"] else f"{b['lo']}"
                bar = "#" * math.ceil(BAR * b["n"] / top) if b["n"] else ""
                lines.append(f"  {label:>9} | {bar:<{BAR}} {b['n']}")
        for title, table, units in (
            ("particle", info["particle"], PARTICLE_QUANTITIES),
            ("jet", info["jet"], JET_QUANTITIES),
        ):
            for k, r in table.items():
                unit = f" [{units[k]}]" if units.get(k) else ""
                lines.append(
                    f"{title} {k}{unit}:".ljust(24) + f"min {_num(r['min']):>9}  "
                    f"mean {_num(r['mean']):>9}  max {_num(r['max']):>9}"
                )
        if info["charge"]:
            lines.append("charge: " + _kv(info["charge"]))
        if info["pid"]:
            pids = list(info["pid"].items())
            lines.append(
                "pid: "
                + ", ".join(f"{k}: {v}" for k, v in pids[:8])
                + (" ..." if len(pids) > 8 else "")
            )
    if "n_events" in info:
        lines.append(
            f"{info['n_events']} events"
            + ("" if info["complete"] else " (stopped at max_jets)")
            + (f"; skipped while reading: {_kv(info['skipped'])}" if info["skipped"] else "")
        )
        if info["counts"]:
            lines.append("classes: " + " | ".join(f"{k} {v}" for k, v in info["counts"].items()))
        m = info["objects_per_event"]
        if m:
            lines.append(f"objects/event: min {m['min']}  mean {m['mean']:.2f}  max {m['max']}")
            lines.append(
                "objects: "
                + ", ".join(
                    f"{k} {v} ({info['objects_per_event_by_type'][k]:.2f}/event)"
                    for k, v in info["objects"].items()
                )
            )
        for t, table in info["object_kinematics"].items():
            for k, r in table.items():
                unit = "" if k == "eta" else " [GeV]"
                lines.append(
                    f"{t} {k}{unit}:".ljust(24) + f"min {_num(r['min']):>9}  "
                    f"mean {_num(r['mean']):>9}  max {_num(r['max']):>9}"
                )
    schema = info.get("schema") or {}
    if schema:
        lines.append("schema: " + _schema_text(schema))
    return "\n".join(lines)


def _kv(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in d.items())


def _schema_text(schema: dict[str, Any], limit: int = 300) -> str:
    if "particle_slots" in schema:  # Top Tagging summary
        cols = ", ".join(schema["columns"])
        text = (
            f"key '{schema['key']}' ({schema['storage']}), {schema['particle_slots']} "
            f"particle slots (E_i, PX_i, PY_i, PZ_i), other columns: {cols}"
        )
    else:
        text = ", ".join(
            f"{k}: {v}" if not isinstance(v, list) else f"{k}: {', '.join(v)}"
            for k, v in schema.items()
        )
    return text if len(text) <= limit else text[: limit - 4] + " ..."
