"""Cells as label maps that imgaug can move exactly, and back to COCO RLE annotations.

All cells of an image travel through the augmenter in **one** ``SegmentationMapsOnImage``:

* cells are assigned greedily to *layers* so that cells in one layer never overlap (SegPC cells
  do overlap; a handful of layers suffices, usually 1-3);
* in a layer, slot ``s`` (1..127) marks its cytoplasm pixels ``2s - 1`` and its nucleus pixels
  ``2s``, so the nucleus can never leave its cell;
* three 8-bit layers are packed into one int32 channel (``value << 8 * k``, below 2**24 so exact
  even where imgaug goes through float32).

imgaug moves segmentation maps with nearest-neighbour sampling only (every geometric augmenter;
colour, contrast, blur and noise augmenters skip them), so each output pixel takes the whole
packed value of one source pixel: warping the packed map equals warping every cell mask on its
own, bit for bit, and costs one channel instead of one per cell.

After augmentation :func:`extract_cells` reads every cell back from the packed map straight to
COCO RLE (column-major runs of the sorted pixel positions; no full-size mask per cell).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from segpc.structures import bbox_xyxy, mask_box, xyxy_to_xywh
from segpc.structures.rle import encode_positions

LAYERS_PER_CHANNEL = 3
SLOTS_PER_LAYER = 127  # values 1..254 in a byte


@dataclass
class PackedCells:
    """Cells of one image packed for augmentation (see module doc)."""

    arr: np.ndarray  # (H, W, C) int32
    slots: list[tuple[int, int]]  # per cell: (layer, slot); layer k lives in channel k // 3
    keys: list  # per cell: caller's key (e.g. the cell_index), same order as ``slots``


def pack_cells(cells: list[tuple[object, np.ndarray, np.ndarray | None]], height: int, width: int) -> PackedCells:
    """Pack ``[(key, cell_mask, nucleus_mask or None), ...]`` (``(H, W)`` 0/1 masks).

    The nucleus is clipped to its cell. Cells with an empty mask are skipped.
    """
    layers: list[np.ndarray] = []  # uint8 label map per layer
    counts: list[int] = []
    slots, keys = [], []
    for key, cell, nucleus in cells:
        xyxy = mask_box(cell)
        if xyxy is None:
            continue
        box = (slice(xyxy[1], xyxy[3]), slice(xyxy[0], xyxy[2]))
        cell = cell.astype(bool)
        for k, layer in enumerate(layers):
            if counts[k] < SLOTS_PER_LAYER and not np.any(layer[box][cell[box]]):
                break
        else:
            layers.append(np.zeros((height, width), np.uint8))
            counts.append(0)
            k = len(layers) - 1
        counts[k] += 1
        s = counts[k]
        layer = layers[k]
        layer[box][cell[box]] = 2 * s - 1
        if nucleus is not None:
            nuc = nucleus[box].astype(bool) & cell[box]
            layer[box][nuc] = 2 * s
        slots.append((k, s))
        keys.append(key)
    nch = max(1, -(-len(layers) // LAYERS_PER_CHANNEL))
    arr = np.zeros((height, width, nch), np.int32)
    for k, layer in enumerate(layers):
        c, shift = divmod(k, LAYERS_PER_CHANNEL)
        if shift == 0:
            arr[..., c] = layer
        else:
            arr[..., c] |= layer.astype(np.int32) << (8 * shift)
    return PackedCells(arr, slots, keys)


def _mask_entry(pos: np.ndarray, height: int, width: int) -> dict:
    """COCO mask entry of the mask whose set pixels are the sorted column-major indices ``pos``."""
    rle = encode_positions(pos, (height, width))
    return {"segmentation": rle, "area": int(len(pos)), "bbox": xyxy_to_xywh(bbox_xyxy(rle))}


def extract_cells(arr: np.ndarray, packed: PackedCells, min_area: int = 1) -> list[dict]:
    """Read the cells back from an (augmented) packed map ``(H, W, C)``.

    Returns, in packing order, ``{"key", "cell", "nucleus", "cytoplasm"}`` per cell whose area is
    at least ``min_area``; each mask entry is ``{"segmentation": RLE, "area", "bbox": [x, y, w, h]}``
    or ``None`` when empty (a nucleus pushed out of the frame, a cell that is all nucleus).
    """
    height, width = arr.shape[:2]
    by_layer: dict[int, list[int]] = {}
    for i, (k, _) in enumerate(packed.slots):
        by_layer.setdefault(k, []).append(i)
    found: dict[int, dict] = {}
    for c in range(arr.shape[2]):
        layers = [k for k in range(c * LAYERS_PER_CHANNEL, (c + 1) * LAYERS_PER_CHANNEL) if k in by_layer]
        if not layers:
            continue
        # transposed, the flat index of a pixel is its column-major (RLE) index
        chan_t = cv2.transpose(np.ascontiguousarray(arr[..., c]))
        flat = chan_t.ravel()
        nz_all = np.flatnonzero(flat)
        packed_vals = flat[nz_all]
        for k in layers:
            shift = k - c * LAYERS_PER_CHANNEL
            v = ((packed_vals >> (8 * shift)) & 255).astype(np.uint8)
            keep = np.flatnonzero(v)
            nz, v = nz_all[keep], v[keep]
            if len(nz) == 0:
                continue
            cid = (v + 1) >> 1
            order = np.argsort(cid, kind="stable")
            nz, v, cid = nz[order], v[order], cid[order]
            bounds = np.searchsorted(cid, np.arange(1, SLOTS_PER_LAYER + 2))
            for i in by_layer[k]:
                s = packed.slots[i][1]
                lo, hi = bounds[s - 1], bounds[s]
                if hi - lo < max(1, min_area):
                    continue
                pos, vv = nz[lo:hi], v[lo:hi]
                nuc = pos[vv == 2 * s]
                cyto = pos[vv == 2 * s - 1]
                found[i] = {
                    "key": packed.keys[i],
                    "cell": _mask_entry(pos, height, width),
                    "nucleus": _mask_entry(nuc, height, width) if len(nuc) else None,
                    "cytoplasm": _mask_entry(cyto, height, width) if len(cyto) else None,
                }
    return [found[i] for i in sorted(found)]


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """Downscale a 0/1 mask like the image (area averaging), then threshold at one half."""
    if mask.shape[:2] == (height, width):
        return mask.astype(np.uint8)
    m = cv2.resize(mask.astype(np.uint8) * 255, (width, height), interpolation=cv2.INTER_AREA)
    return (m >= 128).astype(np.uint8)


def resize_packed(arr: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a packed map (nearest neighbour, exact values)."""
    if arr.shape[:2] == (height, width):
        return arr
    out = np.empty((height, width, arr.shape[2]), np.int32)
    for c in range(arr.shape[2]):
        # float32 holds the packed values (< 2**24) exactly; nearest only copies them
        out[..., c] = cv2.resize(arr[..., c].astype(np.float32), (width, height),
                                 interpolation=cv2.INTER_NEAREST).astype(np.int32)
    return out


def fit_size(width: int, height: int, max_size: tuple[int, int] | None) -> tuple[int, int]:
    """``(w, h)`` downscaled (never up) to fit ``max_size = (W, H)``, keeping the aspect ratio."""
    if not max_size:
        return width, height
    scale = min(max_size[0] / width, max_size[1] / height, 1.0)
    if scale >= 1.0:
        return width, height
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))
