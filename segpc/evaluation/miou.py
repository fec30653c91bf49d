"""The SegPC-2021 challenge metric (mIoU of whole cells), as pure functions.

Semantics, those of the challenge's scorer:

* every mask, ground truth and prediction, is resized with nearest neighbour to 1080x1440
  (``cv2.resize(m, (1440, 1080), interpolation=cv2.INTER_NEAREST)``);
* a ground-truth cell is its mask ``> 0``; a predicted cell is the union of its nucleus
  (``== 40``) and cytoplasm (``== 20``) pixels, other values do not count;
* every ground-truth cell takes its best IoU over the predictions of its image (0 when none
  overlaps it, or the image has no predictions); unmatched predictions cost nothing;
* mIoU = sum of those best IoUs over all ground-truth cells / number of ground-truth cells.

How it is computed without dense full-frame pairs: every mask becomes a :class:`ScaledMask`, a
box plus the crop inside it, already at the 1080x1440 scale. OpenCV's nearest-neighbour resize
is separable (``dst[i, j] == src[ry[i], cx[j]]``) and the index maps ``ry``/``cx`` are taken from
OpenCV itself (by resizing an index ramp), so only the crop of a mask's box is ever resized,
and it comes out exactly as ``cv2.resize`` of the whole frame would have it. IoUs are then
counted only for ground-truth/prediction pairs whose boxes overlap, on the overlap of their
crops; the counts are exact integers, so the result is the dense computation's
(:mod:`segpc.evaluation.reference`) to the last bit.

Light: numpy and OpenCV (pycocotools only for polygons and dumps); no torch, mmengine or mmdet.
"""
from __future__ import annotations

import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import cv2
import numpy as np

from segpc.io import CYTOPLASM, MASK_EXTS, NUCLEUS, SegPCError, read_mask, split_mask_stem

TARGET = (1080, 1440)  # (height, width) every mask is resized to before scoring
PRED_VALUES = (CYTOPLASM, NUCLEUS)  # pixel values that make a predicted cell


# --------------------------------------------------------------------------- resize index maps


@lru_cache(maxsize=64)
def resize_maps(src_hw: tuple[int, int], target: tuple[int, int] = TARGET) -> tuple[np.ndarray, np.ndarray]:
    """Source row of every target row and source column of every target column.

    ``cv2.resize(m, target[::-1], interpolation=cv2.INTER_NEAREST) == m[ry][:, cx]``. The maps
    are obtained from OpenCV itself by resizing index ramps, so they follow its exact rounding.
    Both are non-decreasing int64 arrays (read-only, cached per size).
    """
    h, w = int(src_hw[0]), int(src_hw[1])
    th, tw = int(target[0]), int(target[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"bad mask size {h}x{w}")
    # float32 holds integers exactly up to 2**24, far beyond any image side.
    ry = cv2.resize(np.arange(h, dtype=np.float32).reshape(h, 1), (1, th),
                    interpolation=cv2.INTER_NEAREST).reshape(th).astype(np.int64)
    cx = cv2.resize(np.arange(w, dtype=np.float32).reshape(1, w), (tw, 1),
                    interpolation=cv2.INTER_NEAREST).reshape(tw).astype(np.int64)
    if np.any(np.diff(ry) < 0) or np.any(np.diff(cx) < 0):  # never seen; the crop logic relies on it
        raise RuntimeError(f"cv2 nearest resize maps for {h}x{w} are not monotonic")
    ry.flags.writeable = False
    cx.flags.writeable = False
    return ry, cx


def _gather(a: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``a[np.ix_(rows, cols)]``, faster: ``take`` (about 5x ``np.ix_``), the element-wise
    column gather done on whichever of the source and the result has fewer rows."""
    if len(rows) > a.shape[0]:
        return a.take(cols, axis=1).take(rows, axis=0)
    return a.take(rows, axis=0).take(cols, axis=1)


def _select(a: np.ndarray, values: Sequence[int] | None) -> np.ndarray:
    """uint8 ``a`` → bool: nonzero (``values=None``) or one of ``values``."""
    if values is None:
        return a != 0
    hit = np.zeros(a.shape, dtype=bool)
    for v in sorted({int(v) for v in values if 0 <= int(v) < 256}):
        hit |= a == v
    return hit


def _span(index_map: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """Target range ``[a, b)`` whose source index lies in ``[lo, hi)`` (the map is monotonic)."""
    a, b = np.searchsorted(index_map, (lo, hi), side="left")
    return int(a), int(b)


# --------------------------------------------------------------------------- ScaledMask


class ScaledMask:
    """A binary mask at the target scale, stored as its tight box and the crop inside it.

    ``y0, x0, y1, x1``: box in target pixels (end exclusive); ``crop``: ``(y1-y0, x1-x0)`` bool;
    ``area``: number of pixels. An empty mask has an empty box and area 0.
    """

    __slots__ = ("y0", "x0", "y1", "x1", "crop", "area", "target")

    def __init__(self, y0: int, x0: int, crop: np.ndarray, target: tuple[int, int] = TARGET):
        crop = np.asarray(crop, dtype=bool)
        if crop.ndim != 2:
            raise ValueError("crop must be 2-D")
        self.target = (int(target[0]), int(target[1]))
        self.area = int(np.count_nonzero(crop))
        if self.area == 0:
            self.y0 = self.x0 = self.y1 = self.x1 = 0
            self.crop = np.zeros((0, 0), dtype=bool)
            return
        y0, x0 = int(y0), int(x0)
        if not (crop[0].any() and crop[-1].any() and crop[:, 0].any() and crop[:, -1].any()):
            rows = np.flatnonzero(crop.any(axis=1))
            cols = np.flatnonzero(crop.any(axis=0))
            r0, c0 = int(rows[0]), int(cols[0])
            crop = crop[r0:int(rows[-1]) + 1, c0:int(cols[-1]) + 1]
            y0, x0 = y0 + r0, x0 + c0
        self.y0, self.x0 = y0, x0
        self.y1, self.x1 = y0 + crop.shape[0], x0 + crop.shape[1]
        if y0 < 0 or x0 < 0 or self.y1 > self.target[0] or self.x1 > self.target[1]:
            raise ValueError("crop does not fit in the target frame")
        self.crop = np.ascontiguousarray(crop)

    # ----------------------------------------------------------------- builders

    @classmethod
    def empty(cls, target: tuple[int, int] = TARGET) -> "ScaledMask":
        return cls(0, 0, np.zeros((0, 0), dtype=bool), target)

    @classmethod
    def from_dense(cls, mask: np.ndarray, values: Sequence[int] | None = None,
                   target: tuple[int, int] = TARGET) -> "ScaledMask":
        """A source-resolution ``(H, W)`` mask → its nearest-resized version at ``target``.

        ``values=None``: the mask is its nonzero pixels (a bool mask, or a ground-truth SegPC
        mask, ``> 0``). Otherwise the mask is the pixels whose value is in ``values`` (a SegPC
        prediction: ``PRED_VALUES``). Only the box of the nonzero pixels is ever resized.
        """
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
        if mask.dtype == np.bool_:
            mask = mask.view(np.uint8)
        elif mask.dtype != np.uint8:
            if values is not None:
                mask = np.isin(mask, np.asarray(values))
                values = None
            else:
                mask = mask != 0
            mask = mask.view(np.uint8)
        x, y, w, h = cv2.boundingRect(mask)  # box of the nonzero pixels, at source resolution
        if w == 0 or h == 0:
            return cls.empty(target)
        ry, cx = resize_maps(mask.shape, target)
        i0, i1 = _span(ry, y, y + h)
        j0, j1 = _span(cx, x, x + w)
        if i0 == i1 or j0 == j1:  # every pixel of the mask falls between sampled rows/columns
            return cls.empty(target)
        box = mask[y:y + h, x:x + w]
        rows, cols = ry[i0:i1] - y, cx[j0:j1] - x
        if (i1 - i0) * (j1 - j0) < h * w:  # test the values on the smaller of box and crop
            return cls(i0, j0, _select(_gather(box, rows, cols), values), target)
        return cls(i0, j0, _gather(_select(box, values), rows, cols), target)

    @classmethod
    def from_rle(cls, rle: dict | list, size: Sequence[int] | None = None,
                 target: tuple[int, int] = TARGET) -> "ScaledMask":
        """A COCO mask → its nearest-resized version at ``target``, without decoding the frame.

        ``rle``: compressed RLE (``counts`` as ``str``/``bytes``) or uncompressed RLE
        (``counts`` as a list), with ``size = [H, W]``; a COCO polygon list is accepted too when
        ``size`` (``(H, W)``) is given. The runs are painted only inside the mask's box.
        """
        if isinstance(rle, list):  # COCO polygons: rasterise with pycocotools
            if size is None:
                raise ValueError("polygon segmentation needs size=(H, W)")
            from pycocotools import mask as mask_utils

            h, w = int(size[0]), int(size[1])
            rle = mask_utils.merge(mask_utils.frPyObjects(rle, h, w))
        h, w = (int(v) for v in rle["size"])
        counts = _rle_counts(rle["counts"])
        return cls._from_counts(counts, h, w, target)

    @classmethod
    def _from_counts(cls, counts: np.ndarray, h: int, w: int, target: tuple[int, int]) -> "ScaledMask":
        if int(counts.sum()) != h * w:
            raise ValueError(f"RLE counts sum to {int(counts.sum())}, expected {h}x{w}={h * w}")
        bounds = np.concatenate(([0], np.cumsum(counts)))
        starts, ends = bounds[1:-1:2], bounds[2::2]  # runs of ones: odd-indexed counts
        keep = ends > starts
        starts, ends = starts[keep], ends[keep]
        if len(starts) == 0:
            return cls.empty(target)
        # Split runs at column boundaries (column-major order): pieces (col, row0, row1).
        c_start, c_end = starts // h, (ends - 1) // h
        n_pieces = c_end - c_start + 1
        if np.all(n_pieces == 1):
            col, r0, r1 = c_start, starts - c_start * h, ends - c_start * h
        else:
            run = np.repeat(np.arange(len(starts)), n_pieces)
            first = np.repeat(np.cumsum(n_pieces) - n_pieces, n_pieces)
            col = c_start[run] + (np.arange(len(run)) - first)
            r0 = np.maximum(starts[run], col * h) - col * h
            r1 = np.minimum(ends[run], (col + 1) * h) - col * h
        y, y_end = int(r0.min()), int(r1.max())
        x, x_end = int(col[0]), int(col[-1]) + 1
        ry, cx = resize_maps((h, w), target)
        i0, i1 = _span(ry, y, y_end)
        j0, j1 = _span(cx, x, x_end)
        if i0 == i1 or j0 == j1:
            return cls.empty(target)
        # Paint the runs into the box (transposed: one row per source column) with a
        # difference array: +1 at each piece's start, -1 at its end, cumulative sum.
        bh, bw = y_end - y, x_end - x
        stride = bh + 1
        base = (col - x) * stride - y
        n = bw * stride
        diff = np.bincount(base + r0, minlength=n) - np.bincount(base + r1, minlength=n)
        box_t = np.cumsum(diff.reshape(bw, stride), axis=1)[:, :bh] > 0  # (bw, bh)
        crop = _gather(box_t, cx[j0:j1] - x, ry[i0:i1] - y).T
        return cls(i0, j0, crop, target)

    @classmethod
    def from_file(cls, path: str | os.PathLike, prediction: bool,
                  target: tuple[int, int] = TARGET) -> "ScaledMask":
        """Read a SegPC mask file (first channel): ground truth ``> 0``, prediction 40/20."""
        return cls.from_dense(read_mask(path), PRED_VALUES if prediction else None, target)

    # ----------------------------------------------------------------- helpers

    def to_dense(self) -> np.ndarray:
        """The full ``target``-sized bool mask (for tests and debugging)."""
        out = np.zeros(self.target, dtype=bool)
        out[self.y0:self.y1, self.x0:self.x1] = self.crop
        return out

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` in target pixels, end exclusive."""
        return self.x0, self.y0, self.x1, self.y1

    def __repr__(self) -> str:
        return f"ScaledMask(box={self.box}, area={self.area}, target={self.target})"


def _rle_counts(counts) -> np.ndarray:
    """RLE counts → int64 array; decodes pycocotools' compressed string, vectorised.

    The compressed format (pycocotools ``rleFrString``): each count is a little-endian run of
    5-bit chunks stored as ``chr(48 + chunk)``, bit 0x20 of a char meaning "more chunks follow",
    bit 0x10 of the last one the sign; counts from the third on are stored as deltas to the
    count two before.
    """
    if isinstance(counts, (list, tuple, np.ndarray)):
        out = np.asarray(counts, dtype=np.int64).reshape(-1)
        if np.any(out < 0):
            raise ValueError("negative RLE count")
        return out
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    v = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48
    if len(v) == 0:
        return np.zeros(0, dtype=np.int64)
    if np.any((v < 0) | (v > 63)):
        raise ValueError("not a compressed RLE string")
    last = np.flatnonzero((v & 0x20) == 0)  # last chunk of every value
    if len(last) == 0 or last[-1] != len(v) - 1:
        raise ValueError("truncated compressed RLE string")
    first = np.concatenate(([0], last[:-1] + 1))
    nchunks = last - first + 1
    pos = np.arange(len(v)) - np.repeat(first, nchunks)
    x = np.add.reduceat((v & 0x1F) << (5 * pos), first)
    neg = (v[last] & 0x10) != 0
    x[neg] |= -(np.int64(1) << (5 * nchunks[neg]))
    x[1::2] = np.cumsum(x[1::2])  # undo the delta coding: x[m] += x[m-2] for m > 2
    x[2::2] = np.cumsum(x[2::2])
    if np.any(x < 0):
        raise ValueError("negative RLE count")
    return x


# --------------------------------------------------------------------------- IoU


def _boxes(masks: Sequence[ScaledMask]) -> np.ndarray:
    return np.array([(m.y0, m.x0, m.y1, m.x1) for m in masks], dtype=np.int64).reshape(-1, 4)


def iou_matrix(gt: Sequence[ScaledMask], pred: Sequence[ScaledMask]) -> np.ndarray:
    """``(len(gt), len(pred))`` IoUs; only pairs whose boxes overlap are counted (others are 0).

    An IoU is ``inter / (area_gt + area_pred - inter)`` of exact integer counts; empty masks
    have IoU 0 with everything.
    """
    out = np.zeros((len(gt), len(pred)), dtype=np.float64)
    if not gt or not pred:
        return out
    g, p = _boxes(gt), _boxes(pred)
    overlap = ((g[:, None, 0] < p[None, :, 2]) & (p[None, :, 0] < g[:, None, 2])
               & (g[:, None, 1] < p[None, :, 3]) & (p[None, :, 1] < g[:, None, 3]))
    for gi, pi in zip(*np.nonzero(overlap)):
        a, b = gt[gi], pred[pi]
        if a.target != b.target:
            raise ValueError("masks of different target sizes")
        y0, y1 = max(a.y0, b.y0), min(a.y1, b.y1)
        x0, x1 = max(a.x0, b.x0), min(a.x1, b.x1)
        inter = int(np.count_nonzero(a.crop[y0 - a.y0:y1 - a.y0, x0 - a.x0:x1 - a.x0]
                                     & b.crop[y0 - b.y0:y1 - b.y0, x0 - b.x0:x1 - b.x0]))
        if inter:
            out[gi, pi] = inter / (a.area + b.area - inter)
    return out


def best_ious(gt: Sequence[ScaledMask], pred: Sequence[ScaledMask]) -> np.ndarray:
    """Best IoU of every ground-truth mask over ``pred`` (0 where nothing overlaps it)."""
    m = iou_matrix(gt, pred)
    return m.max(axis=1) if m.shape[1] else np.zeros(len(gt), dtype=np.float64)


def best_matches(gt: Sequence[ScaledMask], pred: Sequence[ScaledMask]) -> tuple[np.ndarray, np.ndarray]:
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


def accumulate(name: str, gt: Sequence[ScaledMask], pred: Sequence[ScaledMask]) -> ImageRecord:
    """Score one image: its ground-truth cells against its predictions."""
    return ImageRecord(str(name), best_ious(gt, pred), len(pred))


def natural_key(name: str) -> tuple:
    """Sort ``'9' < '10' < 'a'``: image ids are mostly numbers."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t)


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


def evaluate_masks(gt: Mapping[str, Sequence[ScaledMask]], pred: Mapping[str, Sequence[ScaledMask]],
                   gt_source: str | os.PathLike | None = None) -> MIoUResult:
    """Score in-memory masks: image name → ground-truth masks, image name → predicted masks.

    Images absent from ``pred`` have no predictions (their cells score 0); images of ``pred``
    absent from ``gt`` are ignored (listed in ``unmatched_pred_images``).
    """
    records = [accumulate(name, masks, pred.get(name, ())) for name, masks in gt.items()]
    unmatched = [n for n, p in pred.items() if n not in gt and len(p)]
    return summarize(records, gt_source, unmatched)


# --------------------------------------------------------------------------- files


def _mask_files(folder: Path) -> dict[str, list[Path]]:
    """``<id>_<k>.bmp|png`` files of a folder grouped by image id (hidden files skipped)."""
    groups: dict[str, list[Path]] = {}
    with os.scandir(folder) as it:
        entries = sorted((e.name for e in it if e.is_file() and not e.name.startswith(".")),
                         key=natural_key)
    for fname in entries:
        stem, ext = os.path.splitext(fname)
        if ext.lower() not in MASK_EXTS:
            continue
        try:
            image_id, _ = split_mask_stem(stem)
        except ValueError:
            raise SegPCError(folder / fname, "mask name must be <image id>_<cell index>") from None
        groups.setdefault(image_id, []).append(folder / fname)
    return groups


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
    prediction dump ``.pkl`` (:func:`segpc.structures.load_dump`; images matched by ``name``).
    Masks are read by a pool of ``workers`` threads (OpenCV decodes without the GIL).
    """
    gt_root = Path(gt_dir)
    folder = find_gt_dir(gt_root)
    gt_files = _mask_files(folder)
    if not gt_files:
        raise SegPCError(gt_root, f"no ground-truth masks ({', '.join('*' + e for e in MASK_EXTS)})")
    pred = Path(pred)
    if not pred.exists():
        raise SegPCError(pred, "predictions not found (a submission folder or a .pkl dump)")

    pred_masks: dict[str, list[ScaledMask]] = {}
    jobs: list[tuple[str, bool, Path]] = [(i, False, p) for i, paths in gt_files.items() for p in paths]
    if pred.is_dir():
        pred_files = _mask_files(pred)
        unmatched = [i for i in pred_files if i not in gt_files]
        jobs += [(i, True, p) for i, paths in pred_files.items() if i in gt_files for p in paths]
    else:
        pred_masks = _dump_masks(pred)
        unmatched = [i for i, m in pred_masks.items() if i not in gt_files and m]

    workers = default_workers() if workers is None else max(1, int(workers))

    def load(job: tuple[str, bool, Path]) -> ScaledMask:
        return ScaledMask.from_file(job[2], prediction=job[1])

    if workers > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(workers) as pool:
            masks = list(pool.map(load, jobs))
    else:
        masks = [load(j) for j in jobs]

    gt_masks: dict[str, list[ScaledMask]] = {i: [] for i in gt_files}
    for (image_id, is_pred, _), m in zip(jobs, masks):
        (pred_masks.setdefault(image_id, []) if is_pred else gt_masks[image_id]).append(m)
    records = [accumulate(i, gt_masks[i], pred_masks.get(i, ())) for i in gt_files]
    return summarize(records, gt_root, unmatched)


def _dump_masks(path: Path) -> dict[str, list[ScaledMask]]:
    from segpc.structures import load_dump  # pycocotools; only needed for dumps

    dump = load_dump(path)
    out: dict[str, list[ScaledMask]] = {}
    for img in dump.get("images", []):
        name = str(img["name"])
        if name in out:
            raise SegPCError(path, f"image {name!r} appears twice in the dump")
        try:
            out[name] = [ScaledMask.from_rle(c["cell"]) for c in img["cells"]]
        except (KeyError, TypeError, ValueError) as e:
            raise SegPCError(path, f"bad cell in image {name!r} ({type(e).__name__}: {e})") from None
    return out
