"""Three-class semantic maps (0 background, 1 cytoplasm, 2 nucleus) and back to cells.

* :func:`semantic_map` / :func:`export_semantic` (``tools/export_semantic.py``): a SegPC split's
  per-cell masks → one map per image, the labels a U-Net learns. Where cells overlap, nucleus
  wins, then cytoplasm.
* :func:`recover_cells`: a predicted map → cells with their nucleus (the prediction format of
  :mod:`segpc.structures`), so a semantic model is scored with the challenge's mIoU and writes
  the same ``<id>_<k>.bmp`` submission as the instance models. Every connected nucleus
  component seeds a cell; the cell foreground (cytoplasm ∪ nucleus) is split between the seeds
  by a watershed on the distance to the nearest nucleus, so cytoplasm goes to the nearest
  nucleus it is connected to. Cytoplasm not connected to any nucleus is dropped.

Light: numpy, OpenCV, scipy and scikit-image; no torch.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from segpc.io import NUCLEUS, SegPCError, atomic_dir, read_mask, write_image

SEMANTIC_CLASSES = ("background", "cytoplasm", "nucleus")
BACKGROUND_ID, CYTOPLASM_ID, NUCLEUS_ID = 0, 1, 2
FORMATS = ("png", "bmp")


def semantic_map(masks: Sequence[np.ndarray], shape: tuple[int, int] | None = None) -> np.ndarray:
    """SegPC cell masks (0, 20, 40; any value > 0 other than 40 is cytoplasm) → ``(H, W)`` uint8
    map: 0 background, 1 cytoplasm, 2 nucleus; per pixel the highest class of any cell."""
    if shape is None:
        if not masks:
            raise ValueError("no masks and no shape")
        shape = masks[0].shape
    out = np.zeros(shape, np.uint8)
    for m in masks:
        cls = np.where(m == NUCLEUS, NUCLEUS_ID, np.where(m > 0, CYTOPLASM_ID, BACKGROUND_ID)).astype(np.uint8)
        np.maximum(out, cls, out=out)
    return out


def export_semantic(split_dir: str | os.PathLike, out_dir: str | os.PathLike, fmt: str = "png",
                    progress: bool = True) -> dict[str, int]:
    """Write ``out_dir/<image stem>.<fmt>`` (:func:`semantic_map`) for every image of a split.

    An image without masks gets an all-background map. A mask whose size differs from its
    image's is an error. ``out_dir`` may hold only maps of this split's images (they are
    replaced); anything else there is refused. Nothing is written on error. Returns
    ``{"images", "cells"}``.
    """
    from segpc.datasets.convert import header_size, scan_split

    if fmt not in FORMATS:
        raise SegPCError(None, f"unknown format {fmt!r} (choose {', '.join(FORMATS)})")
    entries = scan_split(split_dir)
    out = Path(out_dir)
    names = {f"{e.stem}.{fmt}" for e in entries}
    cells = 0
    with atomic_dir(out, names.__contains__, overwrite=True) as tmp:  # only this split's maps are replaced
        for e in tqdm(entries, desc="semantic", unit="img", disable=not progress):
            masks = [read_mask(p) for _, p in e.masks]
            hw = header_size(e.path)
            if hw is None:
                from segpc.io import image_size

                hw = image_size(e.path)
            for (_, p), m in zip(e.masks, masks):
                if m.shape != tuple(hw):
                    raise SegPCError(p, f"mask is {m.shape[1]}x{m.shape[0]} but its image is {hw[1]}x{hw[0]}")
            write_image(Path(tmp) / f"{e.stem}.{fmt}", semantic_map(masks, tuple(hw)))
            cells += len(masks)
    return {"images": len(entries), "cells": cells}


# --------------------------------------------------------------------------- map → cells


def recover_cells(sem: np.ndarray, scores: np.ndarray | None = None, min_nucleus_area: int = 0) -> list[dict]:
    """Cells with their nucleus from a ``(H, W)`` map (0 background, 1 cytoplasm, 2 nucleus).

    Each 8-connected nucleus component of at least ``min_nucleus_area`` pixels seeds a cell (smaller
    ones count as cytoplasm). The foreground (map > 0) is flooded from the seeds by a watershed
    on the Euclidean distance to the nearest seed, restricted to the foreground: every pixel goes
    to the seed it is nearest to along the foreground. Pixels of foreground components without
    a seed belong to no cell. The nucleus of a cell is its seed.

    ``scores``: optional ``(H, W)`` per-pixel confidence; a cell's score is its mean over the
    cell (1.0 without). Returns cell dicts (``score``, ``bbox``, ``cell``, ``nucleus`` RLE) by
    decreasing score, then by position of the seed.
    """
    import cv2
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    from segpc.structures import bbox_xyxy, encode

    sem = np.asarray(sem)
    if sem.ndim != 2:
        raise ValueError(f"semantic map must be 2-D, got shape {sem.shape}")
    nucleus = (sem == NUCLEUS_ID).astype(np.uint8)
    n, seeds, stats, _ = cv2.connectedComponentsWithStats(nucleus, connectivity=8)
    small = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] < min_nucleus_area]
    if small:
        seeds[np.isin(seeds, small)] = 0
    fg = sem > 0
    if not (seeds > 0).any():
        return []
    dist = ndi.distance_transform_edt(seeds == 0)
    regions = watershed(dist, markers=seeds, mask=fg, connectivity=2)
    cells = []
    for i in range(1, n):
        if i in small:
            continue
        cell = regions == i
        nuc = seeds == i
        score = float(scores[cell].mean()) if scores is not None else 1.0
        rle = encode(cell)
        cells.append({"score": score, "bbox": bbox_xyxy(rle), "cell": rle, "nucleus": encode(nuc)})
    cells.sort(key=lambda c: -c["score"])  # stable: equal scores keep seed order
    return cells
