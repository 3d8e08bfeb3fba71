"""Every registered reader: detects its own kind of file (and no other), counts, streams."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from colliderfm.data.readers.base import READERS, Reader, reader_for
from colliderfm.data.schema import ConstituentChunk
from colliderfm.errors import DataError

#: Passes the default NanoAOD selection: 1 electron, 2 b-jets, 2 light jets.
GOOD_EVENT = {
    "jets": [
        (80.5, 0.1, 0.2, 10.0, 0.9),
        (60.25, -1.0, 1.0, 8.0, 0.5),
        (45.0, 0.5, -2.0, 5.0, 0.1),
        (30.0, 2.0, 3.0, 4.0, 0.01),
    ],
    "electrons": [(40.0, 0.3, -1.0, 0.000511, 0.01)],
    "met": (35.5, 1.25),
}
#: Fails the selection (no lepton).
NO_LEPTON = {"jets": GOOD_EVENT["jets"], "met": (10.0, 0.0)}


@pytest.fixture
def inputs(
    jetclass_root: Any, toptagging_h5: Any, small_shards: Any, nanoaod: Any, tmp_path: Path
) -> dict[str, Callable[[], tuple[Path, int | None, int, int]]]:
    """Per format: a builder of (path, stored count, rows read, rows skipped)."""

    def jetclass() -> tuple[Path, int | None, int, int]:
        w = jetclass_root(n=12, empty_jets=[3])
        return w.path, 12, int(w.good.sum()), 1

    def toptagging() -> tuple[Path, int | None, int, int]:
        w = toptagging_h5(n=10, slots=8, nan_jets=[1])
        return w.path, 10, int(w.good.sum()), 1

    def parquet() -> tuple[Path, int | None, int, int]:
        return small_shards(n=30, rows_per_shard=10).path, 30, 30, 0

    def nano() -> tuple[Path, int | None, int, int]:
        f = nanoaod(tmp_path / "nano.root", [GOOD_EVENT, NO_LEPTON, GOOD_EVENT])
        return f, None, 2, 1  # the count is known only after the selection

    return {"jetclass": jetclass, "toptagging": toptagging, "parquet": parquet, "nanoaod": nano}


def test_every_registered_reader_has_a_case(inputs: dict[str, Any]) -> None:
    assert sorted(inputs) == READERS.names()


@pytest.mark.parametrize("name", READERS.names())
def test_reader_detects_counts_and_streams(name: str, inputs: dict[str, Any]) -> None:
    path, stored, n_read, n_skipped = inputs[name]()
    reader = READERS.get(name)
    assert isinstance(reader, Reader) and reader.name == name
    assert reader.detect(path)
    assert reader_for(path) is reader
    assert reader_for(path, name) is reader
    assert reader.count(path) == stored
    skipped: Counter[str] = Counter()
    chunks = list(reader.iter_chunks(path, chunk_size=4, skipped=skipped))
    assert all(isinstance(c, ConstituentChunk) and 0 < len(c) <= 4 for c in chunks)
    got = ConstituentChunk.concat(chunks)
    assert len(got) == n_read
    assert sum(skipped.values()) == n_skipped
    np.testing.assert_array_equal(reader.labels(path), got.label)
    assert reader.kind(path) in ("jets", "events")
    assert isinstance(reader.classes(path), list)
    assert reader.schema(path)


@pytest.mark.parametrize("name", READERS.names())
def test_reader_rejects_the_other_formats(name: str, inputs: dict[str, Any]) -> None:
    reader = READERS.get(name)
    for other, build in inputs.items():
        if other != name:
            path = build()[0]
            assert not reader.detect(path), f"{name} claims a {other} input"


def test_unknown_format_name(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="format 'csv' does not hold jets"):
        reader_for(tmp_path, "csv")
