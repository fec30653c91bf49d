"""Straightforward dense implementation of the SegPC-2021 mIoU, the yardstick for
:mod:`segpc.evaluation.miou`.

Every mask is resized to the full 1080x1440 frame with ``cv2.resize`` and every ground-truth
cell is compared with every prediction of its image on the whole frame, as the challenge's
scorer does. Slow on purpose (no boxes, no crops): the tests and the benchmark compare the fast
implementation against it.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np

from segpc.evaluation.miou import TARGET, MIoUResult
from segpc.io import CYTOPLASM, MASK_EXTS, NUCLEUS, SegPCError, natural_key, read_mask, split_mask_stem


def resize_full(mask: np.ndarray) -> np.ndarray:
    return cv2.resize(mask, (TARGET[1], TARGET[0]), interpolation=cv2.INTER_NEAREST)


def gt_cell(mask: np.ndarray) -> np.ndarray:
    """A ground-truth SegPC mask → its cell at 1080x1440: ``> 0``."""
    return resize_full(mask) > 0


def pred_cell(mask: np.ndarray) -> np.ndarray:
    """A predicted SegPC mask → its cell at 1080x1440: nucleus (40) ∪ cytoplasm (20)."""
    m = resize_full(mask)
    return (m == NUCLEUS) | (m == CYTOPLASM)


def dense_best_ious(gt: Sequence[np.ndarray], pred: Sequence[np.ndarray]) -> list[float]:
    """Raw SegPC masks (any size) → best IoU of every ground-truth cell over the predictions."""
    pred_cells = [pred_cell(p) for p in pred]
    best = []
    for g in gt:
        cell = gt_cell(g)
        score = 0.0
        for p in pred_cells:
            inter = int(np.logical_and(cell, p).sum())
            union = int(np.logical_or(cell, p).sum())
            if union:
                score = max(score, inter / union)
        best.append(score)
    return best


def reference_evaluate(gt: Mapping[str, Sequence[np.ndarray]], pred: Mapping[str, Sequence[np.ndarray]]) -> MIoUResult:
    """Image name → raw ground-truth masks, image name → raw predicted masks (values 40/20)."""
    all_ious, per_image, num_pred = [], {}, 0
    for name in sorted(gt, key=natural_key):
        if not len(gt[name]):
            continue
        preds = pred.get(name, [])
        ious = dense_best_ious(gt[name], preds)
        all_ious += ious
        num_pred += len(preds)
        per_image[name] = {"mIoU": math.fsum(ious) / len(ious), "num_gt": len(ious), "num_pred": len(preds)}
    if not all_ious:
        raise SegPCError(None, "no ground-truth cells to score")
    return MIoUResult(math.fsum(all_ious) / len(all_ious), len(all_ious), num_pred, per_image)


def _by_image(folder: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in MASK_EXTS and not p.name.startswith("."):
            out.setdefault(split_mask_stem(p.stem)[0], []).append(p)
    return out


def reference_evaluate_dirs(gt_dir: str | os.PathLike, pred_dir: str | os.PathLike) -> MIoUResult:
    """Dense scoring of a submission folder against a folder of ground-truth masks (or split/y)."""
    gt_dir = Path(gt_dir)
    if (gt_dir / "y").is_dir():
        gt_dir = gt_dir / "y"
    gt_files = _by_image(gt_dir)
    pred_files = _by_image(Path(pred_dir))
    gt = {i: [read_mask(p) for p in ps] for i, ps in gt_files.items()}
    pred = {i: [read_mask(p) for p in pred_files.get(i, [])] for i in gt_files}
    return reference_evaluate(gt, pred)
