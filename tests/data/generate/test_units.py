"""Shared generator plumbing: unit seeds depend only on the unit's key."""

from __future__ import annotations

from colliderfm.data.generate.units import derive_seeds, worker_progress


def test_seeds_are_a_function_of_the_key() -> None:
    a = derive_seeds([7, 1, 0, 0], 2)
    assert a == derive_seeds([7, 1, 0, 0], 2)
    assert a != derive_seeds([7, 1, 0, 1], 2) and a != derive_seeds([8, 1, 0, 0], 2)
    pythia, numpy_seed = a
    assert len(pythia) == 2 and all(1 <= s <= 900_000_000 for s in pythia)
    assert isinstance(numpy_seed, int)


def test_no_progress_counter_outside_a_pool() -> None:
    assert worker_progress() is None
