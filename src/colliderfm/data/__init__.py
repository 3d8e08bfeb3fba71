"""Data: generation, readers for foreign formats, canonical shards, features and streaming."""
