"""Exporting trained models for inference outside colliderfm (ONNX)."""

from __future__ import annotations

from colliderfm.export.onnx import ExportError, export_onnx

__all__ = ["ExportError", "export_onnx"]
