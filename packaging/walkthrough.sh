#!/usr/bin/env bash
# A scripted walkthrough of the real window on a virtual X display, driven with real X events
# (xdotool): the canvas stays put over 20 pen-ups with a narrow gallery and while indexing
# (zoom values printed), strokes land where drawn, Space held pans, and after Cancel on the
# indexing footer the tool keys still work. Screenshots of each step go to OUT_DIR.
#
# Debian/Ubuntu packages needed (installed here when run as root and missing):
#   xvfb xdotool libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0
#   libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 libxkbcommon-x11-0
#   libegl1 libgl1 libfontconfig1 libdbus-1-3
#
# Usage: bash packaging/walkthrough.sh [OUT_DIR]   (default build/walkthrough)
#        WALKTHROUGH_SCRIPT=packaging/match_walkthrough.py bash packaging/walkthrough.sh [OUT_DIR]
#        (Match Points in the large view, issue 20 item 4)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-build/walkthrough}"

PACKAGES=(xvfb xdotool libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0
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
            exit 1
        fi
    fi
fi

PY="${PYTHON:-.venv/bin/python}"
[[ -x "$PY" ]] || PY=python3

# A free display number, then Xvfb on it (stopped on exit).
n=99
while [[ -e "/tmp/.X11-unix/X$n" || -e "/tmp/.X$n-lock" ]]; do n=$((n + 1)); done
Xvfb ":$n" -screen 0 1400x900x24 -nolisten tcp >/dev/null 2>&1 &
XVFB_PID=$!
trap 'kill "$XVFB_PID" 2>/dev/null || true' EXIT
for _ in $(seq 50); do [[ -e "/tmp/.X11-unix/X$n" ]] && break; sleep 0.1; done

DISPLAY=":$n" QT_QPA_PLATFORM=xcb PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" \
    "$PY" "${WALKTHROUGH_SCRIPT:-packaging/walkthrough.py}" "$OUT"
