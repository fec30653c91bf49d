"""Straightforward dense implementation of the Kaggle cell-competition metric: the yardstick for
:mod:`segpc.evaluation.kaggle_ap` (``tests/test_sartorius.py``, ``benchmarks/bench_kaggle_ap.py``).

A port of the public implementations (the Data Science Bowl 2018 "example metric implementation",
reused for Sartorius): every mask decoded to the full frame, the IoU of every ground-truth /
prediction pair counted on the whole frame, then per threshold ``t in np.arange(0.5, 1.0, 0.05)``::

    matches = iou > t
    tp = (matches.sum(axis=1) == 1).sum()    # ground-truth cells with exactly one match
    fp = (matches.sum(axis=0) == 0).sum()    # predictions without a match
    fn = (matches.sum(axis=1) == 0).sum()    # ground-truth cells without a match

The public code builds the IoU matrix from label images (``np.histogram2d``), which holds only
for non-overlapping masks; here every pair is compared on its own binary masks, which is the
same for non-overlapping masks and defined for overlapping ones. Slow on purpose.
"""
from __future__ import annotations

import csv
from collections import defaultdict

import cv2
import numpy as np


def rle_decode(mask_rle: str, shape) -> np.ndarray:
    """Kaggle run-length text → (H, W) uint8 mask, as the public notebooks decode it."""
    s = mask_rle.split()
    starts, lengths = [np.asarray(x, dtype=int) for x in (s[0:][::2], s[1:][::2])]
    starts -= 1
    ends = starts + lengths
    img = np.zeros(shape[0] * shape[1], dtype=np.uint8)
    for lo, hi in zip(starts, ends):
        img[lo:hi] = 1
    return img.reshape(shape)


def iou_matrix(truths, preds) -> np.ndarray:
    out = np.zeros((len(truths), len(preds)))
    for i, t in enumerate(truths):
        for j, p in enumerate(preds):
            inter = np.logical_and(t, p).sum()
            union = np.logical_or(t, p).sum()
            out[i, j] = inter / union if union else 0.0
    return out


def precision_at(threshold, iou):
    matches = iou > threshold
    true_positives = np.sum(matches, axis=1) == 1
    false_positives = np.sum(matches, axis=0) == 0
    false_negatives = np.sum(matches, axis=1) == 0
    return np.sum(true_positives), np.sum(false_positives), np.sum(false_negatives)


def image_score(truths, preds) -> float:
    """Mean over thresholds of TP / (TP + FP + FN) for one image's dense masks."""
    if not len(truths) and not len(preds):
        return 1.0
    iou = iou_matrix(truths, preds)
    prec = []
    for t in np.arange(0.5, 1.0, 0.05):
        tp, fp, fn = precision_at(t, iou)
        prec.append(tp / (tp + fp + fn))
    return float(np.mean(prec))


def evaluate_csv(truth_csv, submission_csv) -> tuple[float, dict]:
    """``(score, per-image scores)``: mean over the truth's images; sizes from the truth."""
    truth, sizes = defaultdict(list), {}
    with open(truth_csv, newline="") as f:
        for row in csv.DictReader(f):
            sizes[row["id"]] = (int(row["height"]), int(row["width"]))
            truth[row["id"]].append(row["annotation"])
    sub = defaultdict(list)
    with open(submission_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row["predicted"].strip():
                sub[row["id"]].append(row["predicted"])
    per_image = {}
    for img_id, rles in truth.items():
        shape = sizes[img_id]
        per_image[img_id] = image_score([rle_decode(r, shape) for r in rles],
                                        [rle_decode(r, shape) for r in sub.get(img_id, [])])
    return float(np.mean(list(per_image.values()))), per_image


def perturbed_submission(truth_csv, out_csv, seed: int):
    """Write a plausible submission for a truth CSV (test and benchmark input): every cell eroded,
    dilated, shifted or kept (15 % dropped), one false positive per image, overlaps removed."""
    from segpc.structures import kaggle_decode, kaggle_encode

    rng = np.random.default_rng(seed)
    by_img = defaultdict(list)
    with open(truth_csv, newline="") as f:
        for row in csv.DictReader(f):
            by_img[row["id"]].append(row)
    out = []
    for img_id, rows in by_img.items():
        h, w = int(rows[0]["height"]), int(rows[0]["width"])
        used = np.zeros((h, w), bool)
        for row in rows:
            if rng.random() < 0.15:
                continue
            m = kaggle_decode(row["annotation"], h, w)
            op = rng.integers(0, 4)
            if op == 1:
                m = cv2.erode(m, np.ones((3, 3), np.uint8))
            elif op == 2:
                m = cv2.dilate(m, np.ones((3, 3), np.uint8))
            elif op == 3:
                m = np.roll(m, int(rng.integers(-3, 4)), axis=int(rng.integers(0, 2)))
            m = m.astype(bool) & ~used
            if m.sum():
                used |= m
                out.append([img_id, kaggle_encode(m)])
        fp = np.zeros((h, w), bool)
        fp[:6, :8] = True
        fp &= ~used
        if fp.sum():
            out.append([img_id, kaggle_encode(fp)])
    with open(out_csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "predicted"])
        writer.writerows(out)
    return out_csv
