# Two commands on a fresh machine: `make run` and `make test`. Both create .venv/ if missing
# and install the project into it (pinned by constraints.txt), then do their job.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.releo-installed
PIP_FLAGS ?= --disable-pip-version-check --no-input

.PHONY: install run test test-fast constraints schema clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned, in its own command: the CPU build on this disk is picked up and no
# other package can drag in a CUDA build (see docs/install.md).
$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install $(PIP_FLAGS) -q -c constraints.txt "torch==2.13.0"
	$(PY) -m pip install $(PIP_FLAGS) -q -c constraints.txt -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

# The main job on the embedded default data: the `raw` baseline on the simulated `lai` task
# (see README); pretrained encoders replace `raw` here once they land.
run: $(STAMP)
	$(VENV)/bin/releo-bench run --model raw --task lai --seeds 3

test: $(STAMP)
	$(VENV)/bin/pytest -q -p no:cacheprovider

constraints: $(STAMP)
	{ head -2 constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^releo' | sed 's/^torch==\(.*\)+cpu/torch==\1/'; } > constraints.txt.new && mv constraints.txt.new constraints.txt

schema: $(STAMP)
	$(VENV)/bin/releo-bench schema --output docs/results.schema.json

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
