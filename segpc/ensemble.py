"""Ensemble of prediction dumps: the IoU-matched majority vote of the SegPC-2021 winners.

``ensemble_dumps([ref, other_1, ..., other_m], min_iou=0.85, quorum=None)``; per image:

1. **Matching.** For every reference cell, every other model contributes its cell of highest
   IoU (whole-cell masks, at the images' own resolution; ties go to the cell listed first in
   that model's dump) when that IoU is ``>= min_iou``. Matching is per reference cell: one
   cell of another model may contribute to several reference cells.
2. **Vote.** When all ``m`` other models contribute (with ``quorum=K``: at least ``K`` of
   them), the cell mask is voted pixel by pixel over the ``n = 1 + contributors`` voters (the
   reference and the contributing cells): a pixel is in when more than half of the voters have
   it (``2 * votes > n``). A tie (exactly ``n / 2``, only for even ``n``): with ``tie="out"``
   (the default, the winners' own rule ``votes > n / 2``) the pixel is out; with
   ``tie="reference"`` it goes to the reference (in if and only if the reference cell has the
   pixel). The nucleus is voted the same way over
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

Inputs are prediction dumps or submission folders (:func:`segpc.structures.load_predictions`:
every cell of a folder scores 1.0; an image a folder has no file for has no cells there).

Everything works on RLE and boxes: IoUs by pycocotools on the RLEs (bounding boxes first),
votes on the crops of the voters' boxes (:class:`segpc.structures.CropMask`), the result
written back as canonical RLE. :mod:`segpc.testing.ensemble` is the same scheme on full-frame
arrays, slow on purpose: the tests and ``benchmarks/bench_ensemble.py`` check that both give
identical dumps.
"""
from __future__ import annotations

import math
import os
from typing import Callable, Optional, Sequence

import numpy as np

from segpc.io import SegPCError
from segpc.structures import CropMask, load_predictions, make_dump, validate_dump, vote
from segpc.structures.rle import area, as_coco, rle_iou

DEFAULT_MIN_IOU = 0.85
TIES = ("out", "reference")  # what a tie pixel of an even number of voters becomes
_VOTE_TIE = {"out": "out", "reference": "anchor"}


# --------------------------------------------------------------------------- inputs


def load_inputs(paths: Sequence[str | os.PathLike]) -> list[dict]:
    """Dumps and submission folders → dumps. A submission folder has no file for an image
    without cells: such images are added to its dump without cells (their size taken from the
    first input that has them)."""
    dumps = [load_predictions(p) for p in paths]
    sizes: dict[str, tuple[int, int]] = {}
    for d in dumps:
        for img in d["images"]:
            sizes.setdefault(img["name"], (img["height"], img["width"]))
    for path, d in zip(paths, dumps):
        if os.path.isdir(path):
            have = {img["name"] for img in d["images"]}
            d["images"] += [{"name": n, "height": h, "width": w, "cells": []}
                            for n, (h, w) in sizes.items() if n not in have]
    return dumps


# --------------------------------------------------------------------------- checks


def check_dumps(dumps: Sequence[dict], sources: Optional[Sequence[str]] = None,
                quorum: Optional[int] = None, min_iou: float = DEFAULT_MIN_IOU) -> int:
    """Raise a one-line :class:`SegPCError` unless the dumps can be ensembled; returns the quorum.

    Every dump must be valid (:func:`segpc.structures.validate_dump`) and hold the same image
    names as the first (the reference), each image at the same size.
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
        sizes = {img["name"]: (img["height"], img["width"]) for img in validate_dump(dump, src)["images"]}
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


def sort_cells(cells: list[dict]) -> list[dict]:
    """By decreasing score; stable."""
    order = sorted(range(len(cells)), key=lambda i: -cells[i]["score"])
    return [cells[i] for i in order]


def mean_score(values: Sequence[float]) -> float:
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


class _Masks:
    """One model's cells of one image: pycocotools RLEs (for IoUs) and lazily decoded crops."""

    def __init__(self, cells: list[dict]):
        self.cells = cells
        self.areas = [area(c["cell"]) for c in cells]
        self.rles = [as_coco(c["cell"]) for c in cells]
        self._crops: dict[tuple[int, str], object] = {}

    def crop(self, i: int, key: str) -> CropMask:
        got = self._crops.get((i, key))
        if got is None:
            rle = self.cells[i].get(key)
            got = CropMask.empty(self.cells[i]["cell"]["size"]) if rle is None else CropMask.from_rle(rle)
            self._crops[(i, key)] = got
        return got


def _iou(a: _Masks, ia: Sequence[int], b: _Masks, ib: Sequence[int]) -> np.ndarray:
    """IoUs of ``a``'s cells ``ia`` x ``b``'s cells ``ib``; empty cells have IoU 0 with everything."""
    out = np.zeros((len(ia), len(ib)))
    ra = [r for r, i in enumerate(ia) if a.areas[i] > 0]
    rb = [r for r, i in enumerate(ib) if b.areas[i] > 0]
    if ra and rb:
        out[np.ix_(ra, rb)] = rle_iou([a.rles[ia[r]] for r in ra], [b.rles[ib[r]] for r in rb])
    return out


def _vote_cell(voters: list[tuple[_Masks, int]], tie: str) -> Optional[dict]:
    """Voted cell (reference first among ``voters``), or None when the voted cell is empty."""
    rule = _VOTE_TIE[tie]
    cell = vote([m.crop(i, "cell") for m, i in voters], anchor=0, tie=rule)
    if cell.area == 0:
        return None
    nucleus = vote([m.crop(i, "nucleus") for m, i in voters], anchor=0, tie=rule) & cell
    return with_category({"score": mean_score([m.cells[i]["score"] for m, i in voters]),
                          "bbox": list(cell.box),
                          "cell": cell.to_rle(),
                          "nucleus": nucleus.to_rle() if nucleus.area else None},
                         voters[0][0].cells[voters[0][1]])


def with_category(voted: dict, ref: dict) -> dict:
    """A voted cell takes the reference cell's ``category`` (Sartorius dumps), if it has one."""
    if "category" in ref:
        voted["category"] = ref["category"]
    return voted


def ensemble_image(models: list[list[dict]], min_iou: float, quorum: int, tie: str,
                   stats: dict) -> list[dict]:
    """The scheme on one image: ``models[j]`` the cells of dump ``j`` (the reference first);
    adds to the cell counts in ``stats``; returns the image's cells."""
    masks = [_Masks(cells) for cells in models]
    ref, others = masks[0], masks[1:]
    every = [list(range(len(m.cells))) for m in masks]
    ious = [_iou(ref, every[0], o, every[j + 1]) for j, o in enumerate(others)]
    contributors, voted, matched = _plan(ious, min_iou, quorum)
    out = []
    for r, cell in enumerate(ref.cells):
        new = None
        if voted[r]:
            new = _vote_cell([(ref, r)] + [(others[j], i) for j, i in contributors[r]], tie)
        out.append(cell if new is None else new)
        stats["kept" if new is None else "voted"] += 1
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
    return sort_cells(out)


def ensemble_dumps(dumps: Sequence[dict], min_iou: float = DEFAULT_MIN_IOU, quorum: Optional[int] = None,
                   sources: Optional[Sequence[str]] = None, tie: str = "out",
                   merge: Callable = ensemble_image) -> dict:
    """Ensemble prediction dumps, ``dumps[0]`` the reference (see the module docstring).

    ``quorum``: how many of the other models must contribute for a vote (default: all).
    ``sources``: the dumps' file names, for error messages (and recorded in the result).
    ``tie``: ``"out"`` or ``"reference"``, what a tie pixel of an even number of voters becomes.
    ``merge``: the per-image scheme, :func:`ensemble_image` (the tests pass a dense oracle).
    Returns a ``segpc-predictions/1`` dump with the reference's images, plus an ``"ensemble"``
    entry: ``models, min_iou, quorum, tie, voted, kept, added, duplicates`` (cell counts).
    """
    if tie not in TIES:
        raise SegPCError(None, f"tie must be one of {', '.join(TIES)}, got {tie!r}")
    quorum = check_dumps(dumps, sources, quorum, min_iou)
    by_name = [{img["name"]: img for img in d["images"]} for d in dumps]
    stats = {"voted": 0, "kept": 0, "added": 0, "duplicates": 0}
    images = []
    for img in dumps[0]["images"]:
        name = img["name"]
        cells = merge([d[name]["cells"] for d in by_name], float(min_iou), quorum, tie, stats)
        images.append({k: v for k, v in img.items() if k != "cells"} | {"cells": cells})
    dump = make_dump(images)
    dump["ensemble"] = {"models": len(dumps), "min_iou": float(min_iou), "quorum": quorum, "tie": tie, **stats}
    if sources is not None:
        dump["ensemble"]["sources"] = [str(s) for s in sources]
    return dump


# --------------------------------------------------------------------------- mask NMS

DEFAULT_NMS_IOU = 0.4


def _nms_image(models: list[list[dict]], iou_thr, stats: dict, where: str) -> list[dict]:
    pool = [c for cells in models for c in cells]  # model by model, each in dump order
    order = sorted(range(len(pool)), key=lambda i: -float(pool[i]["score"]))  # stable
    groups: dict = {}
    for i in order:
        groups.setdefault(pool[i].get("category"), []).append(i)
    keep = []
    for cat, idx in groups.items():
        if isinstance(iou_thr, dict):
            if cat not in iou_thr:
                raise SegPCError(None, f"{where}: no NMS IoU threshold for category {cat!r} "
                                       "(cells without a category need one number)")
            thr = iou_thr[cat]
        else:
            thr = float(iou_thr)
        ious = rle_iou([pool[i]["cell"] for i in idx], [pool[i]["cell"] for i in idx])
        kept_pos: list[int] = []
        for pos, i in enumerate(idx):
            if area(pool[i]["cell"]) == 0 or (kept_pos and ious[pos, kept_pos].max() > thr):
                stats["suppressed"] += 1
                continue
            kept_pos.append(pos)
            keep.append(i)
    stats["kept"] += len(keep)
    rank = {i: r for r, i in enumerate(order)}
    return [pool[i] for i in sorted(keep, key=rank.__getitem__)]


def nms_dumps(dumps: Sequence[dict], iou_thr=DEFAULT_NMS_IOU, sources: Optional[Sequence[str]] = None) -> dict:
    """Merge prediction dumps by mask non-maximum suppression, class by class.

    Per image, the cells of all dumps are pooled and taken by decreasing score (ties: dump
    order, then cell order); a cell is dropped when its whole-cell mask IoU with a cell already
    kept *of the same category* is greater than that category's threshold. ``iou_thr``: one
    number, or ``{category: threshold}`` for dumps whose cells carry a ``category``
    (Sartorius). Cells keep their own masks and scores. Returns a dump with the first dump's
    images and an ``"ensemble"`` entry ``{"method": "nms", "models", "iou_thr", "kept",
    "suppressed"}``; the dumps must hold the same images at the same sizes (:func:`check_dumps`).
    """
    check_dumps(dumps, sources, None, DEFAULT_MIN_IOU)
    by_name = [{str(img["name"]): img for img in d["images"]} for d in dumps]
    stats = {"kept": 0, "suppressed": 0}
    images = []
    for img in dumps[0]["images"]:
        name = str(img["name"])
        cells = _nms_image([d[name]["cells"] for d in by_name], iou_thr, stats, f"image {name!r}")
        images.append({k: v for k, v in img.items() if k != "cells"} | {"cells": cells})
    dump = make_dump(images)
    thr = dict(iou_thr) if isinstance(iou_thr, dict) else float(iou_thr)
    dump["ensemble"] = {"method": "nms", "models": len(dumps), "iou_thr": thr, **stats}
    if sources is not None:
        dump["ensemble"]["sources"] = [str(s) for s in sources]
    return dump
