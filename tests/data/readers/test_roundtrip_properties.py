"""Property-based round trips: random jagged jets -> each on-disk format -> read back equal.

Hypothesis draws small jagged jet sets (zero-particle jets included: readers of foreign formats
must skip them, the canonical shards never hold them); each example is written with the real
writer of its format (``ShardWriter``, ``DataFrame.to_hdf``, ``uproot``) and read back with
our reader. Also: ``pad_chunk`` keeps each jet's highest-pT particles whatever the multiplicity.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from colliderfm.data.readers.common import pid_from_flags
from colliderfm.data.schema import JET_SCALARS, JETCLASS_CLASSES, ConstituentChunk

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIELDS = ("counts", "px", "py", "pz", "energy", "charge", "type_id", "label")
#: JetClass particle-type flags, in the reader's order
FLAGS = (
    "part_isChargedHadron",
    "part_isNeutralHadron",
    "part_isPhoton",
    "part_isElectron",
    "part_isMuon",
)

f32 = st.floats(-2000.0, 2000.0, width=32, allow_subnormal=False)
positive = st.floats(0.5, 5000.0, width=32, allow_subnormal=False)


@st.composite
def jagged_jets(
    draw: st.DrawFn, n_classes: int = 2, max_particles: int = 9, allow_empty: bool = True
) -> ConstituentChunk:
    """1-6 jets of 0 (if allowed) to ``max_particles`` particles, finite float32 values."""
    n = draw(st.integers(1, 6))
    lo = 0 if allow_empty else 1
    counts = np.array(draw(st.lists(st.integers(lo, max_particles), min_size=n, max_size=n)))
    tot = int(counts.sum())

    def arr(elements: st.SearchStrategy[float]) -> np.ndarray:
        return np.array(draw(st.lists(elements, min_size=tot, max_size=tot)), dtype=np.float32)

    kind = np.array(draw(st.lists(st.integers(0, 4), min_size=tot, max_size=tot)), dtype=int)
    charged = np.isin(kind, [0, 3, 4])
    sign = np.array(draw(st.lists(st.sampled_from([-1, 1]), min_size=tot, max_size=tot)))
    charge = np.where(charged, sign, 0).astype(np.int8)
    flags = [(kind == i).astype(np.float32) for i in range(5)]
    chunk = ConstituentChunk(
        counts=counts.astype(np.int64),
        px=arr(f32),
        py=arr(f32),
        pz=arr(f32),
        energy=arr(positive),  # real particles have E > 0 (Top Tagging marks slots by it)
        charge=charge,
        type_id=pid_from_flags(charge.astype(np.float32), *flags),
        label=np.array(
            draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n)), dtype=np.int64
        ),
        jet={k: arr_n(draw, n) for k in JET_SCALARS},
    )
    chunk.flags = flags  # type: ignore[attr-defined]  (for the JetClass writer)
    return chunk


def arr_n(draw: st.DrawFn, n: int) -> np.ndarray:
    """``n`` finite float32 jet scalars."""
    return np.array(draw(st.lists(positive, min_size=n, max_size=n)), dtype=np.float32)


def assert_same(
    got: ConstituentChunk, exp: ConstituentChunk, fields: tuple[str, ...] = FIELDS
) -> None:
    for k in fields:
        np.testing.assert_array_equal(getattr(got, k), getattr(exp, k), err_msg=k)


def non_empty(chunk: ConstituentChunk) -> ConstituentChunk:
    return chunk.take(np.flatnonzero(chunk.counts > 0))


@SETTINGS
@given(jets=jagged_jets(allow_empty=False), rows=st.integers(1, 4))
def test_canonical_shards_round_trip(jets: ConstituentChunk, rows: int) -> None:
    from colliderfm.data.readers.parquet import iter_parquet_jets, read_manifest
    from colliderfm.data.shards import ShardWriter

    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "shards"
        with ShardWriter(out, "jets", ["QCD", "Tbqq"], {}, rows_per_shard=rows) as w:
            w.write_chunk(jets)
        back = ConstituentChunk.concat(list(iter_parquet_jets(out, rows=3)))
        manifest = read_manifest(out)
    assert_same(back, jets)
    for k in JET_SCALARS:
        np.testing.assert_array_equal(back.jet[k], jets.jet[k], err_msg=k)
    assert manifest["n"] == len(jets) and len(manifest["shards"]) == -(-len(jets) // rows)


@SETTINGS
@given(jets=jagged_jets(), extra_slots=st.integers(0, 3), chunk=st.integers(1, 5))
def test_top_tagging_hdf5_round_trip(jets: ConstituentChunk, extra_slots: int, chunk: int) -> None:
    import pandas as pd

    from colliderfm.data.readers import toptagging

    n, slots = len(jets), int(jets.counts.max()) + extra_slots
    if slots == 0:
        slots = 1
    grid = np.arange(slots)[None, :] < jets.counts[:, None]
    cols = {}
    for name, v in (("E", jets.energy), ("PX", jets.px), ("PY", jets.py), ("PZ", jets.pz)):
        a = np.zeros((n, slots), dtype=np.float32)
        a[grid] = v
        cols.update({f"{name}_{i}": a[:, i] for i in range(slots)})
    cols["is_signal_new"] = jets.label
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.h5"
        pd.DataFrame(cols).to_hdf(path, key="table", format="table")
        from collections import Counter

        skipped: Counter[str] = Counter()
        back = list(toptagging.iter_jets(path, chunk_size=chunk, skipped=skipped))
    exp = non_empty(jets)
    exp.charge = np.zeros_like(exp.charge)
    exp.type_id = np.zeros_like(exp.type_id)
    if len(exp) == 0:
        assert back == []
    else:
        assert_same(ConstituentChunk.concat(back), exp)
    assert skipped.get("zero_particles", 0) == int((jets.counts == 0).sum())


@SETTINGS
@given(jets=jagged_jets(n_classes=len(JETCLASS_CLASSES)), chunk=st.integers(1, 5))
def test_jetclass_root_round_trip(jets: ConstituentChunk, chunk: int) -> None:
    import awkward as ak
    import uproot

    from colliderfm.data.readers import jetclass

    branches = {
        "part_px": jets.px,
        "part_py": jets.py,
        "part_pz": jets.pz,
        "part_energy": jets.energy,
        "part_charge": jets.charge.astype(np.float32),
        **dict(zip(FLAGS, jets.flags, strict=True)),  # type: ignore[attr-defined]
    }
    tree = {k: ak.unflatten(v, jets.counts) for k, v in branches.items()}
    for k in ("jet_pt", "jet_eta", "jet_phi", "jet_energy"):
        tree[k] = jets.jet[k]
    tree["jet_sdmass"] = jets.jet["jet_mass"]
    for i, cls in enumerate(JETCLASS_CLASSES):
        tree[f"label_{cls}"] = jets.label == i
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "j.root"
        with uproot.recreate(path) as f:
            f["tree"] = tree
        back = list(jetclass.iter_jets(path, chunk_size=chunk))
    exp = non_empty(jets)
    if len(exp) == 0:
        assert back == []
        return
    got = ConstituentChunk.concat(back)
    assert_same(got, exp)
    for k in JET_SCALARS:
        np.testing.assert_array_equal(got.jet[k], exp.jet[k], err_msg=k)


@settings(max_examples=30, deadline=None)
@given(jets=jagged_jets(allow_empty=True, max_particles=40), slots=st.integers(1, 12))
def test_pad_chunk_keeps_the_leading_particles(jets: ConstituentChunk, slots: int) -> None:
    from colliderfm.data.stream import pad_chunk

    padded = pad_chunk(jets, slots)
    np.testing.assert_array_equal(padded.counts, np.minimum(jets.counts, slots))
    for j in range(len(jets)):
        s, e, k = jets.offsets[j], jets.offsets[j + 1], int(padded.counts[j])
        pt = np.hypot(jets.px[s:e], jets.py[s:e])
        got = np.hypot(padded.vectors[j, :k, 0], padded.vectors[j, :k, 1])
        np.testing.assert_array_equal(got, np.sort(pt)[::-1][:k])  # leading k, pT-descending
        assert (padded.vectors[j, k:] == 0).all() and (padded.type_id[j, k:] == 0).all()
        # the kept particles are whole particles of this jet (all four components together)
        rows = {tuple(r) for r in np.stack([jets.px, jets.py, jets.pz, jets.energy], 1)[s:e]}
        assert all(tuple(v) in rows for v in padded.vectors[j, :k])
