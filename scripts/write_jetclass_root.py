#!/usr/bin/env python
"""Write colliderfm Parquet jet shards as a JetClass-schema ROOT file, without colliderfm.

An independent writer for checking that a model behaves the same on the JetClass ROOT format as
on our own shards (the model-zoo probe check): it reads the Parquet files with pyarrow and writes
a TTree ``tree`` with uproot, using only the JetClass branch names and conventions, and none of
colliderfm's code::

    python scripts/write_jetclass_root.py data/probe/test data/probe-root/test.root

Branches written (as in the JetClass release): ``part_px/py/pz/energy`` (GeV), ``part_deta``,
``part_dphi`` (relative to the jet axis), ``part_charge``, the five particle-type flags
``part_isChargedHadron/NeutralHadron/Photon/Electron/Muon`` (from the PDG id: the id itself is
not a JetClass branch, so it is reduced to these five categories here), ``jet_pt/eta/phi/energy``,
``jet_sdmass`` (the shard's ``jet_mass``), ``jet_nparticles`` and the one-hot
``label_<class>`` of the ten JetClass classes (all false for an unlabelled jet).

The file is written to ``OUT.tmp`` and renamed, so a failed run leaves no half-written file.
Bad input (a folder without Parquet files, a shard without the particle columns) is one line on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq

#: the JetClass label order (label_<name>; index = the shard's integer label when the shard's
#: manifest does not list its own class names)
JETCLASS = ("QCD", "Hbb", "Hcc", "Hgg", "H4q", "Hqql", "Zqq", "Wqq", "Tbqq", "Tbl")
PARTICLES = ("part_px", "part_py", "part_pz", "part_energy", "part_charge", "part_pid")
JET = ("jet_pt", "jet_eta", "jet_phi", "jet_energy", "jet_mass", "label")
CHARGED_HADRONS = (211, 321, 2212, 3222, 3112, 3312, 3334)


def fail(msg: str) -> None:
    """Print one error line and exit with status 2."""
    print(f"write_jetclass_root: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def read_shards(folder: Path) -> tuple[dict[str, ak.Array | np.ndarray], list[str]]:
    """Read every ``*.parquet`` of ``folder`` (sorted) into awkward columns.

    Args:
        folder: a folder of colliderfm Parquet jet shards (or one Parquet file).

    Returns:
        The columns (particle columns jagged, jet columns flat) and the class names of the
        integer labels (the manifest's ``classes`` when present, else the JetClass order).
    """
    files = [folder] if folder.is_file() else sorted(folder.glob("*.parquet"))
    if not files:
        fail(f"{folder}: no .parquet files")
    classes = list(JETCLASS)
    manifest = (folder if folder.is_dir() else folder.parent) / "manifest.json"
    if manifest.is_file():
        classes = list(json.loads(manifest.read_text()).get("classes", classes))
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("counts", *PARTICLES, *JET)}
    for f in files:
        try:
            table = pq.read_table(f, columns=[*PARTICLES, *JET])
        except Exception as exc:  # noqa: BLE001 - any unreadable shard is bad input
            fail(f"{f}: not a jet shard ({str(exc).splitlines()[0]})")
        if any(table.column(k).null_count for k in table.column_names):
            fail(f"{f}: null values")
        for k in PARTICLES:
            lists = table.column(k).combine_chunks()
            cols[k].append(lists.flatten().to_numpy())
        offsets = table.column(PARTICLES[0]).combine_chunks().offsets.to_numpy()
        cols["counts"].append(np.diff(offsets))
        for k in JET:
            cols[k].append(table.column(k).to_numpy())
    flat = {k: np.concatenate(v) for k, v in cols.items()}
    counts = flat.pop("counts")
    jets = {k: ak.unflatten(flat[k], counts) if k in PARTICLES else flat[k] for k in flat}
    return jets, classes


def jetclass_branches(
    jets: dict[str, ak.Array | np.ndarray], classes: list[str]
) -> dict[str, np.ndarray | ak.Array]:
    """The JetClass branches of ``jets``.

    Args:
        jets: the shard columns of :func:`read_shards`.
        classes: class name of each integer label.

    Returns:
        Branch name -> array (jagged for ``part_*``).
    """
    unknown = sorted(set(classes) - set(JETCLASS))
    if unknown:
        fail(f"classes {unknown} are not JetClass classes")
    px, py, pz, e = (jets[k] for k in ("part_px", "part_py", "part_pz", "part_energy"))
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-12))
    phi = np.arctan2(py, px)
    dphi = (phi - jets["jet_phi"] + np.pi) % (2 * np.pi) - np.pi
    pid = np.abs(jets["part_pid"])
    charge = jets["part_charge"]
    out: dict[str, np.ndarray | ak.Array] = {
        "part_px": px,
        "part_py": py,
        "part_pz": pz,
        "part_energy": e,
        "part_deta": ak.values_astype(eta - jets["jet_eta"], np.float32),
        "part_dphi": ak.values_astype(dphi, np.float32),
        "part_charge": ak.values_astype(charge, np.float32),
        "part_isChargedHadron": ak.values_astype(
            (charge != 0) & (pid != 11) & (pid != 13), np.float32
        ),
        "part_isNeutralHadron": ak.values_astype(
            (charge == 0) & (pid != 22) & (pid != 0), np.float32
        ),
        "part_isPhoton": ak.values_astype(pid == 22, np.float32),
        "part_isElectron": ak.values_astype(pid == 11, np.float32),
        "part_isMuon": ak.values_astype(pid == 13, np.float32),
    }
    for k in ("jet_pt", "jet_eta", "jet_phi", "jet_energy"):
        out[k] = np.asarray(jets[k], np.float32)
    out["jet_sdmass"] = np.asarray(jets["jet_mass"], np.float32)
    out["jet_nparticles"] = ak.to_numpy(ak.num(px)).astype(np.float32)
    label = np.asarray(jets["label"])
    for name in JETCLASS:
        idx = classes.index(name) if name in classes else -2
        out[f"label_{name}"] = label == idx
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: ``write_jetclass_root.py SHARDS OUT.root``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shards", type=Path, help="a folder of Parquet jet shards")
    ap.add_argument("out", type=Path, help="the ROOT file to write")
    args = ap.parse_args(argv)
    if not args.shards.exists():
        fail(f"{args.shards}: no such file or folder")
    import uproot

    jets, classes = read_shards(args.shards)
    branches = jetclass_branches(jets, classes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    try:
        tree = {"part": ak.zip({k[5:]: v for k, v in branches.items() if k.startswith("part_")})}
        tree |= {k: v for k, v in branches.items() if not k.startswith("part_")}
        with uproot.recreate(tmp) as f:
            out = f.mktree(
                "tree",
                {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in tree.items()},
                counter_name=lambda coll: f"n_{coll}",
                field_name=lambda outer, inner: f"{outer}_{inner}",
            )
            out.extend(tree)
        os.replace(tmp, args.out)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {len(jets['label'])} jets to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
