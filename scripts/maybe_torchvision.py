"""Install torchvision only where it can load (called by `make setup`).

The registry's torchvision wheels link against CUDA builds of torch; on a CPU-only torch build
the import fails, and mmengine imports torchvision whenever it is installed (to collect the
environment), which would then crash training. So: try it on CUDA torch builds, and remove it
again if it does not import.
"""
import subprocess
import sys

import torch

py = sys.argv[1] if len(sys.argv) > 1 else sys.executable


def loads() -> bool:
    return subprocess.run([py, "-c", "import torchvision.ops"], capture_output=True).returncode == 0


major, minor = (int(v) for v in torch.__version__.split("+")[0].split(".")[:2])
if loads():
    print("torchvision: already installed and loads")
elif torch.version.cuda is None:
    subprocess.run([py, "-m", "pip", "uninstall", "-q", "-y", "torchvision"], capture_output=True)
    print("torchvision: skipped (CPU build of torch; not needed by segpc)")
else:
    spec = f"torchvision=={minor + 15 if major == 2 else 0}.*"
    subprocess.run([py, "-m", "pip", "install", "-q", spec], check=False)
    if not loads():
        subprocess.run([py, "-m", "pip", "uninstall", "-q", "-y", "torchvision"], capture_output=True)
        print(f"torchvision: {spec} does not load here; left out (not needed by segpc)")
    else:
        print(f"torchvision: installed {spec}")
