"""The canvas with its toolbar icons, in a light or a dark palette, and a tooltip showing.

Run on a (virtual) X display, like ``packaging/screenshot.py``, whose sketch and helpers it
uses (the same temporary SKETCHPAD_HOME and QSettings). ``--dark`` asks Qt for the dark
colour scheme (Fusion style), as a system in dark mode would; the icons are drawn in the
palette's text colour either way.

Usage: python packaging/screenshot_icons.py [--dark] [--shortcuts] [OUTPUT.png]
   (default resources/screenshots/canvas-icons.png, or canvas-icons-dark.png with --dark)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import screenshot as shot  # noqa: E402  (sets SKETCHPAD_HOME first)
from PySide6.QtCore import QPointF, QSettings, Qt  # noqa: E402
from PySide6.QtGui import QPalette  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication, QToolTip  # noqa: E402

from sketchpad.ui.app import app_icon, set_application_names  # noqa: E402
from sketchpad.ui.preferences_dialog import dark_palette  # noqa: E402


def main(argv: list[str]) -> int:
    dark = "--dark" in argv
    shortcuts = "--shortcuts" in argv
    rest = [a for a in argv[1:] if not a.startswith("--")]
    name = "canvas-icons-dark.png" if dark else "canvas-icons.png"
    out = Path(rest[0]) if rest else shot.ROOT / "resources" / "screenshots" / name
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(
        QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(Path(shot.HOME) / "qsettings")
    )
    set_application_names()
    app = QApplication([argv[0]])
    app.setStyle("Fusion")
    app.styleHints().setColorScheme(Qt.ColorScheme.Dark if dark else Qt.ColorScheme.Light)
    if dark and app.palette().color(QPalette.ColorRole.Window).lightness() > 128:
        app.setPalette(dark_palette())  # no platform theme (bare X): say it ourselves
    app.setWindowIcon(app_icon())

    from sketchpad.ui.main_window import MainWindow

    window = MainWindow()
    window.resize(*shot.WINDOW_SIZE)
    window.move(0, 0)
    window.show()
    QTest.qWaitForWindowExposed(window)
    QTest.qWait(200)
    canvas = window.canvas
    canvas.fit_to_view()
    QTest.qWait(100)
    for pts in shot.house_and_sun():
        shot.draw_stroke(canvas, pts)
        app.processEvents()
    lasso = canvas.tool_actions()["lasso"]
    lasso.trigger()
    shot.draw_stroke(canvas, shot.arc(640, 130, 105, 100, -90, 275, n=50))
    QTest.qWait(200)
    if shortcuts:
        dialog = window.show_shortcuts()
        dialog.move(window.x() + 380, window.y() + 90)
        dialog.filter_edit.setText("")
        QTest.qWaitForWindowExposed(dialog)
    else:
        # The lasso's tooltip, as hovering shows it.
        button = window.toolbar.widgetForAction(lasso)
        QTest.mouseMove(button)
        QTest.qWait(1500)
        if not QToolTip.isVisible():
            pos = button.mapToGlobal(button.rect().bottomLeft()) + QPointF(8, 6).toPoint()
            QToolTip.showText(pos, lasso.toolTip(), button)
    QTest.qWait(400)
    ok = shot.save_shot(window, out)
    window.document.undo_stack.setClean()
    window.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
