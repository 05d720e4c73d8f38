# `make repro`: set up .venv and run the whole DVC pipeline; `make test`: set up and run the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Nothing here may reach the network at run time (see README, "Offline by design").
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# dvc.yaml runs `python stages/...`: that must be this environment's python
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro lint browser test bench review share clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, by exact version, so no resolver picks another build
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

repro: setup
	$(BIN)/dvc repro

lint: setup
	$(BIN)/ruff check ich stages tests bench experiments tools
	$(BIN)/ruff format --check ich stages tests bench experiments tools

# A real Chromium renders the report page in tests/test_predict.py (Debian's package; the test
# skips, saying why, only where it cannot be installed)
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 || \
	  (sudo -n apt-get update -qq && sudo -n apt-get install -y -qq chromium) >/dev/null 2>&1 || \
	  echo "chromium could not be installed: the report screenshot test will skip"

test: lint browser
	$(BIN)/python -m pytest

# params diff, metrics diff (printed, and review/review.md) and a self-contained plots page
# (review/plots.html) of the workspace against BASE
BASE ?= main
review: setup
	$(BIN)/python -m tools.review --base $(BASE) --out review

# dvc push --run-cache, plus the outputs of runs that it leaves behind (tools/share.py)
share: setup
	$(BIN)/python -m tools.share

bench: setup
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/convert_speed.py
	$(BIN)/python bench/predict.py

clean:
	rm -rf $(VENV) data .dvc/cache .dvc/tmp
