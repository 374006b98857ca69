#!/usr/bin/env bash
# Take resources/screenshots/*.png: the real main window with a drawn sketch (canvas.png,
# labelling.png), with a photo folder and live overlays (gallery.png) and the Model Manager
# (model-manager.png), rendered on a virtual X display (Xvfb) with Qt's xcb platform.
#
# Debian/Ubuntu packages needed (installed here when run as root and missing):
#   xvfb xauth                       the virtual display and xvfb-run
#   libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0
#   libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 libxkbcommon-x11-0
#   libegl1 libgl1 libfontconfig1 libdbus-1-3       what Qt's xcb plugin loads
#
# Usage: bash packaging/screenshot.sh [OUTPUT.png]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(xvfb xauth libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0
          libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 libxkbcommon-x11-0
          libegl1 libgl1 libfontconfig1 libdbus-1-3)

if command -v dpkg-query >/dev/null 2>&1; then
    missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            echo "Installing: ${missing[*]}"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
        else
            echo "Missing packages: ${missing[*]}" >&2
            echo "Install them with: sudo apt-get install ${missing[*]}" >&2
        fi
    fi
fi

if ! command -v xvfb-run >/dev/null 2>&1; then
    echo "xvfb-run is not installed. Install it with: sudo apt-get install xvfb xauth" >&2
    exit 1
fi

PYTHON=${PYTHON:-.venv/bin/python}
[[ -x $PYTHON ]] || PYTHON=python3
# xcb, not offscreen: the screenshot is taken from the (virtual) screen.
unset QT_QPA_PLATFORM
xvfb-run -a -s "-screen 0 1400x900x24" "$PYTHON" packaging/screenshot.py "$@"
# The toolbar icons and a tooltip, light and dark: canvas-icons.png, canvas-icons-dark.png.
xvfb-run -a -s "-screen 0 1400x900x24" "$PYTHON" packaging/screenshot_icons.py
xvfb-run -a -s "-screen 0 1400x900x24" "$PYTHON" packaging/screenshot_icons.py --dark
# Photo search: gallery.png and model-manager.png (a stand-in model: see the script).
exec xvfb-run -a -s "-screen 0 1400x900x24" "$PYTHON" packaging/screenshot_photos.py
