"""The desktop workspace's Qt-free parts: preferences, recent files, the canvas's view
transform, the scene-label table's format, and the start-up benchmark.

Only ``ui`` (and the CLI) import this package; it imports the headless layers below it and
never Qt, so each piece is tested without a display.
"""
