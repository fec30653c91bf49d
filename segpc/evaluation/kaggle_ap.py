"""The Kaggle cell-competition metric (Sartorius 2021, Data Science Bowl 2018), as pure functions.

Per image, for every IoU threshold t in 0.50, 0.55, ..., 0.95: a predicted cell and a
ground-truth cell *match* when their IoU is **strictly greater** than t, one-to-one; with TP
the matches, FP the unmatched predictions and FN the unmatched ground-truth cells, the image
scores ``TP / (TP + FP + FN)`` at t. The image's score is the mean over the ten thresholds,
the data set's the mean over its images (and per cell type, the mean over that type's
images). An image with neither cells nor predictions scores 1.

One-to-one matching: at t >= 0.5 a cell can have IoU > t with at most one cell of a set of
non-overlapping masks, so with non-overlapping predictions (a submission) every ground-truth
cell has at most one candidate and the matching is unique; this is what the public
implementations count (``tp = (matches.sum(axis=1) == 1).sum()`` ...). With overlapping masks
on both sides pairs are matched greedily by decreasing IoU, the same matching at every
threshold (a pair with IoU > t comes before every pair below it).

How it is computed: IoUs by ``pycocotools.mask.iou`` on RLEs (pycocotools compares only pairs
whose boxes overlap), then for the pairs above 0.5 the exact intersection and union counts, so
every threshold test ``100 * inter > pct * union`` is exact integer arithmetic. Light: numpy and
pycocotools, no torch.
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np
from tqdm import tqdm

from segpc.io import SegPCError
from segpc.structures import area, intersect, kaggle_to_rle_t, rle_iou

THRESHOLDS_PCT = tuple(range(50, 100, 5))  # IoU thresholds in percent: 50, 55, ..., 95
THRESHOLDS = tuple(p / 100 for p in THRESHOLDS_PCT)


def matched_pairs(gt: Sequence[dict], pred: Sequence[dict]) -> list[tuple[int, int, int, int]]:
    """One-to-one matches with IoU > 0.5: ``(gt index, pred index, intersection, union)``.

    ``gt`` and ``pred`` are RLEs of one image (same size and orientation). Greedy by
    decreasing IoU, ties by (gt index, pred index).
    """
    if not len(gt) or not len(pred):
        return []
    ious = rle_iou(gt, pred)
    cand = []
    for gi, pi in zip(*np.nonzero(ious > 0.5 - 1e-6)):  # float IoU first, exact counts below
        inter = area(intersect(gt[gi], pred[pi]))
        union = area(gt[gi]) + area(pred[pi]) - inter
        if 2 * inter > union:
            cand.append((-inter / union, int(gi), int(pi), inter, union))
    cand.sort()
    used_g, used_p, out = set(), set(), []
    for _, gi, pi, inter, union in cand:
        if gi not in used_g and pi not in used_p:
            used_g.add(gi)
            used_p.add(pi)
            out.append((gi, pi, inter, union))
    return out


def true_positives(pairs: Sequence[tuple[int, int, int, int]]) -> np.ndarray:
    """TP at every threshold of :data:`THRESHOLDS_PCT` from :func:`matched_pairs`."""
    return np.array([sum(1 for *_, inter, union in pairs if 100 * inter > pct * union)
                     for pct in THRESHOLDS_PCT], dtype=np.int64)


def image_score(num_gt: int, num_pred: int, tp: np.ndarray) -> float:
    """Mean over thresholds of ``TP / (TP + FP + FN)``; 1 for an image with nothing on either side."""
    if num_gt == 0 and num_pred == 0:
        return 1.0
    tp = np.asarray(tp, dtype=np.int64)
    return math.fsum((tp / (num_gt + num_pred - tp)).tolist()) / len(tp)


def score_image(gt: Sequence[dict], pred: Sequence[dict]) -> tuple[float, np.ndarray]:
    """``(image score, TP per threshold)`` of one image's ground-truth and predicted RLEs."""
    tp = true_positives(matched_pairs(gt, pred))
    return image_score(len(gt), len(pred), tp), tp


@dataclass
class KaggleAPResult:
    """``score``: mean image score; ``per_type``: the same per cell type; ``per_image``: name →
    ``{"score", "cell_type", "num_gt", "num_pred", "tp"}``."""

    score: float
    num_gt: int
    num_pred: int
    per_type: dict = field(default_factory=dict)
    per_image: dict = field(default_factory=dict)
    unmatched_pred_images: tuple = ()

    def to_dict(self) -> dict:
        return {"score": self.score, "num_gt": self.num_gt, "num_pred": self.num_pred,
                "thresholds": list(THRESHOLDS), "per_type": self.per_type, "per_image": self.per_image,
                "unmatched_pred_images": list(self.unmatched_pred_images)}


def evaluate(gt: Mapping[str, tuple[Optional[str], Sequence[dict]]], pred: Mapping[str, Sequence[dict]],
             progress: bool = False) -> KaggleAPResult:
    """Score predictions: ``gt`` image name → ``(cell type or None, RLEs)``, ``pred`` name → RLEs.

    Images of ``gt`` without an entry in ``pred`` have no predictions; images of ``pred`` that
    ``gt`` lacks are ignored (listed in ``unmatched_pred_images``).
    """
    if not gt:
        raise SegPCError(None, "no ground-truth images to score")
    per_image = {}
    for name, (cell_type, g) in tqdm(gt.items(), desc="score", unit="img", disable=not progress):
        p = pred.get(name, ())
        s, tp = score_image(g, p)
        per_image[name] = {"score": s, "cell_type": cell_type, "num_gt": len(g), "num_pred": len(p),
                           "tp": tp.tolist()}
    types = sorted({r["cell_type"] for r in per_image.values() if r["cell_type"] is not None})
    per_type = {}
    for t in types:
        scores = [r["score"] for r in per_image.values() if r["cell_type"] == t]
        per_type[t] = {"score": math.fsum(scores) / len(scores), "images": len(scores)}
    scores = [r["score"] for r in per_image.values()]
    return KaggleAPResult(math.fsum(scores) / len(scores), sum(r["num_gt"] for r in per_image.values()),
                          sum(r["num_pred"] for r in per_image.values()), per_type, per_image,
                          tuple(sorted(n for n, p in pred.items() if n not in gt and len(p))))


def load_coco_truth(ann_file: str | os.PathLike) -> tuple[dict, dict]:
    """A COCO file (``tools/convert_sartorius.py``) → ``(gt, sizes)``: image name (file stem) →
    ``(cell type, RLEs)`` and → ``(H, W)``. The cell type is the image entry's ``cell_type``, else
    its annotations' most frequent category name. Polygons and uncompressed RLEs are accepted."""
    from collections import Counter
    from pathlib import Path

    from segpc.io import load_json
    from segpc.structures.rle import compressed, polygons_to_rle

    coco = load_json(ann_file)
    try:
        cats = {c["id"]: c["name"] for c in coco["categories"]}
        images = {img["id"]: img for img in coco["images"]}
        rles: dict = {i: [] for i in images}
        names: dict = {i: [] for i in images}
        for ann in coco["annotations"]:
            img = images[ann["image_id"]]
            h, w = int(img["height"]), int(img["width"])
            seg = ann["segmentation"]
            rles[ann["image_id"]].append(polygons_to_rle(seg, (h, w)) if isinstance(seg, list) else compressed(seg))
            names[ann["image_id"]].append(cats[ann["category_id"]])
    except (KeyError, TypeError, AttributeError) as e:
        raise SegPCError(ann_file, f"not a COCO instances file ({type(e).__name__}: {e})") from None
    gt, sizes = {}, {}
    for i, img in images.items():
        name = Path(img["file_name"]).stem
        cell_type = img.get("cell_type") or (Counter(names[i]).most_common(1)[0][0] if names[i] else None)
        gt[name] = (cell_type, rles[i])
        sizes[name] = (int(img["height"]), int(img["width"]))
    return gt, sizes


def evaluate_csv(truth: str | os.PathLike, submission_csv: str | os.PathLike,
                 progress: bool = False) -> KaggleAPResult:
    """Score a submission CSV (``id,predicted``) against a Sartorius annotation CSV, or a COCO file.

    A truth CSV (train.csv layout) gives image sizes (``width``/``height``) and cell types
    (``cell_type``, optional); masks are then compared in Kaggle's row-major run order
    (transposed RLEs, no decoding). A ``.json`` truth is a COCO file (:func:`load_coco_truth`),
    e.g. the validation split of ``tools/convert_sartorius.py --val-json``.
    """
    from segpc.datasets.sartorius import decode_cell, read_annotations, read_submission
    from segpc.structures import kaggle_to_rle

    if str(truth).lower().endswith(".json"):
        gt, sizes = load_coco_truth(truth)
        to_rle = kaggle_to_rle
    else:
        images = read_annotations(truth, require_cell_type=False)
        gt, sizes = {}, {}
        for img_id, img in images.items():
            sizes[img_id] = (img.height, img.width)
            gt[img_id] = (img.cell_type, [decode_cell(truth, line, img_id, text, img.height, img.width,
                                                      kaggle_to_rle_t) for line, text in img.cells])
        to_rle = kaggle_to_rle_t
    pred = {}
    for img_id, cells in read_submission(submission_csv).items():
        if img_id not in gt:
            pred[img_id] = cells
            continue
        h, w = sizes[img_id]
        pred[img_id] = [decode_cell(submission_csv, line, img_id, text, h, w, to_rle) for line, text in cells]
    return evaluate(gt, pred, progress=progress)


def format_result(res: KaggleAPResult) -> str:
    """The lines ``tools/eval_kaggle_ap.py`` prints."""
    lines = [f"score: {res.score:.6f}"]
    for t, r in res.per_type.items():
        lines.append(f"  {t}: {r['score']:.6f} ({r['images']} images)")
    lines.append(f"images: {len(res.per_image)}  num_gt: {res.num_gt}  num_pred: {res.num_pred}")
    return "\n".join(lines)


def warn_unmatched(res: KaggleAPResult) -> None:
    if res.unmatched_pred_images:
        names = res.unmatched_pred_images
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        print(f"warning: {len(names)} predicted image(s) have no ground truth and were ignored: {shown}",
              file=sys.stderr)
