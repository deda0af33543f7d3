# The two commands of the README: `make app` and `make test`. Both install into .venv on first use.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

FLOOR := .venv-floor

.PHONY: app test test-floor bench

# torch's CPU build first (this machine keeps 2.13.0 on disk): pyproject.toml declares a range, which alone could
# pull a CUDA build of several GB.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(VENV)/bin/pip install 'torch==2.13.0'
	$(VENV)/bin/pip install -e '.[test,browser,generation,trl]' 'torch==2.13.0'
	touch $(STAMP)

app: $(STAMP)
	test -f store/demo.duckdb || $(VENV)/bin/t3vis demo
	$(VENV)/bin/streamlit run streamlit_app.py

test: $(STAMP)
	$(VENV)/bin/pytest

# The lowest versions pyproject.toml declares (uv's lowest-direct resolution; torch stays the CPU build), then the
# unit and integration tests on them: the floors the project declares are the ones it is tested on.
test-floor:
	test -x $(FLOOR)/bin/python || $(PYTHON) -m venv $(FLOOR)
	$(FLOOR)/bin/pip install -q --upgrade pip uv
	$(FLOOR)/bin/pip install -q 'torch==2.13.0'
	$(FLOOR)/bin/uv pip install --python $(FLOOR)/bin/python --resolution lowest-direct \
		--override .ci/torch-override.txt -e '.[test,browser]'
	$(FLOOR)/bin/pytest -m "unit or integration" -p no:cacheprovider

bench: $(STAMP)
	for b in ingest dynamics sst2_datamap label_noise app heads faithfulness sql summarization ner generation families projection_scale scale browser_floor hosting; do $(VENV)/bin/python bench/$$b.py || exit 1; done
