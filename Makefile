# The README's commands. `make quickstart` and `make test` work on a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
QS := .quickstart

.PHONY: quickstart test bench lint clean

$(BIN)/colliderfm: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[gen,root,onnx,dev]"
	touch $(BIN)/colliderfm

quickstart: $(BIN)/colliderfm
	bash scripts/quickstart.sh

test: $(BIN)/colliderfm
	$(BIN)/python -m pytest -q -p no:cacheprovider

# benchmarks/conftest.py collects bench_*.py; pytest exits 5 when no benchmark ran: a failure
bench: $(BIN)/colliderfm
	@$(BIN)/python -m pytest -q -m bench benchmarks -s; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "bench: no benchmark ran (pytest exit 5)" >&2; fi; exit $$rc

lint: $(BIN)/colliderfm
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(QS) build dist src/*.egg-info
