# langscene: the two commands a newcomer runs are `make demo` and `make test`; both set up first.
VENV := .venv
PY := $(VENV)/bin/python
export TORCH_EXTENSIONS_DIR := $(CURDIR)/build/torch_extensions
# Test and demo processes discover DDS peers on this machine only.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
# Idle OpenMP threads sleep instead of spinning: on a small shared CPU spinning torch threads made the
# CPU rasterizer up to 7x slower (8.8 s vs 1.2 s per forward+backward at load 6 on 2 cores).
export OMP_WAIT_POLICY ?= PASSIVE
# numpy's BLAS (OpenBLAS) single-threaded, as `langscene` sets it: its matrices are small here and its
# spinning threads doubled a query's CPU time for the same wall time (query_core_200k).
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: setup test test-fast demo bench soak clean

setup:
	@bash scripts/setup.sh

test: setup
	@bash scripts/run_tests.sh

# The suite without tests marked slow (for quick iterations while developing).
test-fast: setup
	@bash scripts/run_tests.sh -m "not slow"

demo: setup
	$(PY) -m langscene_ros.cli demo --json build/demo.json

bench: setup
	@mkdir -p build
	@for b in bench/*.py; do $(PY) $$b || exit 1; done | tee build/bench.jsonl

# The engine under a 10-minute 30 Hz 640x480 RGB-D stream: memory and image accounting (build/soak.json).
soak: setup
	@mkdir -p build
	$(PY) scripts/soak.py --duration 600 --out build/soak.json

clean:
	rm -rf build $(VENV)
