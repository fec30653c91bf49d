"""Ensemble of prediction dumps: the IoU-matched majority vote of the SegPC-2021 winners.

``ensemble_dumps([ref, other_1, ..., other_m], min_iou=0.85, quorum=None)``; per image:

1. **Matching.** For every reference cell, every other model contributes its cell of highest
   IoU (whole-cell masks, at the images' own resolution; ties go to the cell listed first in
   that model's dump) when that IoU is ``>= min_iou``. Matching is per reference cell: one
   cell of another model may contribute to several reference cells.
2. **Vote.** When all ``m`` other models contribute (with ``quorum=K``: at least ``K`` of
   them), the cell mask is voted pixel by pixel over the ``n = 1 + contributors`` voters (the
   reference and the contributing cells): a pixel is in when more than half of the voters have
   it (``2 * votes > n``); a tie (exactly ``n / 2``, only for even ``n``) goes to the reference
   (in if and only if the reference cell has the pixel). The nucleus is voted the same way over
   the same voters (a cell without nucleus votes "no" everywhere), then clipped to the voted
   cell; an empty result is no nucleus. The voted cell's score is the mean of the voters'
   scores, its box the box of the voted mask. (If the voted cell came out empty, possible only
   with a very low ``min_iou``, the reference cell is kept.)
3. **Otherwise** (too few contributors) the reference cell is kept as it is.
4. **Cells the reference missed.** A cell of another model whose IoU with every reference cell
   is below ``min_iou`` is *unmatched* (a cell that reached ``min_iou`` with some reference cell
   is represented there, even if it was not that model's best match, and is not added). The
   unmatched cells are added as they are, model by model in argument order, each model's cells
   in dump order; duplicates among them: a cell is dropped when its IoU with a cell already
   added *from an earlier model* is ``>= min_iou`` (cells of one model are never compared with
   each other: a model's own output is kept as it is).
5. The image's cells are sorted by decreasing score (stable: reference cells first, then the
   added ones, in the order above).

Everything works on RLE and boxes: IoUs by pycocotools on the RLEs (bounding boxes first),
votes on the crops of the voters' boxes (:mod:`segpc.cropmask`), the result written back as
canonical RLE. :func:`dense_reference_ensemble_dumps` is the same scheme on full-frame arrays,
slow on purpose: the tests and ``benchmarks/bench_ensemble.py`` check that both give identical
dumps.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from segpc import cropmask
from segpc.io import SegPCError
from segpc.structures import _c, area, bbox_xyxy, decode, encode, make_dump

DEFAULT_MIN_IOU = 0.85


# --------------------------------------------------------------------------- checks



def _emit(out: list, stats: dict, cell: dict, voted: dict | None) -> None:
    """Append the voted cell, or the reference cell unchanged when there was no vote."""
    out.append(cell if voted is None else voted)
    stats["kept" if voted is None else "voted"] += 1


def _image_sizes(dump: dict, src: str) -> dict[str, tuple[int, int]]:
    """Image name → (H, W); every cell's masks must be at its image's size."""
    sizes = {}
    for img in dump.get("images", []):
        name = str(img["name"])
        if name in sizes:
            raise SegPCError(src, f"image {name!r} appears twice in the dump")
        h, w = int(img["height"]), int(img["width"])
        sizes[name] = (h, w)
        for k, cell in enumerate(img["cells"], start=1):
            for key in ("cell", "nucleus"):
                rle = cell[key] if key == "cell" else cell.get(key)
                if rle is not None and tuple(int(v) for v in rle["size"]) != (h, w):
                    raise SegPCError(src, f"image {name!r}, cell {k}: {key} mask is "
                                          f"{rle['size'][0]}x{rle['size'][1]}, the image {h}x{w}")
            float(cell["score"])  # every cell has a numeric score
    return sizes


def check_dumps(dumps: Sequence[dict], sources: Optional[Sequence[str]] = None,
                quorum: Optional[int] = None, min_iou: float = DEFAULT_MIN_IOU) -> int:
    """Raise a one-line :class:`SegPCError` unless the dumps can be ensembled; returns the quorum.

    Every dump must hold the same image names as the first (the reference), each image at the
    same size, and every cell's RLE at its image's size.
    """
    sources = [str(s) for s in sources] if sources is not None else [f"dump #{i + 1}" for i in range(len(dumps))]
    if len(dumps) < 2:
        raise SegPCError(None, "the ensemble needs a reference dump and at least one other")
    if not 0.0 < float(min_iou) <= 1.0:
        raise SegPCError(None, f"min-iou must be in (0, 1], got {min_iou}")
    others = len(dumps) - 1
    if quorum is None:
        quorum = others
    if not 1 <= int(quorum) <= others:
        raise SegPCError(None, f"quorum must be between 1 and {others} (the number of other dumps), got {quorum}")
    ref_sizes = None
    for dump, src in zip(dumps, sources):
        try:
            sizes = _image_sizes(dump, src)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise SegPCError(src, f"malformed prediction dump ({type(e).__name__}: {e})") from None
        if ref_sizes is None:
            ref_sizes = sizes
            continue
        missing = sorted(set(ref_sizes) - set(sizes))
        extra = sorted(set(sizes) - set(ref_sizes))
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"lacks {len(missing)} image(s) of {sources[0]} ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
            if extra:
                parts.append(f"has {len(extra)} image(s) that {sources[0]} has not ({', '.join(extra[:3])}{', ...' if len(extra) > 3 else ''})")
            raise SegPCError(src, "different image set: " + " and ".join(parts))
        for name, hw in ref_sizes.items():
            if sizes[name] != hw:
                raise SegPCError(src, f"image {name!r} is {sizes[name][0]}x{sizes[name][1]} here, "
                                      f"{hw[0]}x{hw[1]} in {sources[0]}")
    return int(quorum)


# --------------------------------------------------------------------------- the scheme


def _sorted_cells(cells: list[dict]) -> list[dict]:
    order = sorted(range(len(cells)), key=lambda i: -cells[i]["score"])
    return [cells[i] for i in order]


def _mean(values: Sequence[float]) -> float:
    """Mean score; exactly the value when all are equal (identical models change nothing)."""
    if all(v == values[0] for v in values):
        return float(values[0])
    return math.fsum(values) / len(values)


def _plan(ious: Sequence[np.ndarray], min_iou: float, quorum: int):
    """From ``ious[j]`` (reference cells x cells of other model j), per reference cell the
    contributing ``(j, index)`` pairs and whether it is voted; per other model the mask of
    its matched cells (IoU ``>= min_iou`` with some reference cell)."""
    n_ref = ious[0].shape[0] if ious else 0
    contributors: list[list[tuple[int, int]]] = [[] for _ in range(n_ref)]
    matched = []
    for j, m in enumerate(ious):
        if m.shape[1] == 0:
            matched.append(np.zeros(0, dtype=bool))
            continue
        if n_ref:
            best = m.argmax(axis=1)
            for r in range(n_ref):
                if m[r, best[r]] >= min_iou:
                    contributors[r].append((j, int(best[r])))
            matched.append((m >= min_iou).any(axis=0))
        else:
            matched.append(np.zeros(m.shape[1], dtype=bool))
    voted = [len(c) >= quorum for c in contributors]
    return contributors, voted, matched


def _rle_iou(a: list, b: list) -> np.ndarray:
    """IoUs ``len(a) x len(b)`` of pycocotools RLEs; pairs whose boxes do not overlap are 0."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    return np.asarray(mask_utils.iou(a, b, [0] * len(b)), dtype=np.float64).reshape(len(a), len(b))


class _Masks:
    """One model's cells of one image: pycocotools RLEs (for IoUs) and lazily decoded crops."""

    def __init__(self, cells: list[dict]):
        self.cells = cells
        self.areas = [area(c["cell"]) for c in cells]
        self.rles = [_c(c["cell"]) for c in cells]
        self._crops: dict[tuple[int, str], object] = {}

    def crop(self, i: int, key: str):
        got = self._crops.get((i, key))
        if got is None:
            rle = self.cells[i].get(key)
            if rle is None:
                h, w = self.cells[i]["cell"]["size"]
                got = cropmask.ScaledMask.empty((int(h), int(w)))
            else:
                got = cropmask.from_rle(rle)
            self._crops[(i, key)] = got
        return got


def _iou(a: _Masks, ia: Sequence[int], b: _Masks, ib: Sequence[int]) -> np.ndarray:
    """IoUs of ``a``'s cells ``ia`` x ``b``'s cells ``ib``; empty cells have IoU 0 with everything."""
    out = np.zeros((len(ia), len(ib)))
    ra = [r for r, i in enumerate(ia) if a.areas[i] > 0]
    rb = [r for r, i in enumerate(ib) if b.areas[i] > 0]
    if ra and rb:
        out[np.ix_(ra, rb)] = _rle_iou([a.rles[ia[r]] for r in ra], [b.rles[ib[r]] for r in rb])
    return out


def _vote_cell(voters: list[tuple[_Masks, int]]) -> Optional[dict]:
    """Voted cell (reference first among ``voters``), or None when the voted cell is empty."""
    cell = cropmask.vote([m.crop(i, "cell") for m, i in voters], anchor=0)
    if cell.area == 0:
        return None
    nucleus = cropmask.intersect(cropmask.vote([m.crop(i, "nucleus") for m, i in voters], anchor=0), cell)
    return {"score": _mean([m.cells[i]["score"] for m, i in voters]),
            "bbox": cropmask.bbox(cell),
            "cell": cropmask.to_rle(cell),
            "nucleus": cropmask.to_rle(nucleus) if nucleus.area else None}


def _ensemble_image(models: list[list[dict]], min_iou: float, quorum: int,
                    stats: dict) -> list[dict]:
    masks = [_Masks(cells) for cells in models]
    ref, others = masks[0], masks[1:]
    every = [list(range(len(m.cells))) for m in masks]
    ious = [_iou(ref, every[0], o, every[j + 1]) for j, o in enumerate(others)]
    contributors, voted, matched = _plan(ious, min_iou, quorum)
    out = []
    for r, cell in enumerate(ref.cells):
        new = None
        if voted[r]:
            new = _vote_cell([(ref, r)] + [(others[j], i) for j, i in contributors[r]])
        _emit(out, stats, cell, new)
    added: list[list[int]] = []  # per earlier other model: indices of its added cells
    for j, o in enumerate(others):
        mine = []
        candidates = [i for i in range(len(o.cells)) if not matched[j][i]]
        if candidates:
            dup = np.zeros(len(candidates), dtype=bool)
            for jj, idx in enumerate(added):
                if idx:
                    dup |= (_iou(o, candidates, others[jj], idx) >= min_iou).any(axis=1)
            for i, d in zip(candidates, dup):
                if d:
                    stats["duplicates"] += 1
                else:
                    out.append(o.cells[i])
                    mine.append(i)
                    stats["added"] += 1
        added.append(mine)
    return _sorted_cells(out)


def _run(dumps: Sequence[dict], min_iou: float, quorum: Optional[int], sources,
         image_fn: Callable) -> dict:
    quorum = check_dumps(dumps, sources, quorum, min_iou)
    by_name = [{str(img["name"]): img for img in d["images"]} for d in dumps]
    stats = {"voted": 0, "kept": 0, "added": 0, "duplicates": 0}
    images = []
    for img in dumps[0]["images"]:
        name = str(img["name"])
        cells = image_fn([d[name]["cells"] for d in by_name], float(min_iou), quorum, stats)
        images.append({k: v for k, v in img.items() if k != "cells"} | {"cells": cells})
    dump = make_dump(images)
    dump["ensemble"] = {"models": len(dumps), "min_iou": float(min_iou), "quorum": quorum, **stats}
    if sources is not None:
        dump["ensemble"]["sources"] = [str(s) for s in sources]
    return dump


def ensemble_dumps(dumps: Sequence[dict], min_iou: float = DEFAULT_MIN_IOU, quorum: Optional[int] = None,
                   sources: Optional[Sequence[str]] = None) -> dict:
    """Ensemble prediction dumps, ``dumps[0]`` the reference (see the module docstring).

    ``quorum``: how many of the other models must contribute for a vote (default: all).
    ``sources``: the dumps' file names, for error messages (and recorded in the result).
    Returns a ``segpc-predictions/1`` dump with the reference's images, plus an ``"ensemble"``
    entry: ``models, min_iou, quorum, voted, kept, added, duplicates`` (cell counts).
    """
    return _run(dumps, min_iou, quorum, sources, _ensemble_image)


# --------------------------------------------------------------------------- dense reference


def _dense_image(models: list[list[dict]], min_iou: float, quorum: int, stats: dict) -> list[dict]:
    """The same scheme on full-frame arrays: every mask decoded, every pair compared whole."""
    def frames(cells, key):
        out = []
        for c in cells:
            if c.get(key) is None:
                h, w = c["cell"]["size"]
                out.append(np.zeros((h, w), dtype=bool))
            else:
                out.append(decode(c[key]).astype(bool))
        return out

    cells = [frames(m, "cell") for m in models]
    nuclei = [frames(m, "nucleus") for m in models]

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        inter = int(np.count_nonzero(a & b))
        union = int(np.count_nonzero(a)) + int(np.count_nonzero(b)) - inter
        return inter / union if inter else 0.0

    ref = cells[0]
    n_other = len(models) - 1
    # ious[j][r][i]: reference cell r against cell i of other model j
    ious = [[[iou(r, o) for o in cells[j + 1]] for r in ref] for j in range(n_other)]
    contributors = []
    for r in range(len(ref)):
        found = []
        for j in range(n_other):
            row = ious[j][r]
            if row:
                best = max(range(len(row)), key=lambda i: (row[i], -i))  # first of the highest
                if row[best] >= min_iou:
                    found.append((j, best))
        contributors.append(found)
    voted = [len(c) >= quorum for c in contributors]
    matched = [[any(ious[j][r][i] >= min_iou for r in range(len(ref))) for i in range(len(cells[j + 1]))]
               for j in range(n_other)]

    def majority(stack: list[np.ndarray]) -> np.ndarray:
        votes = np.sum(np.stack(stack), axis=0)
        n = len(stack)
        return (2 * votes > n) | ((2 * votes == n) & stack[0])

    out = []
    for r, cell in enumerate(models[0]):
        new = None
        if voted[r]:
            voters = [(0, r)] + [(j + 1, i) for j, i in contributors[r]]
            c = majority([cells[m][i] for m, i in voters])
            if c.any():
                nuc = majority([nuclei[m][i] for m, i in voters]) & c
                new = {"score": _mean([models[m][i]["score"] for m, i in voters]),
                       "bbox": bbox_xyxy(encode(c)),
                       "cell": encode(c),
                       "nucleus": encode(nuc) if nuc.any() else None}
        _emit(out, stats, cell, new)
    added: list[list[int]] = []
    for j in range(1, len(models)):
        mine = []
        for i, c in enumerate(cells[j]):
            if matched[j - 1][i]:
                continue
            if any(iou(c, cells[jj + 1][k]) >= min_iou for jj, idx in enumerate(added) for k in idx):
                stats["duplicates"] += 1
                continue
            out.append(models[j][i])
            mine.append(i)
            stats["added"] += 1
        added.append(mine)
    return _sorted_cells(out)


def dense_reference_ensemble_dumps(dumps: Sequence[dict], min_iou: float = DEFAULT_MIN_IOU,
                                   quorum: Optional[int] = None,
                                   sources: Optional[Sequence[str]] = None) -> dict:
    """:func:`ensemble_dumps` done the straightforward way, on dense full-frame masks.

    The yardstick of the tests and the benchmark: slow on purpose, same output.
    """
    return _run(dumps, min_iou, quorum, sources, _dense_image)
