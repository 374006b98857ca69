"""``python -m sketchpad``: the same as the ``sketchpad`` command."""

import sys

from sketchpad.cli import main

sys.exit(main())
