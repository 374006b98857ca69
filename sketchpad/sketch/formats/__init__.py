"""One module per sketch file format; :mod:`sketchpad.sketch.io` dispatches by extension.

Each format module offers ``read_<fmt>(path, index) -> Sketch`` and, where it can be
written, ``encode_<fmt>(sketch, path) -> bytes`` (the caller writes the bytes
atomically); multi-drawing formats also offer ``count_<fmt>(path) -> int``.
Shared limits, the error type and safe reading live in ``_common``.
"""
