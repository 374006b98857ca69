"""Scene-sketch labelling in the window: the labelling controller, its undoable edits and label
exports, the labels model, the overlay and the panel."""
