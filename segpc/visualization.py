"""Overlays of predicted and ground-truth cells (outlines), for eyes rather than metrics."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from segpc.io import NUCLEUS, write_image

# BGR colours: cell outline, nucleus outline.
PRED_COLORS = ((0, 215, 255), (255, 0, 255))  # yellow cell, magenta nucleus
GT_COLORS = ((0, 200, 0), (255, 128, 0))  # green cell, blue nucleus


def draw_cells(image: np.ndarray, masks: Sequence[np.ndarray], colors=PRED_COLORS,
               thickness: int = 2) -> np.ndarray:
    """Draw each SegPC mask's cell outline (> 0) and nucleus outline (== 40) on a copy of ``image``."""
    out = image.copy()
    for m in masks:
        for region, color in ((m > 0, colors[0]), (m == NUCLEUS, colors[1])):
            contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, color, thickness)
    return out


def caption(img: np.ndarray, text: str) -> np.ndarray:
    """A copy of ``img`` with ``text`` written in its top-left corner (white on a dark outline)."""
    out = img.copy()
    scale = max(0.5, img.shape[1] / 900)
    cv2.putText(out, text, (8, int(28 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                int(3 * scale) + 1, cv2.LINE_AA)
    cv2.putText(out, text, (8, int(28 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                max(1, int(scale)), cv2.LINE_AA)
    return out


def comparison(image: np.ndarray, pred_masks: Sequence[np.ndarray], gt_masks: Sequence[np.ndarray],
               title: str = "") -> np.ndarray:
    """Prediction (left) next to ground truth (right) on the same image."""
    thickness = max(1, image.shape[1] // 400)
    left = caption(draw_cells(image, pred_masks, PRED_COLORS, thickness), f"prediction {title}".strip())
    right = caption(draw_cells(image, gt_masks, GT_COLORS, thickness), "ground truth")
    return np.concatenate([left, np.full((image.shape[0], 8, 3), 255, np.uint8), right], axis=1)


def write_comparison(path: str | Path, image, pred_masks, gt_masks, title: str = "") -> None:
    write_image(path, comparison(image, pred_masks, gt_masks, title))
