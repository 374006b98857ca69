"""The drawing canvas: the view, its tools, toolbar and actions, the document with its undo
history, painting strokes, and the clipboard."""
