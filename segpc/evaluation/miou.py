"""The SegPC-2021 challenge metric (mIoU of whole cells), as pure functions.

Semantics, those of the challenge's scorer:

* every mask, ground truth and prediction, is resized with nearest neighbour to 1080x1440
  (``cv2.resize(m, (1440, 1080), interpolation=cv2.INTER_NEAREST)``);
* a ground-truth cell is its mask ``> 0``; a predicted cell is the union of its nucleus
  (``== 40``) and cytoplasm (``== 20``) pixels, other values do not count;
* every ground-truth cell takes its best IoU over the predictions of its image (0 when none
  overlaps it, or the image has no predictions); unmatched predictions cost nothing;
* mIoU = sum of those best IoUs over all ground-truth cells / number of ground-truth cells.

How it is computed without dense full-frame pairs: every mask becomes a
:class:`~segpc.structures.CropMask` resized to ``TARGET`` (its box and the crop inside it,
exactly as ``cv2.resize`` of the whole frame would have them), and IoUs are counted only for
ground-truth/prediction pairs whose boxes overlap, on the overlap of their crops
(:func:`~segpc.structures.iou_matrix`); the counts are exact integers, so the result is the
dense computation's (:mod:`segpc.testing.miou`) to the last bit.

Light: numpy, OpenCV and pycocotools; no torch, mmengine or mmdet.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from segpc.io import MASK_EXTS, PRED_VALUES, SegPCError, mask_files, natural_key
from segpc.structures import CropMask, iou_matrix, load_dump

TARGET = (1080, 1440)  # (height, width) every mask is resized to before scoring


# --------------------------------------------------------------------------- masks at the challenge's scale


def scaled_file(path: str | os.PathLike, prediction: bool) -> CropMask:
    """A SegPC mask file at ``TARGET``: ground truth ``> 0``, prediction 40/20 (``PRED_VALUES``)."""
    return CropMask.from_file(path, PRED_VALUES if prediction else None, TARGET)


def scaled_rle(rle: dict | list, size: Sequence[int] | None = None) -> CropMask:
    """A COCO mask (RLE, or polygons with ``size``) at ``TARGET``."""
    return CropMask.from_rle(rle, size, TARGET)


def dump_masks(dump: dict) -> dict[str, list[CropMask]]:
    """Image name → its predicted cells at ``TARGET``, from a (validated) prediction dump."""
    return {img["name"]: [scaled_rle(c["cell"]) for c in img["cells"]] for img in dump["images"]}


# --------------------------------------------------------------------------- IoU


def best_ious(gt: Sequence[CropMask], pred: Sequence[CropMask]) -> np.ndarray:
    """Best IoU of every ground-truth mask over ``pred`` (0 where nothing overlaps it)."""
    m = iou_matrix(gt, pred)
    return m.max(axis=1) if m.shape[1] else np.zeros(len(gt), dtype=np.float64)


def best_matches(gt: Sequence[CropMask], pred: Sequence[CropMask]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`best_ious` and, for every ground-truth mask, the index in ``pred`` of that best
    prediction (the first one on ties; -1 where nothing overlaps it)."""
    m = iou_matrix(gt, pred)
    if not m.shape[1]:
        return np.zeros(len(gt), dtype=np.float64), np.full(len(gt), -1, dtype=np.int64)
    idx = m.argmax(axis=1)
    best = m[np.arange(len(gt)), idx]
    return best, np.where(best > 0, idx, -1).astype(np.int64)


# --------------------------------------------------------------------------- results


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return math.fsum(values) / len(values)  # fsum: exact, independent of summation order


@dataclass(frozen=True)
class ImageRecord:
    """One image's contribution: the best IoU of each of its ground-truth cells."""

    name: str
    ious: np.ndarray
    num_pred: int

    @property
    def num_gt(self) -> int:
        return len(self.ious)


@dataclass
class MIoUResult:
    """The challenge score and its parts.

    ``per_image``: image name → ``{"mIoU", "num_gt", "num_pred"}`` for every image with
    ground-truth cells (images without any contribute nothing and are not listed).
    ``num_pred`` counts the predictions of those images. ``unmatched_pred_images``: images
    that have predictions but no ground truth (ignored, as by the challenge's scorer).
    """

    mIoU: float
    num_gt: int
    num_pred: int
    per_image: dict[str, dict] = field(default_factory=dict)
    unmatched_pred_images: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"mIoU": self.mIoU, "num_gt": self.num_gt, "num_pred": self.num_pred,
                "per_image": {k: dict(v) for k, v in self.per_image.items()}}


def accumulate(name: str, gt: Sequence[CropMask], pred: Sequence[CropMask]) -> ImageRecord:
    """Score one image: its ground-truth cells against its predictions."""
    return ImageRecord(str(name), best_ious(gt, pred), len(pred))


def summarize(records: Iterable[ImageRecord], gt_source: str | os.PathLike | None = None,
              unmatched_pred_images: Iterable[str] = ()) -> MIoUResult:
    """Micro-average the per-image records; no ground-truth cell at all is an error."""
    records = sorted((r for r in records if r.num_gt), key=lambda r: natural_key(r.name))
    names = [r.name for r in records]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise SegPCError(gt_source, f"image {dup!r} scored twice")
    if not records:
        raise SegPCError(gt_source, "no ground-truth cells to score")
    all_ious = np.concatenate([r.ious for r in records])
    per_image = {r.name: {"mIoU": _mean(r.ious.tolist()), "num_gt": r.num_gt, "num_pred": r.num_pred}
                 for r in records}
    return MIoUResult(mIoU=_mean(all_ious.tolist()), num_gt=len(all_ious),
                      num_pred=sum(r.num_pred for r in records), per_image=per_image,
                      unmatched_pred_images=tuple(sorted(unmatched_pred_images, key=natural_key)))


def evaluate_masks(gt: Mapping[str, Sequence[CropMask]], pred: Mapping[str, Sequence[CropMask]],
                   gt_source: str | os.PathLike | None = None) -> MIoUResult:
    """Score in-memory masks: image name → ground-truth masks, image name → predicted masks.

    Images absent from ``pred`` have no predictions (their cells score 0); images of ``pred``
    absent from ``gt`` are ignored (listed in ``unmatched_pred_images``).
    """
    records = [accumulate(name, masks, pred.get(name, ())) for name, masks in gt.items()]
    unmatched = [n for n, p in pred.items() if n not in gt and len(p)]
    return summarize(records, gt_source, unmatched)


# --------------------------------------------------------------------------- files


def find_gt_dir(gt_dir: str | os.PathLike) -> Path:
    """The folder of ground-truth masks: ``gt_dir/y`` if there is one, else ``gt_dir``."""
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise SegPCError(gt_dir, "ground-truth folder not found")
    return gt_dir / "y" if (gt_dir / "y").is_dir() else gt_dir


def default_workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def evaluate_dirs(gt_dir: str | os.PathLike, pred: str | os.PathLike,
                  workers: int | None = None) -> MIoUResult:
    """Score a submission folder or a prediction dump against a folder of ground-truth masks.

    ``gt_dir``: a folder of ``<id>_<k>.bmp|png`` masks, or a split folder holding them in
    ``y/``. ``pred``: a submission folder (``<id>_<k>.bmp|png``, nucleus 40, cytoplasm 20) or a
    prediction dump (:func:`segpc.structures.load_dump`; images matched by ``name``).
    Masks are read by a pool of ``workers`` threads (OpenCV decodes without the GIL).
    """
    gt_root = Path(gt_dir)
    folder = find_gt_dir(gt_root)
    gt_files = mask_files(folder)
    if not gt_files:
        raise SegPCError(gt_root, f"no ground-truth masks ({', '.join('*' + e for e in MASK_EXTS)})")
    pred = Path(pred)
    if not pred.exists():
        raise SegPCError(pred, "predictions not found (a submission folder or a prediction dump)")

    pred_masks: dict[str, list[CropMask]] = {}
    jobs: list[tuple[str, bool, Path]] = [(i, False, p) for i, paths in gt_files.items() for p in paths]
    if pred.is_dir():
        pred_files = mask_files(pred)
        unmatched = [i for i in pred_files if i not in gt_files]
        jobs += [(i, True, p) for i, paths in pred_files.items() if i in gt_files for p in paths]
    else:
        pred_masks = dump_masks(load_dump(pred))
        unmatched = [i for i, m in pred_masks.items() if i not in gt_files and m]

    workers = default_workers() if workers is None else max(1, int(workers))

    def load(job: tuple[str, bool, Path]) -> CropMask:
        return scaled_file(job[2], prediction=job[1])

    if workers > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(workers) as pool:
            masks = list(pool.map(load, jobs))
    else:
        masks = [load(j) for j in jobs]

    gt_masks: dict[str, list[CropMask]] = {i: [] for i in gt_files}
    for (image_id, is_pred, _), m in zip(jobs, masks):
        (pred_masks.setdefault(image_id, []) if is_pred else gt_masks[image_id]).append(m)
    records = [accumulate(i, gt_masks[i], pred_masks.get(i, ())) for i in gt_files]
    return summarize(records, gt_root, unmatched)
