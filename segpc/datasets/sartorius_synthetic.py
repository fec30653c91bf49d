"""Synthetic Sartorius-like data: phase-contrast-looking neuronal cells in Kaggle's CSV layout.

For tests and demos of the Sartorius path (the real data is Kaggle's, not shipped). Written::

    <out_dir>/<split>.csv          train.csv's columns, one row per cell (Kaggle run-length)
    <out_dir>/<split>/<id>.png     8-bit grayscale, 704 wide x 520 high by default

One cell type per image, cycling shsy5y, astro, cort: shsy5y small elongated cells with a
process, many per image; astro large irregular cells, few; cort small round cells. Cells are
bright with a dark halo on a grey, unevenly lit background; about one cell in ten overlaps an
earlier one (both masks keep their whole shape, as Sartorius annotates). Image ``i`` is drawn
from its own generator seeded by ``(seed, i)``; the same arguments give byte-identical files.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from segpc.datasets.sartorius import COLUMNS, CELL_TYPES
from segpc.io import SegPCError, atomic_dir, atomic_path, write_image
from segpc.structures import kaggle_encode

DEFAULT_SIZE = (520, 704)  # (H, W) of the competition's images
# Cells per image for each type (low, high), and the shape parameters (pixels at 520x704).
CELL_COUNTS = {"shsy5y": (25, 45), "astro": (6, 14), "cort": (12, 28)}


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(index,)))


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    low = cv2.resize(rng.normal(0, 1, (6, 8)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return 128 + 10 * low + rng.normal(0, 4, (h, w)).astype(np.float32)


def _cell_mask(rng: np.random.Generator, cell_type: str, h: int, w: int, s: float) -> np.ndarray:
    """One cell's mask (uint8 0/1, full frame) of ``cell_type``; ``s`` scales sizes."""
    m = np.zeros((h, w), dtype=np.uint8)
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    angle = rng.uniform(0, 180)
    if cell_type == "shsy5y":
        a, b = rng.uniform(9, 15) * s, rng.uniform(4, 6.5) * s
        cv2.ellipse(m, (int(cx), int(cy)), (int(a), int(b)), angle, 0, 360, 1, -1)
        t = np.deg2rad(angle + rng.choice([0, 180]))
        length = rng.uniform(10, 22) * s
        end = (int(cx + np.cos(t) * (a + length)), int(cy + np.sin(t) * (a + length)))
        cv2.line(m, (int(cx), int(cy)), end, 1, max(1, int(round(2 * s))))
    elif cell_type == "astro":
        n = 14
        theta = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, 2 * np.pi)
        r = rng.uniform(14, 24) * s * (1 + 0.45 * rng.random(n) * (rng.random(n) < 0.5))
        pts = np.stack([cx + r * np.cos(theta), cy + r * np.sin(theta)], axis=1)
        cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
    else:  # cort
        a = rng.uniform(7, 10) * s
        b = a * rng.uniform(0.75, 1.0)
        cv2.ellipse(m, (int(cx), int(cy)), (int(a), int(b)), angle, 0, 360, 1, -1)
    return m


def generate_image(rng: np.random.Generator, cell_type: str, size: Sequence[int] = DEFAULT_SIZE,
                   max_cells: Optional[int] = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """One grayscale image and its cells' masks (each with at least 20 pixels inside the frame)."""
    h, w = int(size[0]), int(size[1])
    s = min(h / DEFAULT_SIZE[0], w / DEFAULT_SIZE[1]) ** 0.5
    lo, hi = CELL_COUNTS[cell_type]
    n = int(rng.integers(lo, hi + 1))
    if max_cells is not None:
        n = min(n, int(max_cells))
    img = _background(rng, h, w)
    taken = np.zeros((h, w), dtype=bool)
    masks = []
    for _ in range(20 * n):
        if len(masks) == n:
            break
        m = _cell_mask(rng, cell_type, h, w, s)
        if m.sum() < 20:
            continue
        overlap = np.count_nonzero(taken & (m > 0))
        if overlap and (rng.random() > 0.1 or overlap > 0.3 * m.sum()):
            continue  # most cells are apart; a few overlap a little
        taken |= m > 0
        masks.append(m)
    for m in masks:
        ring = cv2.dilate(m, np.ones((5, 5), np.uint8)) - m
        img -= 30 * ring
        inner = cv2.GaussianBlur(m.astype(np.float32), (5, 5), 0)
        img += 35 * inner * m
    return np.clip(img, 0, 255).astype(np.uint8), masks


def _hex_id(rng: np.random.Generator) -> str:
    return "".join(f"{v:02x}" for v in rng.integers(0, 256, 6))


def write_sartorius_synthetic(out_dir: str | os.PathLike, num: int, seed: int = 0, split: str = "train",
                              size: Sequence[int] = DEFAULT_SIZE, max_cells: Optional[int] = None,
                              overwrite: bool = False, progress: bool = False) -> list[str]:
    """Write ``num`` images to ``out_dir/<split>/`` and their cells to ``out_dir/<split>.csv``.

    Returns the image ids (12 hex digits, as Kaggle's). ``out_dir/<split>/`` is replaced only
    when complete; if it already holds files, :class:`SegPCError` unless they are a previous
    synthetic set and ``overwrite`` (:func:`segpc.io.check_output_dir`).
    """
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise SegPCError(None, f"num must be a positive integer, got {num!r}")
    out = Path(out_dir)
    img_dir, csv_path = out / split, out / f"{split}.csv"
    h, w = int(size[0]), int(size[1])
    rows, ids = [], []
    with atomic_dir(img_dir, (r"[0-9a-f]{12}\.png",), overwrite) as tmp:  # only a previous synthetic set
        for i in tqdm(range(num), desc="synthetic", unit="img", disable=not progress):
            rng = _rng(seed, i)
            img_id = _hex_id(rng)
            cell_type = CELL_TYPES[i % len(CELL_TYPES)]
            img, masks = generate_image(rng, cell_type, (h, w), max_cells)
            write_image(tmp / f"{img_id}.png", img)
            ids.append(img_id)
            day = 10 + i % 18
            for m in masks:
                rows.append([img_id, kaggle_encode(m), w, h, cell_type, "11d04h00m00s",
                             f"2019-06-{day:02d}", f"{cell_type}[synthetic]_{i}",
                             "0 days 11:00:00"])
        with atomic_path(csv_path) as tmp_csv:
            with open(tmp_csv, "w", newline="") as f:
                writer = csv.writer(f, lineterminator="\n")
                writer.writerow(COLUMNS)
                writer.writerows(rows)
    return ids
