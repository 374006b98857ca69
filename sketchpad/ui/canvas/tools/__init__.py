"""Canvas tools: one class per tool, driven with pointer samples in canvas coordinates.

``create_tool(name, host)`` builds a tool by its :data:`ToolName`.
"""

from __future__ import annotations

from sketchpad.ui.canvas.tools.base import (
    LASSO_MODES,
    PARTITION_N_RANGE,
    TOOL_NAMES,
    TOOL_TEXT,
    PointerInput,
    Tool,
    ToolHost,
    ToolName,
    ToolSettings,
)
from sketchpad.ui.canvas.tools.erasers import PartialEraserTool, StrokeEraserTool
from sketchpad.ui.canvas.tools.lasso import LassoTool
from sketchpad.ui.canvas.tools.pan import PanTool
from sketchpad.ui.canvas.tools.partition import PartitionTool
from sketchpad.ui.canvas.tools.pen import PenTool
from sketchpad.ui.canvas.tools.relabel import RelabelTool

TOOL_CLASSES: dict[ToolName, type[Tool]] = {
    "pen": PenTool,
    "eraser": StrokeEraserTool,
    "partial_eraser": PartialEraserTool,
    "lasso": LassoTool,
    "partition": PartitionTool,
    "relabel": RelabelTool,
    "pan": PanTool,
}


def create_tool(name: ToolName, host: ToolHost) -> Tool:
    """A new tool of kind ``name`` working for ``host``."""
    try:
        cls = TOOL_CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown tool {name!r}; choose one of {', '.join(TOOL_NAMES)}") from None
    return cls(host)


__all__ = [
    "LASSO_MODES",
    "PARTITION_N_RANGE",
    "TOOL_CLASSES",
    "TOOL_NAMES",
    "TOOL_TEXT",
    "LassoTool",
    "PanTool",
    "PartialEraserTool",
    "PartitionTool",
    "PenTool",
    "PointerInput",
    "RelabelTool",
    "StrokeEraserTool",
    "Tool",
    "ToolHost",
    "ToolName",
    "ToolSettings",
    "create_tool",
]
