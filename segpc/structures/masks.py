"""``CropMask``: a binary mask stored as its tight box and the crop inside it, in a frame.

Every consumer of masks (the mIoU, the TTA merge, the ensemble, the dataset converter) works on
crops, never on dense full-frame pairs. A :class:`CropMask` is built from a dense mask, an RLE
(compressed, uncompressed or COCO polygons) or a mask file, either at the source's own size or
**resized** on the way to a target frame with OpenCV's nearest-neighbour rule (what the SegPC
challenge does to every mask: 1080x1440). The resize touches only the crop of the mask's box:
OpenCV's nearest-neighbour resize is separable (``dst[i, j] == src[ry[i], cx[j]]``) and the
index maps ``ry``/``cx`` are taken from OpenCV itself (:func:`resize_maps`), so the crop comes
out exactly as ``cv2.resize`` of the whole frame would have it. Reading an RLE paints only its
box; writing one (:meth:`CropMask.to_rle`) gives the canonical string ``pycocotools`` gives for
the dense mask.

On crop masks of one frame: :meth:`~CropMask.flip`, ``a & b``, :func:`iou_matrix` (exact
integer counts, only pairs whose boxes overlap), :func:`vote` (pixel-wise majority) and
:func:`paste` (back to dense frames).

Light: numpy, OpenCV and pycocotools; no torch.
"""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Optional, Sequence

import cv2
import numpy as np

from segpc.io import read_mask
from segpc.structures import rle as rle_codec
from segpc.structures.boxes import FLIP_DIRECTIONS, mask_box, overlap_matrix

Size = tuple[int, int]
TIE_RULES = ("anchor", "out")


# --------------------------------------------------------------------------- resize index maps


@lru_cache(maxsize=64)
def resize_maps(src_hw: Size, target: Size) -> tuple[np.ndarray, np.ndarray]:
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


def _select(a: np.ndarray, values: Optional[Sequence[int]]) -> np.ndarray:
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


def _size(size: Sequence[int]) -> Size:
    return int(size[0]), int(size[1])


# --------------------------------------------------------------------------- CropMask


class CropMask:
    """A binary mask in a ``size = (H, W)`` frame, stored as its tight box and the crop inside it.

    ``y0, x0, y1, x1``: the box (end exclusive); ``crop``: ``(y1-y0, x1-x0)`` bool; ``area``:
    number of pixels. An empty mask has an empty box and area 0. The constructor places a
    ``crop`` at ``(y0, x0)`` and trims it to its tight box.
    """

    __slots__ = ("y0", "x0", "y1", "x1", "crop", "area", "size")

    def __init__(self, y0: int, x0: int, crop: np.ndarray, size: Sequence[int]):
        crop = np.asarray(crop, dtype=bool)
        if crop.ndim != 2:
            raise ValueError("crop must be 2-D")
        self.size = _size(size)
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
        if y0 < 0 or x0 < 0 or self.y1 > self.size[0] or self.x1 > self.size[1]:
            raise ValueError("crop does not fit in the frame")
        self.crop = np.ascontiguousarray(crop)

    # ----------------------------------------------------------------- builders

    @classmethod
    def empty(cls, size: Sequence[int]) -> "CropMask":
        return cls(0, 0, np.zeros((0, 0), dtype=bool), size)

    @classmethod
    def from_dense(cls, mask: np.ndarray, values: Optional[Sequence[int]] = None,
                   target: Optional[Sequence[int]] = None) -> "CropMask":
        """An ``(H, W)`` mask → its crop mask, nearest-resized to ``target`` (default: ``(H, W)``).

        ``values=None``: the mask is its nonzero pixels (a bool mask, or a ground-truth SegPC
        mask, ``> 0``). Otherwise the mask is the pixels whose value is in ``values`` (a SegPC
        prediction: nucleus 40 and cytoplasm 20). Only the box of the nonzero pixels is read.
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
        target = mask.shape if target is None else _size(target)
        box = mask_box(mask)  # box of the nonzero pixels, at source resolution
        if box is None:
            return cls.empty(target)
        x, y, x_end, y_end = box
        sub = mask[y:y_end, x:x_end]
        if tuple(target) == mask.shape:
            return cls(y, x, _select(sub, values), target)
        ry, cx = resize_maps(mask.shape, target)
        i0, i1 = _span(ry, y, y_end)
        j0, j1 = _span(cx, x, x_end)
        if i0 == i1 or j0 == j1:  # every pixel of the mask falls between sampled rows/columns
            return cls.empty(target)
        rows, cols = ry[i0:i1] - y, cx[j0:j1] - x
        if (i1 - i0) * (j1 - j0) < sub.size:  # test the values on the smaller of box and crop
            return cls(i0, j0, _select(_gather(sub, rows, cols), values), target)
        return cls(i0, j0, _gather(_select(sub, values), rows, cols), target)

    @classmethod
    def from_rle(cls, rle: dict | list, size: Optional[Sequence[int]] = None,
                 target: Optional[Sequence[int]] = None) -> "CropMask":
        """A COCO mask → its crop mask, nearest-resized to ``target`` (default: the RLE's size).

        ``rle``: compressed RLE (``counts`` as ``str``/``bytes``) or uncompressed RLE
        (``counts`` as a list), with ``size = [H, W]``; a COCO polygon list is accepted too when
        ``size`` (``(H, W)``) is given. The runs are painted only inside the mask's box.
        """
        if isinstance(rle, list):  # COCO polygons
            if size is None:
                raise ValueError("polygon segmentation needs size=(H, W)")
            rle = rle_codec.polygons_to_rle(rle, size)
        h, w = (int(v) for v in rle["size"])
        counts = rle_codec.decode_counts(rle["counts"])
        return cls._from_counts(counts, h, w, (h, w) if target is None else _size(target))

    @classmethod
    def _from_counts(cls, counts: np.ndarray, h: int, w: int, target: Size) -> "CropMask":
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
        identity = target == (h, w)
        if identity:
            i0, j0 = y, x
        else:
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
        crop = box_t if identity else _gather(box_t, cx[j0:j1] - x, ry[i0:i1] - y)
        return cls(i0, j0, crop.T, target)

    @classmethod
    def from_file(cls, path: str | os.PathLike, values: Optional[Sequence[int]] = None,
                  target: Optional[Sequence[int]] = None) -> "CropMask":
        """Read a mask file (first channel; :func:`segpc.io.read_mask`): see :meth:`from_dense`."""
        return cls.from_dense(read_mask(path), values, target)

    # ----------------------------------------------------------------- views and operations

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(x1, y1, x2, y2)``, end exclusive (``(0, 0, 0, 0)`` when empty)."""
        return self.x0, self.y0, self.x1, self.y1

    def to_dense(self) -> np.ndarray:
        """The ``size``-d bool mask."""
        out = np.zeros(self.size, dtype=bool)
        out[self.y0:self.y1, self.x0:self.x1] = self.crop
        return out

    def to_rle(self) -> dict:
        """Compressed RLE (``counts`` as ``str``), identical to ``encode`` of the dense mask."""
        return rle_codec.encode_crop(self.crop, self.y0, self.x0, self.size)

    def flip(self, direction: Optional[str]) -> "CropMask":
        """Mirrored in its frame: ``'horizontal'`` (x), ``'vertical'`` (y), ``'diagonal'`` (both).

        A flip is its own inverse, so this maps a mask predicted on a flipped image back too.
        ``None`` returns the mask unchanged.
        """
        if direction is None or self.area == 0:
            return self
        if direction not in FLIP_DIRECTIONS:
            raise ValueError(f"unknown flip direction {direction!r}")
        h, w = self.size
        y0, x0, crop = self.y0, self.x0, self.crop
        if direction in ("horizontal", "diagonal"):
            x0, crop = w - self.x1, crop[:, ::-1]
        if direction in ("vertical", "diagonal"):
            y0, crop = h - self.y1, crop[::-1]
        return CropMask(y0, x0, np.ascontiguousarray(crop), self.size)

    def __and__(self, other: "CropMask") -> "CropMask":
        size = _same_frame([self, other])
        y0, y1 = max(self.y0, other.y0), min(self.y1, other.y1)
        x0, x1 = max(self.x0, other.x0), min(self.x1, other.x1)
        if not (self.area and other.area) or y0 >= y1 or x0 >= x1:
            return CropMask.empty(size)
        return CropMask(y0, x0, self._window(y0, y1, x0, x1) & other._window(y0, y1, x0, x1), size)

    def _window(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The crop's pixels of the frame window ``[y0, y1) x [x0, x1)`` (inside the box)."""
        return self.crop[y0 - self.y0:y1 - self.y0, x0 - self.x0:x1 - self.x0]

    def __repr__(self) -> str:
        return f"CropMask(box={self.box}, area={self.area}, size={self.size})"


def _same_frame(masks: Sequence[CropMask]) -> Size:
    sizes = {m.size for m in masks}
    if len(sizes) != 1:
        raise ValueError(f"masks of different frame sizes: {sorted(sizes)}")
    return next(iter(sizes))


# --------------------------------------------------------------------------- on many masks


def iou_matrix(a: Sequence[CropMask], b: Sequence[CropMask]) -> np.ndarray:
    """``(len(a), len(b))`` IoUs; only pairs whose boxes overlap are counted (others are 0).

    An IoU is ``inter / (area_a + area_b - inter)`` of exact integer counts; empty masks have
    IoU 0 with everything.
    """
    out = np.zeros((len(a), len(b)), dtype=np.float64)
    if not a or not b:
        return out
    overlap = overlap_matrix([m.box for m in a], [m.box for m in b])
    for i, j in zip(*np.nonzero(overlap)):
        p, q = a[i], b[j]
        if p.size != q.size:
            raise ValueError("masks of different frame sizes")
        y0, y1 = max(p.y0, q.y0), min(p.y1, q.y1)
        x0, x1 = max(p.x0, q.x0), min(p.x1, q.x1)
        inter = int(np.count_nonzero(p._window(y0, y1, x0, x1) & q._window(y0, y1, x0, x1)))
        if inter:
            out[i, j] = inter / (p.area + q.area - inter)
    return out


def vote(masks: Sequence[CropMask], anchor: int = 0, tie: str = "anchor") -> CropMask:
    """Pixel-wise majority of ``n = len(masks)`` masks.

    A pixel is in when more than half of the masks have it (``2 * votes > n``). When exactly
    half have it (only possible for even ``n``): ``tie="anchor"`` puts it in if and only if
    ``masks[anchor]`` has it; ``tie="out"`` leaves it out (strict majority). Counted only over
    the union of the masks' boxes.
    """
    if not masks:
        raise ValueError("nothing to vote on")
    if tie not in TIE_RULES:
        raise ValueError(f"tie must be one of {TIE_RULES}, got {tie!r}")
    size = _same_frame(masks)
    live = [m for m in masks if m.area]
    if not live:
        return CropMask.empty(size)
    y0, x0 = min(m.y0 for m in live), min(m.x0 for m in live)
    y1, x1 = max(m.y1 for m in live), max(m.x1 for m in live)
    votes = np.zeros((y1 - y0, x1 - x0), dtype=np.int32)
    for m in live:
        votes[m.y0 - y0:m.y1 - y0, m.x0 - x0:m.x1 - x0] += m.crop
    n = len(masks)
    out = 2 * votes > n
    a = masks[anchor]
    if tie == "anchor" and n % 2 == 0 and a.area:
        sy, sx = slice(a.y0 - y0, a.y1 - y0), slice(a.x0 - x0, a.x1 - x0)
        out[sy, sx] |= (2 * votes[sy, sx] == n) & a.crop
    return CropMask(y0, x0, out, size)


def paste(masks: Sequence[CropMask], size: Sequence[int]) -> np.ndarray:
    """``(N, H, W)`` bool frames of ``masks`` (for consumers that need dense masks)."""
    out = np.zeros((len(masks),) + _size(size), dtype=bool)
    for i, m in enumerate(masks):
        if m.area:
            out[i, m.y0:m.y1, m.x0:m.x1] = m.crop
    return out
