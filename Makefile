# Sketchpad — set-up and everyday commands. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test screenshot walkthrough bench-startup clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/sketchpad

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

screenshot: $(STAMP)
	bash packaging/screenshot.sh

# The real window under Xvfb driven by xdotool; screenshots to OUT (default build/walkthrough).
walkthrough: $(STAMP)
	bash packaging/walkthrough.sh $(OUT)

bench-startup: $(STAMP)
	$(BIN)/sketchpad bench startup

clean:
	rm -rf $(VENV) build *.egg-info
