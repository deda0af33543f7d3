# The two commands of the README: `make app` and `make test`. Both install into .venv on first use.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: app test bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(VENV)/bin/pip install -e '.[test]'
	touch $(STAMP)

app: $(STAMP)
	test -f store/demo.duckdb || $(VENV)/bin/t3vis demo
	$(VENV)/bin/streamlit run streamlit_app.py

test: $(STAMP)
	$(VENV)/bin/pytest

bench: $(STAMP)
	for b in ingest dynamics sst2_datamap label_noise app heads faithfulness sql summarization ner families projection_scale scale browser_floor hosting; do $(VENV)/bin/python bench/$$b.py || exit 1; done
