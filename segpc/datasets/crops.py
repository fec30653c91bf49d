"""Nucleus-guided multi-scale crops (the second-place SegPC-2021 method, bmdeep).

For a nucleus with box ``h x w`` and a scale ``s`` the crop *window* is the box grown by
``round(s*h/2)`` rows and ``round(s*w/2)`` columns on each side (Python's ``round``, as the
published ``crop_multi_scale_submats``). A window that crosses the image border keeps its full
size: what lies outside the frame is zero. The crop has four channels: the image after
per-channel histogram equalisation (:func:`equalize`) and 255 on the pixels of **this**
nucleus only (other nuclei in the window are 0).

The network sees the crop at ``size x size`` (256): centre-padded with zeros when the crop is
smaller than ``size`` in both directions, else resized (image bilinear, nucleus channel
bilinear then ``> 127``, as the published ``resize_pad``). :func:`from_input` inverts that for a
prediction and clips it to the frame.

Light: numpy and OpenCV.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from segpc.structures import CropMask

SCALES = (0.5, 1.75, 2.6, 3.0)
INPUT_SIZE = 256


@dataclass(frozen=True)
class Window:
    """A crop window ``[y0, y1) x [x0, x1)`` in a ``frame = (H, W)`` (may reach outside it)."""

    y0: int
    x0: int
    y1: int
    x1: int
    frame: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    @property
    def inside(self) -> tuple[int, int, int, int]:
        """The part inside the frame, ``(y0, x0, y1, x1)`` in frame coordinates."""
        h, w = self.frame
        return max(0, self.y0), max(0, self.x0), min(h, self.y1), min(w, self.x1)


@dataclass(frozen=True)
class Fit:
    """How a crop of ``shape`` became the ``size x size`` input: ``pad`` (offset ``dy, dx``)
    or resize."""

    shape: tuple[int, int]
    size: int
    pad: bool
    dy: int = 0
    dx: int = 0


def crop_window(box: Sequence[int], scale: float, frame: Sequence[int]) -> Window:
    """The window of a nucleus box ``(x1, y1, x2, y2)`` (end exclusive) at ``scale``."""
    x1, y1, x2, y2 = (int(v) for v in box)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"empty nucleus box {tuple(box)}")
    dy, dx = round(scale * (y2 - y1) / 2), round(scale * (x2 - x1) / 2)
    return Window(y1 - dy, x1 - dx, y2 + dy, x2 + dx, (int(frame[0]), int(frame[1])))


def window_patch(array: np.ndarray, window: Window) -> np.ndarray:
    """``array[y0:y1, x0:x1]`` of a frame-sized array, zero outside the frame (full window size)."""
    if tuple(array.shape[:2]) != window.frame:
        raise ValueError(f"array of shape {array.shape[:2]} is not the window's frame {window.frame}")
    out = np.zeros(window.shape + array.shape[2:], dtype=array.dtype)
    y0, x0, y1, x1 = window.inside
    if y1 > y0 and x1 > x0:
        out[y0 - window.y0:y1 - window.y0, x0 - window.x0:x1 - window.x0] = array[y0:y1, x0:x1]
    return out


def mask_patch(mask: CropMask, window: Window) -> np.ndarray:
    """A frame mask's pixels inside ``window`` as a bool ``window.shape`` array (zero outside)."""
    if mask.size != window.frame:
        raise ValueError(f"mask frame {mask.size} is not the window's frame {window.frame}")
    out = np.zeros(window.shape, dtype=bool)
    y0, x0 = max(mask.y0, window.y0), max(mask.x0, window.x0)
    y1, x1 = min(mask.y1, window.y1), min(mask.x1, window.x1)
    if mask.area and y1 > y0 and x1 > x0:
        out[y0 - window.y0:y1 - window.y0, x0 - window.x0:x1 - window.x0] = \
            mask.crop[y0 - mask.y0:y1 - mask.y0, x0 - mask.x0:x1 - mask.x0]
    return out


def equalize(image: np.ndarray) -> np.ndarray:
    """Histogram equalisation of every channel of an ``(H, W, C)`` uint8 image (a copy)."""
    if image.ndim != 3 or image.dtype != np.uint8:
        raise ValueError("expected an (H, W, C) uint8 image")
    return np.stack([cv2.equalizeHist(np.ascontiguousarray(image[..., c])) for c in range(image.shape[2])],
                    axis=-1)


def make_crop(image_eq: np.ndarray, nucleus: CropMask, scale: float) -> tuple[np.ndarray, Window]:
    """The ``(h, w, 4)`` uint8 crop of one nucleus at ``scale`` and its window.

    ``image_eq``: the equalised ``(H, W, 3)`` image; channel 3 is 255 on ``nucleus`` only.
    """
    if nucleus.area == 0:
        raise ValueError("empty nucleus")
    window = crop_window(nucleus.box, scale, image_eq.shape[:2])
    crop = np.concatenate([window_patch(image_eq, window),
                           (mask_patch(nucleus, window) * np.uint8(255))[..., None]], axis=-1)
    return crop, window


def fit_to_input(shape: Sequence[int], size: int = INPUT_SIZE) -> Fit:
    """Centre padding when both sides are smaller than ``size``, else a resize."""
    h, w = int(shape[0]), int(shape[1])
    if h < size and w < size:
        return Fit((h, w), size, True, (size - h) // 2, (size - w) // 2)
    return Fit((h, w), size, False)


def to_input(crop: np.ndarray, fit: Fit, label: bool = False) -> np.ndarray:
    """A crop (or, ``label=True``, its 2-D target) brought to ``fit.size x fit.size``.

    4-channel crops: the image channels bilinear, the nucleus channel bilinear then ``> 127``
    (255/0). Labels: nearest neighbour.
    """
    if tuple(crop.shape[:2]) != fit.shape:
        raise ValueError(f"crop of shape {crop.shape[:2]}, fit for {fit.shape}")
    s = fit.size
    if fit.pad:
        out = np.zeros((s, s) + crop.shape[2:], dtype=crop.dtype)
        out[fit.dy:fit.dy + fit.shape[0], fit.dx:fit.dx + fit.shape[1]] = crop
        return out
    if label:
        return cv2.resize(crop, (s, s), interpolation=cv2.INTER_NEAREST)
    out = cv2.resize(crop, (s, s), interpolation=cv2.INTER_LINEAR)
    if out.ndim == 3 and out.shape[2] == 4:
        out[..., 3] = np.where(out[..., 3] > 127, 255, 0).astype(out.dtype)
    return out


def from_input(pred: np.ndarray, fit: Fit, window: Window) -> CropMask:
    """A ``size x size`` bool prediction → the frame mask of ``window`` (clipped to the frame).

    Padded inputs: the crop's area of the prediction; resized: nearest resize to the window.
    """
    pred = np.asarray(pred)
    if pred.shape != (fit.size, fit.size):
        raise ValueError(f"prediction of shape {pred.shape}, expected {fit.size}x{fit.size}")
    h, w = fit.shape
    if fit.pad:
        crop = pred[fit.dy:fit.dy + h, fit.dx:fit.dx + w]
    else:
        crop = cv2.resize(pred.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    y0, x0, y1, x1 = window.inside
    crop = crop[y0 - window.y0:y1 - window.y0, x0 - window.x0:x1 - window.x0] != 0
    return CropMask(y0, x0, crop, window.frame)
