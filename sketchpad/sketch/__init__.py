"""Sketches: strokes, geometry, rasterising and file formats (numpy only, no Qt, no torch)."""

from .model import Sketch, Stroke

__all__ = ["Sketch", "Stroke"]
