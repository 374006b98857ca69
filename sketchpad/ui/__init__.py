"""Qt widgets: the main window, the canvas and its tools."""
