"""The package version (a leaf: checkpoints, manifests and reports record it)."""

__version__ = "0.1.0"
