# Everything a new machine needs goes through these targets: nothing is installed by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
TOOLS := .tools
BUF_VERSION := 1.75.0
BUF := $(TOOLS)/node_modules/.bin/buf
PROTOS := $(wildcard proto/notes/v1/*.proto)

.PHONY: install generate check-generated lint run test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(BUF):
	mkdir -p $(TOOLS)
	cd $(TOOLS) && npm install --silent --no-save --no-audit --no-fund @bufbuild/buf@$(BUF_VERSION)

# Code generated from proto/ into DIR (default generated/).
DIR ?= generated
generate: install
	mkdir -p $(DIR)/notes/v1
	$(PY) -m grpc_tools.protoc -I proto --python_out=$(DIR) --pyi_out=$(DIR) \
		--grpc_python_out=$(DIR) $(PROTOS)
	touch $(DIR)/notes/__init__.py $(DIR)/notes/v1/__init__.py

check-generated: install
	rm -rf $(TOOLS)/gen-check && mkdir -p $(TOOLS)/gen-check
	$(MAKE) --no-print-directory generate DIR=$(TOOLS)/gen-check
	diff -r -x __pycache__ generated $(TOOLS)/gen-check
	@echo "generated/ is up to date"

lint: install $(BUF)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd proto && ../$(BUF) lint

run: install
	mkdir -p var
	$(BIN)/notes serve

test: install
	$(BIN)/pytest

bench: install
	$(PY) scripts/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) build *.egg-info
