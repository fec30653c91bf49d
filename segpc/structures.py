"""SegPC predictions: cells with their nucleus, as RLE, and the prediction dump format.

A *cell* prediction is a dict::

    {"score": float, "bbox": [x1, y1, x2, y2],          # box of the cell mask, x2/y2 exclusive
     "cell": RLE, "nucleus": RLE | None}                 # nucleus is clipped to the cell

RLEs are pycocotools' compressed RLE dicts with ``counts`` as ``str`` (pickle/JSON friendly).

Models with other classes (Sartorius: shsy5y, astro, cort) write cells with an optional
``"category": str`` (the class name) and no nucleus; readers that do not need it ignore it, and
dumps without it stay valid.

A *prediction dump* (``tools/test.py --out``) is a pickle of::

    {"format": "segpc-predictions/1",
     "images": [{"name": "106", "img_id": 106, "height": H, "width": W, "cells": [cell, ...]}]}

From a dump a submission is written as the challenge expects: one ``<name>_<k>.bmp`` per cell,
nucleus pixels 40, cytoplasm pixels (cell − nucleus) 20, background 0.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from segpc.io import CYTOPLASM, NUCLEUS, SegPCError, atomic_dir, write_pickle

DUMP_FORMAT = "segpc-predictions/1"
CLASSES = ("nucleus", "cytoplasm", "cell")
NUCLEUS_LABEL, CYTOPLASM_LABEL, CELL_LABEL = 0, 1, 2


# --------------------------------------------------------------------------- RLE helpers


def encode(mask: np.ndarray) -> dict:
    """Binary ``(H, W)`` mask → compressed RLE with ``str`` counts."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def encode_many(masks: np.ndarray) -> list[dict]:
    """``(N, H, W)`` binary masks → list of RLEs (one C call for all of them)."""
    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(np.transpose(masks, (1, 2, 0)), dtype=np.uint8))
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return rles


def _c(rle: dict) -> dict:
    """pycocotools wants bytes counts."""
    counts = rle["counts"]
    if isinstance(counts, str):
        return {"size": rle["size"], "counts": counts.encode("ascii")}
    if isinstance(counts, list):  # uncompressed RLE
        h, w = rle["size"]
        return mask_utils.frPyObjects(rle, h, w)
    return rle


def decode(rle: dict) -> np.ndarray:
    """RLE → ``(H, W)`` uint8 0/1 mask."""
    return mask_utils.decode(_c(rle))


def area(rle: dict) -> int:
    return int(mask_utils.area(_c(rle)))


def bbox_xyxy(rle: dict) -> list[int]:
    """Tight box ``[x1, y1, x2, y2]`` (x2, y2 exclusive) of an RLE; zeros if empty."""
    x, y, w, h = (int(v) for v in mask_utils.toBbox(_c(rle)))
    return [x, y, x + w, y + h]


def rle_iou(a: Sequence[dict], b: Sequence[dict]) -> np.ndarray:
    """``(len(a), len(b))`` IoUs of RLEs (pycocotools; it compares only pairs whose boxes overlap)."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), dtype=np.float64)
    ious = mask_utils.iou([_c(r) for r in a], [_c(r) for r in b], [0] * len(b))
    return np.asarray(ious, dtype=np.float64).reshape(len(a), len(b))


def intersect(a: dict, b: dict) -> dict:
    out = mask_utils.merge([_c(a), _c(b)], intersect=True)
    out["counts"] = out["counts"].decode("ascii")
    return out


# --------------------------------------------------------------------------- cell assembly


def boxes_overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def assemble_cells(
    rles: Sequence[dict],
    labels: Sequence[int],
    scores: Sequence[float],
    score_thr: float = 0.0,
) -> list[dict]:
    """Turn a model's three-class instances into cells with their nucleus.

    Every cell-class instance with ``score >= score_thr`` becomes a cell. Its nucleus is the
    nucleus-class instance (of any score) with the largest ``|nucleus ∩ cell| / |cell|``, clipped
    to the cell; a cell that no nucleus touches has none. Cytoplasm-class instances are not used:
    cytoplasm is cell − nucleus. Cells are returned by decreasing score; empty cells are dropped.
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    nuclei = [(rles[i], bbox_xyxy(rles[i])) for i in np.flatnonzero(labels == NUCLEUS_LABEL)]
    cell_idx = [i for i in np.flatnonzero(labels == CELL_LABEL) if scores[i] >= score_thr]
    cell_idx.sort(key=lambda i: -scores[i])
    cells = []
    for i in cell_idx:
        cell = rles[i]
        cell_area = area(cell)
        if cell_area == 0:
            continue
        box = bbox_xyxy(cell)
        best, best_inter = None, 0
        for nuc, nbox in nuclei:
            if not boxes_overlap(box, nbox):
                continue
            inter = intersect(cell, nuc)
            n = area(inter)
            if n > best_inter:
                best, best_inter = inter, n
        cells.append({"score": float(scores[i]), "bbox": box, "cell": cell, "nucleus": best})
    return cells


# --------------------------------------------------------------------------- dumps & submissions


def make_dump(images: Iterable[dict]) -> dict:
    return {"format": DUMP_FORMAT, "images": list(images)}


def save_dump(dump: dict, path: str | os.PathLike) -> None:
    write_pickle(dump, path)


def load_dump(path: str | os.PathLike) -> dict:
    """Load a prediction dump written by ``tools/test.py --out`` (or the ensemble)."""
    try:
        with open(path, "rb") as f:
            dump = pickle.load(f)
    except FileNotFoundError:
        raise SegPCError(path, "file not found") from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise SegPCError(path, f"not a prediction dump ({type(e).__name__}: {e})") from None
    if not isinstance(dump, dict) or dump.get("format") != DUMP_FORMAT:
        raise SegPCError(path, f"not a prediction dump (expected format {DUMP_FORMAT!r})")
    return dump


def cell_to_mask(cell: dict) -> np.ndarray:
    """One predicted cell → a SegPC mask: nucleus 40, cytoplasm 20, background 0."""
    m = decode(cell["cell"]).astype(np.uint8) * CYTOPLASM
    if cell.get("nucleus") is not None:
        nuc = decode(cell["nucleus"]).astype(bool) & (m > 0)
        m[nuc] = NUCLEUS
    return m


def write_submission(dump: dict, out_dir: str | os.PathLike) -> int:
    """Write ``<name>_<k>.bmp`` (k from 1) per predicted cell; replaces ``out_dir`` atomically.

    Returns the number of files written.
    """
    import cv2  # local: keep module import light for pure users

    n = 0
    with atomic_dir(out_dir) as tmp:
        for img in dump["images"]:
            for k, cell in enumerate(img["cells"], start=1):
                path = Path(tmp) / f"{img['name']}_{k}.bmp"
                if not cv2.imwrite(str(path), cell_to_mask(cell)):
                    raise SegPCError(path, "cannot write submission mask")
                n += 1
    return n


# --------------------------------------------------------------------------- Kaggle run-length
#
# Kaggle's cell competitions (Sartorius, the Data Science Bowl 2018) write a mask as
# "start length start length ...": starts 1-indexed, pixels numbered row by row (the mask
# flattened in C order). Read with :func:`kaggle_runs` (checked), write with :func:`kaggle_encode`.


def kaggle_runs(text: str, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Kaggle run-length text → 0-indexed ``(starts, ends)`` (end exclusive, row-major pixels).

    Runs come back sorted, adjacent runs joined. Raises ``ValueError`` (one line) on an odd
    number of values, a value that is not an integer, a start below 1, a length below 1, a
    run past the ``height x width`` image, or overlapping runs. An empty text is an empty mask.
    """
    parts = text.split()
    if len(parts) % 2:
        raise ValueError(f"odd number of run-length values ({len(parts)})")
    try:
        v = np.array(parts, dtype=np.int64)
    except ValueError:
        bad = next(p for p in parts if not p.lstrip("-").isdigit())
        raise ValueError(f"run-length value {bad!r} is not an integer") from None
    starts, lengths = v[0::2] - 1, v[1::2]
    if len(starts) and starts.min() < 0:
        raise ValueError(f"run start {int(starts.min()) + 1} is below 1 (starts are 1-indexed)")
    if len(lengths) and lengths.min() < 1:
        raise ValueError(f"run length {int(lengths.min())} is below 1")
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], starts[order] + lengths[order]
    n = int(height) * int(width)
    if len(ends) and ends.max() > n:
        i = int(np.argmax(ends))
        raise ValueError(f"run {int(starts[i]) + 1} {int(ends[i] - starts[i])} ends past the "
                         f"{width}x{height} image ({n} pixels)")
    if np.any(starts[1:] < ends[:-1]):
        i = int(np.flatnonzero(starts[1:] < ends[:-1])[0])
        raise ValueError(f"runs {int(starts[i]) + 1} and {int(starts[i + 1]) + 1} overlap")
    keep = np.concatenate(([True], starts[1:] != ends[:-1])) if len(starts) else np.zeros(0, bool)
    last = np.concatenate((keep[1:], [True])) if len(starts) else keep
    return starts[keep], ends[last]


def kaggle_decode(text: str, height: int, width: int) -> np.ndarray:
    """Kaggle run-length text → ``(height, width)`` uint8 0/1 mask."""
    starts, ends = kaggle_runs(text, height, width)
    flat = np.zeros(int(height) * int(width), dtype=np.uint8)
    for s, e in zip(starts.tolist(), ends.tolist()):
        flat[s:e] = 1
    return flat.reshape(int(height), int(width))


def kaggle_encode(mask: np.ndarray) -> str:
    """Binary ``(H, W)`` mask → Kaggle run-length text (1-indexed starts, row-major)."""
    flat = np.asarray(mask).reshape(-1) != 0
    edges = np.flatnonzero(np.diff(np.concatenate(([False], flat, [False])).view(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    out = np.empty(2 * len(starts), dtype=np.int64)
    out[0::2], out[1::2] = starts + 1, ends - starts
    return " ".join(map(str, out.tolist()))


def kaggle_to_rle(text: str, height: int, width: int) -> dict:
    """Kaggle run-length text → the mask's compressed RLE (as :func:`encode` gives it)."""
    return encode(kaggle_decode(text, height, width))


def rle_to_kaggle(rle: dict) -> str:
    """Compressed (or uncompressed) RLE → Kaggle run-length text."""
    return kaggle_encode(decode(rle))


def kaggle_to_rle_t(text: str, height: int, width: int) -> dict:
    """Kaggle run-length text → compressed RLE of the **transposed** ``(width, height)`` mask.

    Row-major runs of a mask are the column-major (COCO) runs of its transpose, so this needs
    no decoding. Areas and IoUs are the same as the mask's, which is all a metric needs; both
    sides of a comparison must then be transposed.
    """
    starts, ends = kaggle_runs(text, height, width)
    bounds = np.empty(2 * len(starts) + 1, dtype=np.int64)
    bounds[0] = 0
    bounds[1::2], bounds[2::2] = starts, ends
    counts = np.diff(bounds).tolist()
    n = int(height) * int(width)
    if not counts or bounds[-1] < n:
        counts.append(n - int(bounds[-1]))
    rle = mask_utils.frPyObjects({"counts": counts, "size": [int(width), int(height)]},
                                 int(width), int(height))
    return {"size": [int(width), int(height)], "counts": rle["counts"].decode("ascii")}
