PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DATA ?= .imagegate

.PHONY: install serve sandbox key test check bench clean mutation

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,lint]'
	touch $@

# Serve on the embedded default (SQLite + local disk + the built-in test model).
# The first run creates an admin key (unlimited credits; it may call /admin/v1/) and prints it.
serve: install
	@test -f $(DATA)/imagegate.db || $(BIN)/imagegate keys create --data-dir $(DATA) --name local --admin
	$(BIN)/imagegate serve --host $(HOST) --port $(PORT) --data-dir $(DATA)

# Same, with every catalog model served by a fake of its provider (offline).
sandbox: install
	@test -f $(DATA)/imagegate.db || $(BIN)/imagegate keys create --data-dir $(DATA) --name local --admin
	$(BIN)/imagegate serve --host $(HOST) --port $(PORT) --data-dir $(DATA) --sandbox

key: install
	$(BIN)/imagegate keys create --data-dir $(DATA) --name $${NAME:-local}

# The whole suite twice: on the embedded profile, then on the cluster profile (PostgreSQL with the
# job engine, S3, the provider fakes in a sandbox server); profile-free tests run in the first pass only.
test: install
	$(BIN)/pytest -q -n 2
	IMAGEGATE_TEST_PROFILE=cluster $(BIN)/pytest -q -n 2

# The bar CI enforces: formatting, lint, strict typing, the layering contract, size limits.
check: install
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python scripts/check_sizes.py src/imagegate

# Break the money and security paths one at a time (refunds, credits, signed links, webhook signatures,
# SSRF, keys) in a scratch copy of src/ and fail unless a test catches every break.
mutation: install
	$(BIN)/python scripts/mutation_check.py

bench: install
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
