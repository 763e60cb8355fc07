# The two commands a newcomer needs:
#   make demo   generate, simulate and check the default config (configs/os_8x8.yaml), then
#               inject 400 soft errors into it and write the ISO 26262 report (HTML); then run
#               one image through the whole trained tiny MoE-ViT on its generated accelerator
#               (configs/moevit/accel_tiny.yaml), every operator checked against the golden
#   make test   run the whole test suite
# Both create or refresh .venv from pyproject.toml first (a no-op when it is up to date).

PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed
BIN    := $(VENV)/bin
DEMO_CONFIG ?= configs/os_8x8.yaml
DEMO_CAMPAIGN ?= configs/campaigns/os_8x8_demo.yaml
DEMO_DB     := build/campaigns/os_8x8_demo.sqlite
DEMO_REPORT := build/campaigns/os_8x8_demo.html
DEMO_ACCEL  ?= configs/moevit/accel_tiny.yaml
# Two workers on CI's two cores; loadgroup keeps each config's RTL tests on one worker,
# so every Verilator model is built once.
PYTEST_ARGS ?= -n 2 --dist loadgroup

.PHONY: demo test venv sysdeps browser clean

demo: $(STAMP)
	$(BIN)/npuforge generate $(DEMO_CONFIG) -o build/demo --lint
	$(BIN)/npuforge sim $(DEMO_CONFIG)
	@# A fresh campaign each time: a database of an older design would be refused, not resumed.
	rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	$(BIN)/npuforge inject $(DEMO_CAMPAIGN) --db $(DEMO_DB)
	$(BIN)/npuforge report $(DEMO_DB) --html $(DEMO_REPORT)
	@# The quick harness build: a few minutes to compile, then the image in under a minute.
	$(BIN)/npuforge run $(DEMO_ACCEL) --ops network --harness quick

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

venv: $(STAMP)

# C++ toolchain for Verilator models, Yosys for `npuforge synth`, and venv support;
# installed with apt-get only if missing.
sysdeps:
	@missing=""; \
	for tool in make g++ perl yosys; do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	$(PYTHON) -c "import venv, ensurepip" >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  pkgs=$$(echo "$$missing" | sed 's/g++/g++ make/'); \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q $$pkgs; \
	fi

# Headless Chromium for tests/test_html_report.py (the HTML report checked in a browser, driven by
# Playwright from the dev extra, which uses this chromium: Playwright's own browser download is
# never run); only `make test` needs it. Without apt-get the browser test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing system packages: chromium"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; } \
	    || echo "chromium could not be installed: tests/test_html_report.py will skip its browser test"; }

$(STAMP): pyproject.toml | sysdeps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf build generated .pytest_cache
