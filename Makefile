# gcsearch: `make demo` and `make test` each create .venv and install first, from the committed
# lock of the versions the suite passed on (constraints.txt; pyproject.toml keeps the ranges
# users install from). `make test-latest` installs the newest releases in .venv-latest instead
# and runs the same suite, so a breaking release shows up there first; `make lock` then records
# what it installed as the new lock.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := constraints.txt
LATEST := .venv-latest
PYTEST_ARGS ?=

.PHONY: install demo test test-all test-cluster test-latest lock lint bench reports reports-paper \
	clean data test-deps docs

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The newest releases pyproject.toml allows, in their own venv (never the lock).
$(LATEST)/.installed: pyproject.toml
	test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[dev]'
	touch $@

test-latest: $(LATEST)/.installed data test-deps
	$(LATEST)/bin/ruff check gcsearch tests docs/generate.py
	$(LATEST)/bin/ruff format --check gcsearch tests docs/generate.py
	$(LATEST)/bin/python -m pytest -q $(PYTEST_ARGS)

# After `make test-latest` passes: the versions it ran on become the lock.
lock: $(LATEST)/.installed
	{ echo "# The versions make test and CI install (pip -c): the suite passed on them,"; \
	  echo "# $$(date -u +%F), $$($(LATEST)/bin/python -c 'import platform as p; print(p.system(), p.machine(), "Python", p.python_version())')."; \
	  echo "# Regenerate: make test-latest && make lock (pyproject.toml keeps the ranges)."; \
	  $(LATEST)/bin/python -m pip freeze --exclude-editable; } > $(LOCK)

# Fashion-MNIST from Debian (offline); only attempted as root when missing, never fatal.
data:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1)) || \
		echo "note: could not install dataset-fashion-mnist; fashion-mnist tests will be skipped"; \
	fi

# PostgreSQL (db tests start a throwaway server from it) and shellcheck (runner checks) from
# Debian where missing; never fatal (their tests skip with one line).
test-deps:
	@bash .ci/test-deps.sh

# The quick space end to end (local Ray, SQLite in runs/demo): live progress, the Pareto front and
# ablation tables, and the best block exported to runs/demo/best_block.py.
demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/gcsearch search --space spaces/quick.toml --run-dir runs/demo
	@echo "--- runs/demo/best_block.py (head) ---"
	@head -n 25 runs/demo/best_block.py

test: $(STAMP) data test-deps
	$(BIN)/ruff check gcsearch tests docs/generate.py
	$(BIN)/ruff format --check gcsearch tests docs/generate.py
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-all: $(STAMP) data test-deps
	$(BIN)/python -m pytest -q -m "" $(PYTEST_ARGS)

# A real Ray head + worker on loopback (`ray start`) and searches through --address.
test-cluster: $(STAMP)
	$(BIN)/python -m pytest -q -m cluster $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check gcsearch tests docs/generate.py
	$(BIN)/ruff format --check gcsearch tests docs/generate.py

# reports/: a fresh real run of the demo space (3 seeds, so the tables carry intervals), then its
# Markdown report, plots and results frame, and how far its rung epoch ranks like the last epoch.
REPORT_RUN ?= runs/quick
REPORT_SEEDS ?= 3
reports: $(STAMP)
	rm -rf $(REPORT_RUN)
	rm -f reports/quick.md reports/quick-*.png reports/quick.csv
	$(BIN)/gcsearch search --space spaces/quick.toml --run-dir $(REPORT_RUN) --seeds $(REPORT_SEEDS)
	$(BIN)/gcsearch report $(REPORT_RUN) --md reports/quick.md --csv reports/quick.csv
	$(BIN)/gcsearch analyze fidelity $(REPORT_RUN) --json reports/quick-fidelity.json
	$(BIN)/python docs/generate.py

# README.md and docs/*.md: every figure between <!-- fig ... --> markers and every
# <!-- table ... --> block filled from the committed records (gcsearch/tasks/measured/,
# benchmarks/, reports/). `make test` fails when one differs (tests/test_docs.py runs --check);
# `python docs/generate.py --count` counts the decimal figures still typed by hand.
docs:
	$(PYTHON) docs/generate.py

clean:
	rm -rf $(VENV) $(LATEST) build *.egg-info .pytest_cache

# reports/gcnet-paper*.md: the paper's ablation grid on the long-range tasks (synthetic strip with
# ResNet-20, fashion-pairs and synthetic-graded with ResNet-8; the ratio question on
# synthetic-graded-wide), PAPER_SEEDS seeds per candidate, then `gcsearch resolve` adds seeds to
# the comparisons still open (group-sequential looks up to PAPER_MAX_SEEDS seeds, at most
# PAPER_HOURS wall hours a run), then the fidelity of the cheap budget (epoch PAPER_LOW_EPOCH vs
# the last), the NL Table 1 analysis on the saved weights and the report. Hours on 2 CPU cores
# (see the tasks' measured seconds per trial); `make reports-paper-gcnet-paper-graded` runs one.
PAPER_RUNS = gcnet-paper gcnet-paper-pairs gcnet-paper-graded gcnet-paper-ratio
PAPER_SEEDS ?= 3
PAPER_LOW_EPOCH ?= 3
PAPER_MAX_SEEDS ?= 15
PAPER_HOURS ?= 1.5
reports-paper: $(addprefix reports-paper-,$(PAPER_RUNS))
	$(BIN)/python docs/generate.py

# the fidelity and NL analyses only where the run has per-epoch validation and NL blocks
reports-paper-%: $(STAMP) data
	rm -rf runs/$* reports/$*-fidelity.json reports/$*-nl.json
	$(BIN)/gcsearch search --space spaces/$*.toml --run-dir runs/$* --seeds $(PAPER_SEEDS)
	$(BIN)/gcsearch resolve runs/$* --max-seeds $(PAPER_MAX_SEEDS) --hours $(PAPER_HOURS)
	if grep -q '^validate_every = 1' spaces/$*.toml; then \
		$(BIN)/gcsearch analyze fidelity runs/$* --low-epoch $(PAPER_LOW_EPOCH) \
			--json reports/$*-fidelity.json; fi
	if grep -q '"nl-' spaces/$*.toml; then \
		$(BIN)/gcsearch analyze nl runs/$* --json reports/$*-nl.json; fi
	$(BIN)/gcsearch report runs/$* --md reports/$*.md --csv reports/$*.csv --verdicts \
		$$(test -f reports/$*-fidelity.json && echo --fidelity reports/$*-fidelity.json) \
		$$(test -f reports/$*-nl.json && echo --nl reports/$*-nl.json)
