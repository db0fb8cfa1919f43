# Bootstraps everything from a bare Python 3.11: `make demo` and `make test` create .venv first.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFORMANCE := ../shared/conformance/check_contract.py

.PHONY: demo test conformance proto bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/offerbandit demo

# pytest exit code 5 means "no tests collected": that is a broken suite, not a pass.
# Most tests wait (fsyncs, servers, subprocesses, polls), so more workers than the 2 cores pay (4: 905 s -> 615 s
# on a shared, loaded machine). --dist loadgroup deals one test at a time in collection order (the slow ones
# first: tests/conftest.py); it would keep an xdist_group on one worker, but pytest 9.2 ignores xdist 3.8's
# renamed node ids, so no test relies on one (the bench scripts run once under lock files). TEST_WORKERS=0: serial.
TEST_WORKERS ?= 4
test: $(STAMP)
	@$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests: failing" >&2; exit 1; fi; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi
	@$(MAKE) --no-print-directory conformance

conformance: $(STAMP)
	@if [ -f $(CONFORMANCE) ]; then $(BIN)/python $(CONFORMANCE); \
	else echo "conformance: $(CONFORMANCE) not found next to this checkout; skipped"; fi

proto: $(STAMP)
	$(BIN)/python scripts/gen_proto.py

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) offerbandit-data .pytest_cache
