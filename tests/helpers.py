"""Helpers shared by the tests (pytest puts tests/ on sys.path: ``from helpers import ...``)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from segpc.datasets.convert import write_coco
from segpc.datasets.synthetic import write_splits
from segpc.structures import bbox_xyxy, encode

REPO = Path(__file__).resolve().parents[1]
MICRO_CONFIG = "configs/fixture/mask_rcnn_micro.py"


def tool(*args, check=True, env=None) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` (a tool) in the repository; on failure show its output.

    One torch thread: the test models are tiny, and on shared cores OpenMP threads that wait for
    each other make them many times slower.
    """
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def synthetic_coco(root: Path, counts: dict, seed: int, size=(96, 128), semantic=False, **kwargs) -> Path:
    """Synthetic SegPC splits under ``root`` with their COCO files (and semantic maps)."""
    write_splits(root, counts, seed=seed, size=size, **kwargs)
    for split in counts:
        write_coco(root / split, root / "annotations" / f"{split}.json",
                   semantic_dir=root / "semantic" / split if semantic else None, progress=False)
    return root


def rect(y0, y1, x0, x1, shape=(40, 60)) -> np.ndarray:
    """A boolean mask with one filled rectangle (rows y0:y1, columns x0:x1)."""
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def cell(mask, score=0.9, nucleus=None) -> dict:
    """A predicted cell dict (segpc.structures) from boolean masks; the nucleus is clipped."""
    mask = np.asarray(mask, bool)
    nuc = None if nucleus is None else encode(np.asarray(nucleus, bool) & mask)
    return {"score": score, "bbox": bbox_xyxy(encode(mask)), "cell": encode(mask), "nucleus": nuc}


def printed_miou(stdout: str) -> str:
    """The value of a tool's own ``mIoU: 0.xxxxxx`` line (mmengine's logs print rounded ones)."""
    return re.findall(r"^mIoU: ([0-9.]+)$", stdout, re.M)[-1]
