# The two commands a newcomer needs: `make demo` and `make test`.
# Each builds its own virtual environment from nothing (.venv), so nothing relies on
# what happens to be installed on the machine.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

DEMO   := examples/beijing_amsterdam/study.yaml
DEMO_SITES := beijing amsterdam hamburg barcelona

.PHONY: demo quickstart test lint bench report-png clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "safeflow needs Python 3.11 ($(PYTHON) not found); set PYTHON=/path/to/python3.11"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# The main job: the Beijing-Amsterdam trial (synthetic, COLOR IV-like) on the embedded
# local federation. Every site approves the study file's hash (two-stage release), then
# the whole study runs and writes results, certificates, audit checkpoint and report.
demo: $(STAMP)
	@for s in $(DEMO_SITES); do $(VENV)/bin/safeflow study approve $(DEMO) --site $$s || exit 1; done
	$(VENV)/bin/safeflow run $(DEMO)

quickstart: $(STAMP)
	$(PY) examples/quickstart.py

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/secure_sum.py

report-png: $(STAMP)
	bash scripts/install_chromium.sh
	$(PY) scripts/report_screenshot.py

clean:
	rm -rf $(VENV) build dist .pytest_cache
