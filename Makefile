# Two commands on a fresh machine: `make run` and `make test`. Both create .venv/ if missing
# and install the project into it (pinned by constraints.txt), then do their job.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.releo-installed
PIP_FLAGS ?= --disable-pip-version-check --no-input

.PHONY: install run test test-fast constraints schema clean leaderboard

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned, in its own command: the CPU build on this disk is picked up and no
# other package can drag in a CUDA build (see docs/install.md).
$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install $(PIP_FLAGS) -q -c constraints.txt "torch==2.13.0"
	$(PY) -m pip install $(PIP_FLAGS) -q -c constraints.txt -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

# The main job on the embedded default data: ALISE (MALICE S2 branch) on the simulated `lai`
# task (see README). Its weights come from $RELEO_WEIGHTS_DIR (../shared/weights when this
# checkout has it), else the user cache; `weights fetch` downloads them once (sha256-checked)
# when neither has them, and does nothing when they are already there.
SHARED_WEIGHTS := $(wildcard ../shared/weights)
RUN_ENV := $(if $(and $(SHARED_WEIGHTS),$(if $(RELEO_WEIGHTS_DIR),,1)),RELEO_WEIGHTS_DIR=$(abspath $(SHARED_WEIGHTS)),)
run: $(STAMP)
	$(RUN_ENV) $(VENV)/bin/releo-bench weights fetch alise
	$(RUN_ENV) $(VENV)/bin/releo-bench run --model alise --task lai --seeds 3

test: $(STAMP)
	$(VENV)/bin/pytest -q -p no:cacheprovider

constraints: $(STAMP)
	{ head -2 constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^releo' | sed 's/^torch==\(.*\)+cpu/torch==\1/'; } > constraints.txt.new && mv constraints.txt.new constraints.txt

schema: $(STAMP)
	$(VENV)/bin/releo-bench schema --output docs/results.schema.json

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# The published leaderboard/ and the CI baseline: the ci-fast suite (weight-free baselines on
# mock and simulated tasks, 2 seeds) run from scratch, then rendered in every format.
# Deterministic: rerunning it on this machine rewrites the same numbers.
leaderboard: $(STAMP)
	rm -rf runs/leaderboard-suite
	$(VENV)/bin/releo-bench suite run ci-fast --output runs/leaderboard-suite --tracking-uri none
	for fmt in json md csv html; do \
	  $(VENV)/bin/releo-bench leaderboard --results runs/leaderboard-suite/ci-fast --suite ci-fast \
	    --format $$fmt --out leaderboard || exit 1; \
	done
	cp leaderboard/leaderboard.json leaderboard/baseline.json
