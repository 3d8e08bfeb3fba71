"""Synthetic collision events for fast unit tests (no generator, no files).

The batches follow the event loader's contract: ``features = event_features(...)`` ``[B, N, 11]``,
``mask [B, N]``, ``labels`` (ttbar = 0, h2hdm = 1, unlabelled = -1), ``weights``, ``vectors
[B, N, 4]`` (px, py, pz, E in GeV; MET with pz = 0 and E = pT), ``charge`` zeros and
``pid = obj_type`` (:class:`~colliderfm.data.schema.ObjectType`, 0 at padding).
"""

from __future__ import annotations

import numpy as np
import torch

from colliderfm.data.features import event_features
from colliderfm.data.schema import Batch, ObjectType

_MASS = {ObjectType.ELECTRON: 0.000511, ObjectType.MUON: 0.1057}


def synthetic_events(
    n: int,
    seed: int = 0,
    max_objects: int = 12,
    labelled: bool = True,
    signal_fraction: float = 0.5,
    shuffle: bool = False,
) -> Batch:
    """Semileptonic-ttbar-like events: 1-2 leptons, 2-6 jets (>= 2 b-jets), one MET.

    Objects are ordered leptons, b-jets, light jets, MET (``shuffle`` permutes the real objects
    of each event instead). Signal events (label 1) are harder (every pT x 1.6), more central
    and have more jets, so a classifier can separate the classes. Leptons are (nearly) massless,
    jets carry a mass of ~10 % (light) or ~15 % (b) of their pT, MET has ``pz = 0, E = pT``.

    Args:
        n: number of events.
        seed: RNG seed.
        max_objects: object slots (at least 9).
        labelled: labels 0/1; False gives -1 everywhere (but the same kinematics).
        signal_fraction: share of signal-like events.
        shuffle: randomise the order of the real objects within each event.

    Returns:
        A padded event :class:`Batch`.
    """
    if max_objects < 9:
        raise ValueError("max_objects must be >= 9 (2 leptons + 6 jets + MET)")
    rng = np.random.default_rng(seed)
    sig = rng.random(n) < signal_fraction  # [n]
    n_lep = rng.integers(1, 3, n)  # [n] 1-2
    n_jet = np.minimum(rng.integers(2, 6, n) + sig * rng.integers(0, 2, n), 6)  # [n] 2-6
    n_b = np.minimum(2 + (rng.random(n) < 0.2), n_jet)  # [n] 2-3
    slot = np.arange(max_objects)[None, :]  # [1, N]
    a, b, c = n_lep[:, None], (n_lep + n_b)[:, None], (n_lep + n_jet)[:, None]
    lepton_type = np.where(rng.random((n, max_objects)) < 0.5, ObjectType.ELECTRON, ObjectType.MUON)
    obj = np.select(
        [slot < a, slot < b, slot < c, slot == c],
        [lepton_type, ObjectType.BJET, ObjectType.JET, ObjectType.MET],
        0,
    ).astype(np.int64)  # [n, N]
    mask = obj > 0
    is_lep = (obj == ObjectType.ELECTRON) | (obj == ObjectType.MUON)
    is_jet = (obj == ObjectType.BJET) | (obj == ObjectType.JET)
    hard = np.where(sig, 1.6, 1.0)[:, None]  # [n, 1]
    pt = np.where(is_lep, 25 + rng.exponential(35, obj.shape), 30 + rng.exponential(55, obj.shape))
    pt = np.where(obj == ObjectType.BJET, pt * 1.2, pt)
    pt = np.where(obj == ObjectType.MET, 15 + rng.exponential(45, obj.shape), pt) * hard
    width = np.where(sig, 1.0, 1.5)[:, None]
    eta = np.clip(rng.normal(0.0, 1.0, obj.shape) * width, -2.5, 2.5)
    eta = np.where(obj == ObjectType.BJET, eta * 0.8, eta)
    eta = np.where(obj == ObjectType.MET, 0.0, eta)
    phi = rng.uniform(-np.pi, np.pi, obj.shape)
    frac = np.where(obj == ObjectType.BJET, 0.15, 0.10) * rng.lognormal(0.0, 0.3, obj.shape)
    m = np.where(is_jet, frac * pt, 0.0)
    m = np.where(obj == ObjectType.ELECTRON, _MASS[ObjectType.ELECTRON], m)
    m = np.where(obj == ObjectType.MUON, _MASS[ObjectType.MUON], m)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + m**2)
    pz = np.where(obj == ObjectType.MET, 0.0, pz)
    e = np.where(obj == ObjectType.MET, pt, e)
    vec = np.stack((px, py, pz, e), -1) * mask[..., None]  # [n, N, 4]
    if shuffle:
        keys = np.where(mask, rng.random(obj.shape), 2.0)
        order = np.argsort(keys, axis=1)
        obj = np.take_along_axis(obj, order, 1)
        mask = np.take_along_axis(mask, order, 1)
        vec = np.take_along_axis(vec, order[..., None], 1)
    vectors = torch.from_numpy(vec.astype(np.float32))
    mask_t = torch.from_numpy(mask)
    obj_t = torch.from_numpy(obj)
    labels = torch.from_numpy(sig.astype(np.int64)) if labelled else torch.full((n,), -1)
    return Batch(
        features=event_features(vectors, mask_t, obj_t),
        mask=mask_t,
        labels=labels,
        weights=torch.ones(n),
        vectors=vectors,
        charge=torch.zeros(n, max_objects),
        type_id=obj_t,
    )


def event_batches(
    n: int, batch_size: int, seed: int = 0, labelled: bool = True, **kw: object
) -> list[Batch]:
    """Several synthetic event batches (e.g. to stand in for a training loader).

    Args:
        n: events in total.
        batch_size: events per batch.
        seed: RNG seed.
        labelled: see :func:`synthetic_events`.
        **kw: passed to :func:`synthetic_events`.

    Returns:
        ``ceil(n / batch_size)`` batches.
    """
    full = synthetic_events(n, seed=seed, labelled=labelled, **kw)  # type: ignore[arg-type]
    out = []
    for s in range(0, n, batch_size):
        sl = slice(s, s + batch_size)
        out.append(
            Batch(
                features=full.features[sl],
                mask=full.mask[sl],
                labels=full.labels[sl],
                weights=full.weights[sl],
                vectors=full.vectors[sl],  # type: ignore[index]
                charge=full.charge[sl],  # type: ignore[index]
                type_id=full.type_id[sl],  # type: ignore[index]
            )
        )
    return out


def write_event_shards(
    out: object,
    n: int = 512,
    seed: int = 0,
    labelled: bool = True,
    rows_per_shard: int = 256,
    classes: list[str] | None = None,
) -> None:
    """Write :func:`synthetic_events` as a canonical event shard directory.

    Args:
        out: target directory.
        n: events.
        seed: RNG seed.
        labelled: ttbar/h2hdm labels (else -1, an unlabelled pretraining set).
        rows_per_shard: events per shard file.
        classes: other class names (labelled only): event ``i`` gets label ``i % len(classes)``.
    """
    from colliderfm.data.shards import ShardWriter, events_table
    from colliderfm.physics import kinematics as K

    b = synthetic_events(n, seed=seed, labelled=labelled)
    v, m = b.vectors[b.mask], b.mask  # [M, 4], [n, N]
    table = events_table(
        m.sum(1).numpy(),
        K.pt(v).numpy(),
        torch.where(b.type_id[m] == ObjectType.MET, 0.0, K.eta(v)).numpy(),
        K.phi(v).numpy(),
        v[:, 3].numpy(),
        b.type_id[m].numpy(),
        b.labels.numpy() if not (labelled and classes) else np.arange(n) % len(classes),
    )
    classes = (classes or ["ttbar", "h2hdm"]) if labelled else []
    with ShardWriter(
        out, "events", classes, {"generator": "synthetic"}, rows_per_shard=rows_per_shard
    ) as w:
        w.write(table)
