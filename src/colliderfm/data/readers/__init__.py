"""Readers: canonical Parquet shards and the foreign formats physicists already have."""

from colliderfm.data.readers.dispatch import detect_format, iter_jet_chunks

__all__ = ["detect_format", "iter_jet_chunks"]
