"""Sketchpad: draw what you want the computer to find.

Layers (imports point down only; see DESIGN.md §2):
``sketch`` ← ``vision`` ← ``gallery`` ← ``engine`` ← ``ui``; ``train`` sits beside
``gallery``. Only ``engine`` and ``ui`` import Qt.
"""

__version__ = "0.1.0"
