"""Binary masks as box + crop at their own resolution: RLE in and out, flips, IoU, pixel votes.

The ensemble (:mod:`segpc.ensemble`) and the test-time augmentation (:mod:`segpc.models.tta`)
never build dense full-frame pairs: every mask is a :class:`~segpc.evaluation.miou.ScaledMask`
whose ``target`` is the mask's own ``(H, W)`` (an identity "resize"), i.e. its tight box and the
bool crop inside it. Reading an RLE paints only its box; writing one produces the canonical
compressed RLE — the very string ``pycocotools.mask.encode`` gives for the dense mask — from
the crop's column runs.

Light: numpy and pycocotools; no torch.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from pycocotools import mask as mask_utils

from segpc.evaluation.miou import ScaledMask, iou_matrix  # noqa: F401  (iou_matrix re-exported)

DIRECTIONS = ("horizontal", "vertical", "diagonal")


def from_rle(rle: dict) -> ScaledMask:
    """A COCO RLE (compressed or not) → box + crop at the RLE's own size, without a frame."""
    h, w = (int(v) for v in rle["size"])
    return ScaledMask.from_rle(rle, target=(h, w))


def from_dense(mask: np.ndarray) -> ScaledMask:
    """An ``(H, W)`` mask (nonzero = in) → box + crop."""
    mask = np.asarray(mask)
    return ScaledMask.from_dense(mask, target=mask.shape[:2])


def from_crop(y0: int, x0: int, crop: np.ndarray, size: Sequence[int]) -> ScaledMask:
    """A crop placed at ``(y0, x0)`` in a ``size = (H, W)`` frame (trimmed to its tight box)."""
    return ScaledMask(y0, x0, crop, target=(int(size[0]), int(size[1])))


def to_rle(m: ScaledMask) -> dict:
    """Box + crop → compressed RLE (``counts`` as ``str``), identical to ``encode`` of the frame.

    The runs are read from the crop column by column (COCO RLE is column-major); a run that
    ends at the bottom of a full-height crop and continues at the top of the next column is
    joined, so the counts are canonical (no zero-length runs between two runs of ones).
    """
    h, w = m.target
    if m.area == 0:
        counts = [h * w]
    else:
        ch, cw = m.crop.shape
        t = np.zeros((cw, ch + 2), dtype=np.int8)
        t[:, 1:-1] = m.crop.T
        cols, rows = np.nonzero(np.diff(t, axis=1))  # starts and ends of runs, in frame order
        pos = (m.x0 + cols).astype(np.int64) * h + m.y0 + rows
        # an end equal to the next start: the run continues into the next column
        joined = np.flatnonzero(np.diff(pos) == 0)
        if len(joined):
            pos = np.delete(pos, np.concatenate([joined, joined + 1]))
        if pos[-1] < h * w:  # pycocotools writes no trailing run of zeros after the last one
            pos = np.concatenate([pos, [h * w]])
        counts = np.diff(np.concatenate(([0], pos))).tolist()
    rle = mask_utils.frPyObjects({"counts": counts, "size": [h, w]}, h, w)
    rle["counts"] = rle["counts"].decode("ascii")
    return {"size": [h, w], "counts": rle["counts"]}


def bbox(m: ScaledMask) -> list[int]:
    """``[x1, y1, x2, y2]`` (end exclusive), zeros if empty: as :func:`segpc.structures.bbox_xyxy`."""
    return [m.x0, m.y0, m.x1, m.y1] if m.area else [0, 0, 0, 0]


def flip(m: ScaledMask, direction: str | None) -> ScaledMask:
    """Mirror ``m`` in its frame: ``'horizontal'`` (x), ``'vertical'`` (y), ``'diagonal'`` (both).

    A flip is its own inverse, so this maps a mask predicted on a flipped image back too.
    ``None`` returns ``m`` unchanged.
    """
    if direction is None or m.area == 0:
        return m
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown flip direction {direction!r}")
    h, w = m.target
    y0, x0, crop = m.y0, m.x0, m.crop
    if direction in ("horizontal", "diagonal"):
        x0, crop = w - m.x1, crop[:, ::-1]
    if direction in ("vertical", "diagonal"):
        y0, crop = h - m.y1, crop[::-1]
    return ScaledMask(y0, x0, np.ascontiguousarray(crop), target=(h, w))


def _same_frame(masks: Sequence[ScaledMask]) -> tuple[int, int]:
    sizes = {m.target for m in masks}
    if len(sizes) != 1:
        raise ValueError(f"masks of different sizes: {sorted(sizes)}")
    return next(iter(sizes))


def intersect(a: ScaledMask, b: ScaledMask) -> ScaledMask:
    """``a ∩ b``."""
    size = _same_frame([a, b])
    y0, y1 = max(a.y0, b.y0), min(a.y1, b.y1)
    x0, x1 = max(a.x0, b.x0), min(a.x1, b.x1)
    if not (a.area and b.area) or y0 >= y1 or x0 >= x1:
        return ScaledMask.empty(size)
    crop = (a.crop[y0 - a.y0:y1 - a.y0, x0 - a.x0:x1 - a.x0]
            & b.crop[y0 - b.y0:y1 - b.y0, x0 - b.x0:x1 - b.x0])
    return ScaledMask(y0, x0, crop, target=size)


def vote(masks: Sequence[ScaledMask], anchor: int = 0) -> ScaledMask:
    """Pixel-wise majority of ``n = len(masks)`` masks, ties broken by ``masks[anchor]``.

    A pixel is in when more than half of the masks have it (``2 * votes > n``); when exactly
    half have it (only possible for even ``n``) it is in if and only if the anchor mask has it.
    Counted only over the union of the masks' boxes.
    """
    if not masks:
        raise ValueError("nothing to vote on")
    size = _same_frame(masks)
    live = [m for m in masks if m.area]
    if not live:
        return ScaledMask.empty(size)
    y0, x0 = min(m.y0 for m in live), min(m.x0 for m in live)
    y1, x1 = max(m.y1 for m in live), max(m.x1 for m in live)
    votes = np.zeros((y1 - y0, x1 - x0), dtype=np.int32)
    for m in live:
        votes[m.y0 - y0:m.y1 - y0, m.x0 - x0:m.x1 - x0] += m.crop
    n = len(masks)
    out = 2 * votes > n
    a = masks[anchor]
    if n % 2 == 0 and a.area:
        sy, sx = slice(a.y0 - y0, a.y1 - y0), slice(a.x0 - x0, a.x1 - x0)
        out[sy, sx] |= (2 * votes[sy, sx] == n) & a.crop
    return ScaledMask(y0, x0, out, target=size)


def paste(masks: Sequence[ScaledMask], size: Sequence[int]) -> np.ndarray:
    """``(N, H, W)`` bool frames of ``masks`` (for consumers that need dense masks)."""
    h, w = int(size[0]), int(size[1])
    out = np.zeros((len(masks), h, w), dtype=bool)
    for i, m in enumerate(masks):
        if m.area:
            out[i, m.y0:m.y1, m.x0:m.x1] = m.crop
    return out
