"""Start Sketchpad from a source checkout: ``python main.py`` (same as ``sketchpad``)."""

import sys

from sketchpad.cli import main

if __name__ == "__main__":
    sys.exit(main())
