"""Boxes: ``(x1, y1, x2, y2)`` in pixels, ``x2``/``y2`` exclusive, unless a name says ``xywh``.

The box of an RLE is :func:`segpc.structures.rle.bbox_xyxy`; the box of a crop mask is
:attr:`segpc.structures.CropMask.box`. COCO annotations store ``[x, y, w, h]``
(:func:`xyxy_to_xywh`).
"""
from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

FLIP_DIRECTIONS = ("horizontal", "vertical", "diagonal")


def mask_box(mask: np.ndarray) -> Optional[tuple[int, int, int, int]]:
    """``(x1, y1, x2, y2)`` of the nonzero pixels of a 2-D mask; ``None`` when it has none."""
    mask = np.asarray(mask)
    if mask.dtype == np.bool_:
        mask = mask.view(np.uint8)
    elif mask.dtype != np.uint8:
        mask = (mask != 0).view(np.uint8)
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask))
    return (x, y, x + w, y + h) if w and h else None


def xyxy_to_xywh(box: Sequence[int]) -> list[int]:
    """``[x1, y1, x2, y2]`` → COCO's ``[x, y, w, h]``."""
    x1, y1, x2, y2 = (int(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def boxes_overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two boxes share a pixel (touching edges do not)."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def overlap_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` bool: :func:`boxes_overlap` of every pair of ``(N, 4)`` boxes."""
    a = np.asarray(a).reshape(-1, 4)
    b = np.asarray(b).reshape(-1, 4)
    return ((a[:, None, 0] < b[None, :, 2]) & (b[None, :, 0] < a[:, None, 2])
            & (a[:, None, 1] < b[None, :, 3]) & (b[None, :, 1] < a[:, None, 3]))


def flip_image(image: np.ndarray, direction: Optional[str]) -> np.ndarray:
    """An ``(H, W, ...)`` array mirrored like :func:`flip_boxes` (its own inverse); ``None``
    returns it unchanged."""
    if direction is None:
        return image
    if direction not in FLIP_DIRECTIONS:
        raise ValueError(f"unknown flip direction {direction!r}")
    axes = {"horizontal": (1,), "vertical": (0,), "diagonal": (0, 1)}[direction]
    return np.ascontiguousarray(np.flip(image, axis=axes))


def flip_boxes(boxes: np.ndarray, size: Sequence[int], direction: Optional[str]) -> np.ndarray:
    """``(N, 4)`` boxes mirrored in a ``size = (H, W)`` frame: ``'horizontal'`` (x),
    ``'vertical'`` (y), ``'diagonal'`` (both); ``None`` copies them. A flip is its own inverse,
    so this maps boxes predicted on a flipped image back too."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if direction is None:
        return boxes.copy()
    if direction not in FLIP_DIRECTIONS:
        raise ValueError(f"unknown flip direction {direction!r}")
    h, w = float(size[0]), float(size[1])
    out = boxes.copy()
    if direction in ("horizontal", "diagonal"):
        out[:, 0], out[:, 2] = w - boxes[:, 2], w - boxes[:, 0]
    if direction in ("vertical", "diagonal"):
        out[:, 1], out[:, 3] = h - boxes[:, 3], h - boxes[:, 1]
    return out
