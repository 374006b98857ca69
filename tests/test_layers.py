"""Layer contract (DESIGN §2): the headless layers never import Qt, imports point down the
layers (the engine may import Qt but never the UI), and the CLI's help does not pull in Qt or
torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "sketchpad"
HEADLESS = ["sketch", "vision", "search", "gallery", "train", "workspace", "commands"]
FORBIDDEN = ("PySide6", "shiboken6", "qasync")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "sketchpad":  # from sketchpad import ui
                found += [(node.lineno, f"sketchpad.{a.name}") for a in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            if node.args and isinstance(node.args[0], ast.Constant):
                found.append((node.lineno, str(node.args[0].value)))
    return found


def _headless_files() -> list[Path]:
    files = [p for layer in HEADLESS if (PKG / layer).is_dir() for p in (PKG / layer).rglob("*.py")]
    return files + [PKG / "atomic.py", PKG / "paths.py", PKG / "logs.py", PKG / "cli.py"]


@pytest.mark.parametrize("path", _headless_files(), ids=lambda p: str(p.relative_to(PKG)))
def test_headless_modules_do_not_import_qt(path: Path) -> None:
    bad = [(ln, m) for ln, m in _imports(path) if m.split(".")[0] in FORBIDDEN]
    assert not bad, f"{path} imports Qt at line(s) {bad}: move that code to engine/ or ui/"


#: Layer → the sketchpad layers it must not import (DESIGN §2: sketch ← vision ← search ←
#: gallery ← train ← engine ← ui; ``workspace`` holds the window's Qt-free parts, used only by
#: ui; commands are headless fronts). ``cli.py`` may import any layer.
UPWARD = {
    "sketch": ("vision", "search", "gallery", "train", "workspace", "engine", "ui", "commands"),
    "vision": ("search", "gallery", "train", "workspace", "engine", "ui", "commands"),
    "search": ("gallery", "train", "workspace", "engine", "ui", "commands"),
    "gallery": ("train", "workspace", "engine", "ui", "commands"),
    "train": ("workspace", "engine", "ui", "commands"),
    "workspace": ("engine", "ui", "commands"),  # the window's Qt-free parts, below ui
    "commands": ("workspace", "engine", "ui"),
    "engine": ("workspace", "ui", "commands"),
}


def _layer_files() -> list[tuple[str, Path]]:
    return [
        (layer, p)
        for layer in UPWARD
        if (PKG / layer).is_dir()
        for p in sorted((PKG / layer).rglob("*.py"))
    ]


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "sketchpad" else None


@pytest.mark.parametrize(
    ("layer", "path"),
    _layer_files(),
    ids=lambda v: str(v.relative_to(PKG)) if isinstance(v, Path) else v,
)
def test_imports_point_down_the_layers(layer: str, path: Path) -> None:
    bad = [(ln, m) for ln, m in _imports(path) if _layer_of(m) in UPWARD[layer]]
    assert not bad, f"{path} ({layer}) imports a higher layer at line(s) {bad}"


def test_the_engine_layer_is_checked() -> None:
    """The engine is Qt's first layer: it may import PySide6 (it does), never ``ui``."""
    engine = [p for layer, p in _layer_files() if layer == "engine"]
    assert engine, "sketchpad/engine is missing"
    assert any(m.startswith("PySide6") for p in engine for _, m in _imports(p))
    assert not any(p in _headless_files() for p in engine)


def test_layer_contract_detects_an_upward_import(tmp_path: Path) -> None:
    f = tmp_path / "bad.py"
    f.write_text(
        "from sketchpad.ui.canvas.canvas import Canvas\nimport sketchpad.engine.client\n"
        "from sketchpad import ui\n"
    )
    found = [layer for _, m in _imports(f) if (layer := _layer_of(m))]
    assert found == ["ui", "engine", "ui"]
    assert all(layer in UPWARD["gallery"] for layer in found)


def test_contract_detects_a_violation(tmp_path: Path) -> None:
    f = tmp_path / "bad.py"
    f.write_text("import os\nfrom PySide6.QtCore import QObject\n")
    assert (2, "PySide6.QtCore") in _imports(f)


def _headless_modules() -> list[str]:
    return [
        "sketchpad." + ".".join(p.relative_to(PKG).with_suffix("").parts).removesuffix(".__init__")
        for p in _headless_files()
    ]


def _loaded_after_import(modules: list[str], roots: tuple[str, ...]) -> str:
    code = (
        "import sys, importlib\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {roots!r}]\n"
        "print(sorted(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_headless_packages_import_without_qt_loaded() -> None:
    """Nor Ray: the cluster modules import it when a cluster run starts (an optional extra)."""
    assert _loaded_after_import(_headless_modules(), ("PySide6", "shiboken6", "ray")) == "[]"


def test_sketch_layer_and_command_fronts_do_not_load_torch() -> None:
    """Reading sketches and parsing the command line stay light: torch loads only when a
    command needs a model."""
    light = [
        m
        for m in _headless_modules()
        if m.split(".")[1] in ("sketch", "commands", "atomic", "paths", "logs", "cli")
    ]
    assert any(m.startswith("sketchpad.commands.") for m in light)
    assert _loaded_after_import(light, ("PySide6", "torch")) == "[]"


def test_help_lists_headless_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sketchpad", "--help"], capture_output=True, text=True, check=True
    )
    assert "convert" in out.stdout and "bench" in out.stdout
