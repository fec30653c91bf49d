"""PanNuke's panoptic quality: bPQ, mPQ and per-class PQ, as the official PanNuke-metrics code.

The reference is TissueImageAnalytics/PanNuke-metrics (``run.py``, ``utils.py``); a line-by-line
port of it is the test oracle (``tests/pannuke_official.py``). This module computes the same
numbers with array operations (one ``bincount``/``unique`` per image instead of one full-image
mask per instance), pure numpy:

- ground truth and prediction are ``(N, H, W, C)`` arrays in PanNuke's layout: channels 0-4 hold
  instance ids of Neoplastic, Inflammatory, Connective/Soft tissue, Dead and Epithelial nuclei
  (0 = none), channel 5 (background) is not used;
- PQ of one image and one instance map (``get_fast_pq``, match IoU 0.5): after relabelling, a
  ground-truth and a predicted instance match when their IoU is **> 0.5** (such matches are
  unique); DQ = TP / (TP + FP/2 + FN/2), SQ = sum of matched IoUs / (TP + 1e-6), PQ = DQ x SQ;
- **bPQ** of an image: the five channels merged into one instance map (``binarize``: channel by
  channel, a later channel overwrites an earlier one where they overlap); not defined (NaN,
  skipped) when the ground truth has no nucleus;
- PQ of class c in an image: channel c of both; NaN (skipped) when the ground truth has no
  nucleus of class c; the image's mPQ is the mean over its defined classes;
- **bPQ, mPQ**: averaged over the images of each tissue, then over the tissues (the official
  "Average bPQ/mPQ"); per-class PQ: averaged over all images where it is defined.

Differences, outside what the official code can run: a channel without any 0 pixel makes the
official ``remap_label``/``binarize`` raise; here 0 is always background and such maps are scored.
Tissue names outside the official 19 are averaged like the others (the official code ignores
those images); with PanNuke's own ``types.npy`` they never occur.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from segpc.io import SegPCError

CLASSES = ("Neoplastic", "Inflammatory", "Connective", "Dead", "Epithelial")  # channels 0-4
# The official list (run.py), in its order; results list other names after these.
TISSUES = (
    "Adrenal_gland", "Bile-duct", "Bladder", "Breast", "Cervix", "Colon", "Esophagus", "HeadNeck",
    "Kidney", "Liver", "Lung", "Ovarian", "Pancreatic", "Prostate", "Skin", "Stomach", "Testis",
    "Thyroid", "Uterus",
)
MATCH_IOU = 0.5
_LUT_MAX = 1 << 18  # ids below this are relabelled through a lookup table, above through unique()


def relabel(label: np.ndarray) -> tuple[np.ndarray, int]:
    """Instance ids → ``1..K`` in increasing order of id (``remap_label``); 0 stays background.

    Returns the relabelled map (int64, same shape) and ``K``. Ids are taken as integers
    (PanNuke stores them as float64).
    """
    lab = np.asarray(label)
    if lab.dtype.kind != "i" and lab.dtype.kind != "u":
        lab = lab.astype(np.int64)
    lo, hi = (int(lab.min()), int(lab.max())) if lab.size else (0, 0)
    if 0 <= lo and hi < _LUT_MAX:
        present = np.bincount(lab.ravel(), minlength=1) > 0
        present[0] = False
        lut = np.cumsum(present)
        return lut[lab], int(lut[-1])
    ids, inv = np.unique(lab, return_inverse=True)
    has_bg = ids[0] == 0 if len(ids) else True
    out = inv.reshape(lab.shape).astype(np.int64) + (0 if has_bg else 1)
    return out, len(ids) - (1 if has_bg else 0)


def pq_counts(true: np.ndarray, pred: np.ndarray, match_iou: float = MATCH_IOU) -> tuple[int, int, int, float]:
    """``(tp, fp, fn, sum of matched IoUs)`` of two instance maps (any ids, 0 background).

    A pair matches when IoU > ``match_iou`` (unique for ``match_iou >= 0.5``, which is all the
    official code and this function support).
    """
    if match_iou < 0.5:
        raise ValueError("match_iou < 0.5 needs an optimal assignment; only >= 0.5 is supported")
    t, nt = relabel(true)
    p, npred = relabel(pred)
    t, p = t.ravel(), p.ravel()
    both = (t > 0) & (p > 0)
    pair, inter = np.unique(t[both] * (npred + 1) + p[both], return_counts=True)
    ti, pi = np.divmod(pair, npred + 1)
    area_t = np.bincount(t, minlength=nt + 1)
    area_p = np.bincount(p, minlength=npred + 1)
    iou = inter / (area_t[ti] + area_p[pi] - inter)
    matched = iou > match_iou
    tp = int(matched.sum())
    return tp, npred - tp, nt - tp, float(iou[matched].sum())


def fast_pq(true: np.ndarray, pred: np.ndarray, match_iou: float = MATCH_IOU) -> tuple[float, float, float]:
    """``(dq, sq, pq)`` as ``get_fast_pq``; NaN when the ground truth has no instance (skipped)."""
    tp, fp, fn, iou_sum = pq_counts(true, pred, match_iou)
    if tp + fn == 0:
        return math.nan, math.nan, math.nan
    dq = tp / (tp + 0.5 * fp + 0.5 * fn)
    sq = iou_sum / (tp + 1.0e-6)
    return dq, sq, dq * sq


def merge_channels(maps: Sequence[np.ndarray]) -> np.ndarray:
    """Relabelled per-class maps → one instance map (``binarize``: later channels overwrite)."""
    out = np.zeros(maps[0].shape, np.int64)
    offset = 0
    for lab in maps:
        fg = lab > 0
        out[fg] = lab[fg] + offset
        offset += int(lab.max()) if lab.size else 0
    return out


def image_pq(true: np.ndarray, pred: np.ndarray, channels: Sequence[int] = range(5)) -> tuple[float, np.ndarray]:
    """One image's binary PQ and per-class PQ (NaN where the ground truth is empty).

    ``true``/``pred``: ``(H, W, C)`` PanNuke-layout maps; ``channels``: the classes scored (the
    binary map merges exactly these).
    """
    t = [relabel(true[..., c])[0] for c in channels]
    p = [relabel(pred[..., c])[0] for c in channels]
    per_class = np.array([fast_pq(tc, pc)[2] for tc, pc in zip(t, p)], dtype=np.float64)
    bpq = fast_pq(merge_channels(t), merge_channels(p))[2]
    return bpq, per_class


def _nanmean(values: Iterable[float]) -> float:
    a = np.asarray(list(values), dtype=np.float64)
    a = a[~np.isnan(a)]
    return float(a.mean()) if len(a) else math.nan


@dataclass
class PQResult:
    """bPQ and mPQ averaged per tissue then over tissues, per-class PQ, and their parts."""

    bPQ: float
    mPQ: float
    per_class: dict[str, float]
    per_tissue: dict[str, dict[str, float]]
    image_bpq: np.ndarray = field(repr=False)      # (N,)
    image_pq: np.ndarray = field(repr=False)       # (N, number of classes)

    def format(self) -> str:
        lines = [f"bPQ: {self.bPQ:.6f}", f"mPQ: {self.mPQ:.6f}"]
        lines += [f"PQ {name}: {v:.6f}" for name, v in self.per_class.items()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        def num(v):
            return None if math.isnan(v) else float(v)

        return {
            "bPQ": num(self.bPQ), "mPQ": num(self.mPQ),
            "per_class": {k: num(v) for k, v in self.per_class.items()},
            "per_tissue": {t: {k: (num(v) if k != "images" else v) for k, v in d.items()}
                           for t, d in self.per_tissue.items()},
            "num_images": len(self.image_bpq),
        }


def summarize(image_bpq: np.ndarray, image_pq: np.ndarray, types: Sequence[str],
              class_names: Sequence[str] = CLASSES) -> PQResult:
    """Average per-image scores as ``run.py``: per tissue, then over tissues; per class over images."""
    image_bpq = np.asarray(image_bpq, np.float64)
    image_pq = np.asarray(image_pq, np.float64).reshape(len(image_bpq), len(class_names))
    types = [str(t) for t in types]
    image_mpq = np.array([_nanmean(row) for row in image_pq])
    names = [t for t in TISSUES if t in set(types)] + sorted(set(types) - set(TISSUES))
    per_tissue = {}
    for name in names:
        idx = [i for i, t in enumerate(types) if t == name]
        per_tissue[name] = {"bPQ": _nanmean(image_bpq[idx]), "mPQ": _nanmean(image_mpq[idx]),
                            "images": len(idx)}
    return PQResult(
        bPQ=_nanmean(d["bPQ"] for d in per_tissue.values()),
        mPQ=_nanmean(d["mPQ"] for d in per_tissue.values()),
        per_class={n: _nanmean(image_pq[:, k]) for k, n in enumerate(class_names)},
        per_tissue=per_tissue, image_bpq=image_bpq, image_pq=image_pq)


def evaluate(true: np.ndarray, pred: np.ndarray, types: Sequence[str], channels: Sequence[int] = range(5),
             progress: bool = False) -> PQResult:
    """bPQ/mPQ of ``(N, H, W, C)`` arrays (memory-mapped ones are read one image at a time)."""
    from tqdm import tqdm

    channels = list(channels)
    bpq = np.empty(len(true))
    pq = np.empty((len(true), len(channels)))
    for i in tqdm(range(len(true)), desc="PQ", unit="img", disable=not progress):
        bpq[i], pq[i] = image_pq(np.asarray(true[i]), np.asarray(pred[i]), channels)
    return summarize(bpq, pq, types, [CLASSES[c] for c in channels])


def load_layout(path: str | os.PathLike, what: str) -> np.ndarray:
    """A ``(N, H, W, C)`` PanNuke-layout array (C = 5 or 6), memory-mapped."""
    arr = load_npy(path)
    if arr.ndim != 4 or arr.shape[3] not in (5, 6):
        raise SegPCError(path, f"{what} must have shape (N, H, W, 6) (PanNuke's layout), got {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise SegPCError(path, f"{what} must hold numeric instance ids, got dtype {arr.dtype}")
    return arr


def load_types(path: str | os.PathLike) -> np.ndarray:
    """PanNuke's ``types.npy``: one tissue name per image."""
    arr = load_npy(path, mmap=False)
    if arr.ndim != 1 or arr.dtype.kind not in "US":
        raise SegPCError(path, f"tissue types must be a 1-D array of strings, got {arr.dtype} {arr.shape}")
    return arr.astype(str)


def load_npy(path: str | os.PathLike, mmap: bool = True) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise SegPCError(path, "file not found") from None
    except ValueError as e:  # object arrays (pickles) are refused: they could run code
        raise SegPCError(path, f"not a plain .npy array ({e})") from None
    except (OSError, EOFError) as e:
        raise SegPCError(path, f"not a readable .npy file ({e})") from None


def evaluate_files(true_path: str | os.PathLike, pred_path: str | os.PathLike,
                   types_path: str | os.PathLike, channels: Sequence[int] = range(5),
                   progress: bool = True) -> PQResult:
    """``tools/eval_pq.py``: score PRED.npy against TRUE.npy with the tissues of TYPES.npy."""
    true = load_layout(true_path, "ground truth")
    pred = load_layout(pred_path, "prediction")
    types = load_types(types_path)
    if pred.shape[:3] != true.shape[:3]:
        raise SegPCError(pred_path, f"shape {pred.shape} does not match the ground truth's {true.shape}")
    if len(types) != len(true):
        raise SegPCError(types_path, f"{len(types)} tissue types for {len(true)} images")
    return evaluate(true, pred, types, channels, progress)
