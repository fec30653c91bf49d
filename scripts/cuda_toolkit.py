"""Find or install the CUDA compiler that mmcv's CUDA ops build with (called by `make setup`).

Prints the environment assignments of mmcv's CUDA build, or nothing:

- nothing on the CPU path: a CPU build of torch, or a CUDA build of torch on a machine where
  torch sees no GPU and ``FORCE_CUDA`` is not 1 (mmcv then builds its CPU ops, as before);
- ``FORCE_CUDA=1`` when a CUDA toolkit is already there (``CUDA_HOME``/``CUDA_PATH`` set, ``nvcc``
  on the PATH, or ``/usr/local/cuda``) whose major version is torch's: torch's extension builder
  finds it;
- otherwise it installs CUDA's compiler from PyPI at the exact version torch's own CUDA libraries
  come from (torch's ``cuda-toolkit==X`` requirement, extras nvcc, cccl, crt, nvvm, cudart),
  gives its runtime library the unversioned name the linker looks for (``libcudart.so``) and
  prints ``FORCE_CUDA=1 CUDA_HOME=<site-packages>/nvidia/cu<major>``.

Usage: python scripts/cuda_toolkit.py   (the venv's python; pip is run with it)
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

EXTRAS = "nvcc,cccl,crt,nvvm,cudart"


def wants_cuda(torch) -> bool:
    return torch.version.cuda is not None and (
        os.environ.get("FORCE_CUDA") == "1" or torch.cuda.is_available())


def system_toolkit() -> Path | None:
    """The CUDA install torch's extension builder would use (same order as torch)."""
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home:
        return Path(home)
    nvcc = shutil.which("nvcc")
    if nvcc:
        return Path(nvcc).resolve().parents[1]
    return Path("/usr/local/cuda") if Path("/usr/local/cuda/bin/nvcc").exists() else None


def nvcc_major(home: Path) -> int | None:
    try:
        out = subprocess.run([str(home / "bin" / "nvcc"), "--version"], capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    m = re.search(r"release (\d+)\.", out)
    return int(m.group(1)) if m else None


def toolkit_requirement() -> str | None:
    """torch's pin of NVIDIA's ``cuda-toolkit`` meta-package, e.g. ``==13.0.3`` (CUDA 13 wheels)."""
    for req in metadata.requires("torch") or []:
        m = re.match(r"cuda-toolkit(?:\[[^\]]*\])?\s*(==[\w.*]+)", req)
        if m:
            return m.group(1)
    return None


def pip_toolkit(major: int) -> Path:
    home = Path(sysconfig.get_paths()["purelib"]) / "nvidia" / f"cu{major}"
    lib = home / "lib"
    cudart = lib / "libcudart.so"
    versioned = lib / f"libcudart.so.{major}"
    if versioned.exists() and not cudart.exists():
        cudart.symlink_to(versioned.name)  # torch links with -lcudart; the wheel ships only .so.N
    return home


def main() -> int:
    import torch

    if not wants_cuda(torch):
        return 0
    major = int(torch.version.cuda.split(".")[0])
    home = system_toolkit()
    if home is not None and nvcc_major(home) == major:
        print("FORCE_CUDA=1")
        return 0
    pin = toolkit_requirement()
    if pin is None:
        print(f"error: torch {torch.__version__} (CUDA {torch.version.cuda}) does not name its CUDA "
              f"toolkit: install CUDA {torch.version.cuda}'s nvcc and set CUDA_HOME", file=sys.stderr)
        return 2
    spec = f"cuda-toolkit[{EXTRAS}]{pin}"
    print(f"installing CUDA's compiler from PyPI to match torch: {spec}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", spec], check=True)
    home = pip_toolkit(major)
    if nvcc_major(home) != major:
        print(f"error: {home}: no CUDA {major} nvcc after installing {spec}", file=sys.stderr)
        return 2
    print(f"FORCE_CUDA=1 CUDA_HOME={home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
