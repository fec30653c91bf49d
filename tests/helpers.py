"""Helpers shared by the tests (pytest puts tests/ on sys.path: ``from helpers import ...``)."""
import importlib.util
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


def load_script(path: str):
    """A script of the repository (``tools/``, ``benchmarks/``: not packages) as a module."""
    spec = importlib.util.spec_from_file_location(Path(path).stem + "_under_test", REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
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


def _outlines(mask: np.ndarray) -> list[list[list[int]]]:
    """Outer boundaries of a binary mask's components, as LabelMe polygons (pixel centres)."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return [c[:, 0, :].tolist() for c in contours]


def labelme_from_split(split_dir: Path, json_dir: Path, embed: bool = True, cytoplasm_rings: bool = False) -> None:
    """A LabelMe folder made from a SegPC split's masks: per cell a ``cell`` polygon (or, with
    ``cytoplasm_rings``, a ``cytoplasm`` polygon) and a ``nucleus`` polygon sharing a group id;
    the image embedded as base64 PNG (``embed``) or referenced by ``imagePath``."""
    import base64
    import json
    import shutil

    import cv2

    from segpc.io import NUCLEUS, read_image, read_mask

    json_dir.mkdir(parents=True, exist_ok=True)
    for img_path in sorted((split_dir / "x").iterdir()):
        image = read_image(img_path)
        shapes = []
        for k, mp in enumerate(sorted((split_dir / "y").glob(f"{img_path.stem}_*.*")), start=1):
            m = read_mask(mp)
            for pts in _outlines(m > 0):
                shapes.append({"label": "cytoplasm" if cytoplasm_rings else "cell", "points": pts,
                               "group_id": k, "shape_type": "polygon", "flags": {}})
            nuclei = _outlines(m == NUCLEUS)
            if nuclei:
                shapes.append({"label": "nucleus", "points": max(nuclei, key=len), "group_id": k,
                               "shape_type": "polygon", "flags": {}})
        doc = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": img_path.name,
               "imageData": None, "imageHeight": image.shape[0], "imageWidth": image.shape[1]}
        if embed:
            doc["imageData"] = base64.b64encode(cv2.imencode(".png", image)[1].tobytes()).decode()
        else:
            shutil.copy(img_path, json_dir / img_path.name)
        (json_dir / f"{img_path.stem}.json").write_text(json.dumps(doc))


def random_init_checkpoint(path, config=MICRO_CONFIG):
    """The micro Mask R-CNN, untrained: its predictions are arbitrary but deterministic."""
    import torch
    from mmengine.registry import init_default_scope

    import segpc.register  # noqa: F401
    from mmdet.registry import MODELS
    from segpc.apis.config import load_config

    init_default_scope("mmdet")
    torch.manual_seed(0)
    model = MODELS.build(load_config(str(REPO / config)).model)
    torch.save({"meta": {}, "state_dict": model.state_dict()}, path)
