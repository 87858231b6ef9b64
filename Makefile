# `make run`: a demo service on 127.0.0.1:8000 (`make run PORT=8080 HOST=0.0.0.0` elsewhere).
# `make test`: the test suite.  Both create .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml clients/python/pyproject.toml | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_CPAS ?= $(shell sed -n 's/.*cpas: *"\([0-9.]*\)".*/\1/p' seed/demo.yaml | head -n1)
export AUTHZ_DATABASE_URL ?= sqlite:///$(CURDIR)/var/authz.sqlite3

AXE := $(VENV)/node/node_modules/axe-core/axe.min.js
AXE_VERSION := 4.14.1

.PHONY: venv run test lint typecheck check clean

$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]" -e "clients/python[flask,dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

# axe-core, the accessibility engine the browser tests inject into Chromium (tests/web/test_screens.py)
$(AXE):
	npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix $(VENV)/node axe-core@$(AXE_VERSION)

run: venv
	$(BIN)/authz-service init-db
	$(BIN)/authz-service seed-demo
	@echo "demo-password" | $(BIN)/authz-service create-admin --username demo --cpas $(DEMO_CPAS) --if-missing
	@echo "Admin web UI: http://$(HOST):$(PORT)/ui  (sign in as demo / demo-password)"
	@$(BIN)/authz-service create-api-key --name demo --scopes enforce,users,admin --cpas $(DEMO_CPAS)
	@echo "Try: curl -s -H \"Authorization: Bearer <the key above>\" -H 'Content-Type: application/json' \\"
	@echo "       -d '{\"cpas\": \"$(DEMO_CPAS)\", \"user\": \"85073003328\", \"function\": \"dossier.search\"}' http://$(HOST):$(PORT)/enforce"
	$(BIN)/authz-service serve --host $(HOST) --port $(PORT)

test: venv $(AXE)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && { echo "no tests ran"; exit 1; }; exit $$rc
	cd clients/python && ../../$(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check authz_service tests benchmarks clients/python

typecheck: venv
	$(BIN)/mypy
	$(BIN)/mypy --strict clients/python/src

check: lint typecheck test

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

.PHONY: bench
bench: venv  ## benchmarks/run.py: table on stdout, JSON in benchmarks/results/latest.json
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/python benchmarks/run.py
