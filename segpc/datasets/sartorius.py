"""Kaggle's Sartorius cell data: run-length CSV → COCO, and prediction dumps → submission CSV.

The Sartorius Cell Instance Segmentation competition ships ``train.csv`` with one row per cell:
``id, annotation, width, height, cell_type, plate_time, sample_date, sample_id,
elapsed_timedelta``; ``annotation`` is Kaggle run-length text (starts 1-indexed, pixels row by
row, :func:`segpc.structures.kaggle_runs`); the images are ``train/<id>.png`` (704 wide, 520
high); one cell type per image (``shsy5y``, ``astro``, ``cort``); cells may overlap.

* :func:`convert_sartorius` writes COCO: categories shsy5y (1), astro (2), cort (3), every cell
  as exact compressed RLE with exact box and area, overlaps kept; ``fill_holes`` fills enclosed
  holes of every cell first (``scipy.ndimage.binary_fill_holes``).
* :func:`postprocess_image` and :func:`write_submission_csv` turn a prediction dump whose cells
  carry a ``category`` (:mod:`segpc.structures`) into a submission, ``id,predicted`` with one
  row per cell and no pixel in two cells, following the most-used public solution: the image's
  class is the majority of its cells' categories; cells scoring below that class's threshold are
  dropped; in decreasing score order every cell loses the pixels already taken and is kept when
  at least that class's minimum size remains.

Bad input raises :class:`~segpc.io.SegPCError` naming the file and the CSV line (and id).
"""
from __future__ import annotations

import csv
import io
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np
from tqdm import tqdm

from segpc.datasets.convert import header_size
from segpc.io import SegPCError, atomic_path, image_size, write_json
from segpc.structures import (area, bbox_xyxy, decode, encode, encode_many, kaggle_decode, kaggle_encode,
                              mask_box)

CELL_TYPES = ("shsy5y", "astro", "cort")
CATEGORIES = [{"id": i, "name": name} for i, name in enumerate(CELL_TYPES, start=1)]
COLUMNS = ("id", "annotation", "width", "height", "cell_type", "plate_time", "sample_date",
           "sample_id", "elapsed_timedelta")
REQUIRED_COLUMNS = ("id", "annotation", "width", "height", "cell_type")
SUBMISSION_COLUMNS = ("id", "predicted")
# The most-used public solution's post-processing (per image class).
DEFAULT_SCORE_THR = {"shsy5y": 0.15, "astro": 0.35, "cort": 0.55}
DEFAULT_MIN_SIZE = {"shsy5y": 75, "astro": 150, "cort": 75}


# --------------------------------------------------------------------------- reading CSVs


@dataclass
class SartoriusImage:
    """The rows of one image: its size, cell type and cells ``(CSV line, run-length text)``."""

    id: str
    width: int
    height: int
    cell_type: Optional[str]
    line: int  # CSV line of its first row
    cells: list[tuple[int, str]] = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # plate_time, sample_date, ... of the first row


def _where(line: int, img_id: str) -> str:
    return f"line {line} (id {img_id})"


def _rows(path: str | os.PathLike, required: Sequence[str]):
    """``(line, row)`` of a CSV file with the ``required`` columns."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SegPCError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SegPCError(path, f"cannot read CSV ({type(e).__name__}: {e})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise SegPCError(path, f"missing column(s) {', '.join(missing)} (expected {', '.join(required)})")
    for row in reader:
        if None in row:
            raise SegPCError(path, f"line {reader.line_num}: more values than columns")
        yield reader.line_num, row


def _positive_int(path, line: int, img_id: str, row: dict, key: str) -> int:
    try:
        value = int(row[key])
    except (TypeError, ValueError):
        value = 0
    if value <= 0:
        raise SegPCError(path, f"{_where(line, img_id)}: {key} {row[key]!r} is not a positive integer")
    return value


def read_annotations(path: str | os.PathLike, require_cell_type: bool = True) -> dict[str, SartoriusImage]:
    """Read a Sartorius annotation CSV (``train.csv`` layout) into images, in file order.

    Checks every row's size and cell type and that the rows of an image agree; the run-length
    texts are checked where they are decoded (:func:`cell_runs_error`).
    """
    images: dict[str, SartoriusImage] = {}
    for line, row in _rows(path, REQUIRED_COLUMNS if require_cell_type else REQUIRED_COLUMNS[:4]):
        img_id = (row["id"] or "").strip()
        if not img_id:
            raise SegPCError(path, f"line {line}: empty id")
        w = _positive_int(path, line, img_id, row, "width")
        h = _positive_int(path, line, img_id, row, "height")
        cell_type = (row.get("cell_type") or "").strip() or None
        if cell_type is not None and cell_type not in CELL_TYPES:
            raise SegPCError(path, f"{_where(line, img_id)}: unknown cell type {cell_type!r} "
                                   f"(expected one of {', '.join(CELL_TYPES)})")
        if cell_type is None and require_cell_type:
            raise SegPCError(path, f"{_where(line, img_id)}: empty cell_type")
        img = images.get(img_id)
        if img is None:
            meta = {k: row[k] for k in COLUMNS[5:] if row.get(k) not in (None, "")}
            img = images[img_id] = SartoriusImage(img_id, w, h, cell_type, line, meta=meta)
        elif (w, h) != (img.width, img.height):
            raise SegPCError(path, f"{_where(line, img_id)}: size {w}x{h} differs from "
                                   f"{img.width}x{img.height} on line {img.line}")
        elif cell_type != img.cell_type:
            raise SegPCError(path, f"{_where(line, img_id)}: cell type {cell_type!r} differs from "
                                   f"{img.cell_type!r} on line {img.line} (one cell type per image)")
        text = (row["annotation"] or "").strip()
        if not text:
            raise SegPCError(path, f"{_where(line, img_id)}: empty annotation")
        img.cells.append((line, text))
    if not images:
        raise SegPCError(path, "no rows")
    return images


def read_submission(path: str | os.PathLike) -> dict[str, list[tuple[int, str]]]:
    """Read a submission CSV (``id,predicted``): image id → its cells ``(line, text)``.

    A row with an empty ``predicted`` lists an image without cells.
    """
    out: dict[str, list[tuple[int, str]]] = {}
    for line, row in _rows(path, SUBMISSION_COLUMNS):
        img_id = (row["id"] or "").strip()
        if not img_id:
            raise SegPCError(path, f"line {line}: empty id")
        cells = out.setdefault(img_id, [])
        text = (row["predicted"] or "").strip()
        if text:
            cells.append((line, text))
    return out


def decode_cell(path, line: int, img_id: str, text: str, height: int, width: int, fn=kaggle_decode):
    """``fn(text, height, width)`` with a bad run-length text reported as one line naming the row."""
    try:
        return fn(text, height, width)
    except ValueError as e:
        raise SegPCError(path, f"{_where(line, img_id)}: {e}") from None


# --------------------------------------------------------------------------- CSV → COCO


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the enclosed holes of a mask, working on its box plus a one-pixel border (exact)."""
    from scipy.ndimage import binary_fill_holes

    box = mask_box(mask)
    if box is None:
        return mask
    x0, y0, x1, y1 = box
    crop = np.pad(mask[y0:y1, x0:x1].astype(bool), 1)
    out = mask.copy()
    out[y0:y1, x0:x1] = binary_fill_holes(crop)[1:-1, 1:-1]
    return out


def _image_file(img_dir: Path, img_id: str) -> Path:
    return img_dir / f"{img_id}.png"


def convert_sartorius(csv_path: str | os.PathLike, img_dir: str | os.PathLike, fill_holes: bool = False,
                      progress: bool = True) -> dict:
    """Sartorius annotation CSV + image folder → COCO dict (see the module docstring).

    Image ids are ``1..N`` in sorted order of the Sartorius ids; ``file_name`` is ``<id>.png``
    and each image entry keeps ``cell_type`` and the CSV's other columns. An image missing from
    ``img_dir`` or whose size disagrees with the CSV's ``width``/``height`` is an error.
    """
    images = read_annotations(csv_path)
    img_dir = Path(img_dir)
    if not img_dir.is_dir():
        raise SegPCError(img_dir, "image folder not found")
    coco_images, annotations = [], []
    cat_ids = {c["name"]: c["id"] for c in CATEGORIES}
    for image_id, img_id in enumerate(tqdm(sorted(images), desc="convert", unit="img", disable=not progress),
                                      start=1):
        img = images[img_id]
        path = _image_file(img_dir, img_id)
        if not path.is_file():
            raise SegPCError(path, f"image of {csv_path} {_where(img.line, img_id)} not found")
        h, w = header_size(path) or image_size(path)
        if (h, w) != (img.height, img.width):
            raise SegPCError(csv_path, f"{_where(img.line, img_id)}: width x height {img.width}x{img.height} "
                                       f"but {path} is {w}x{h}")
        masks = np.stack([decode_cell(csv_path, line, img_id, text, h, w) for line, text in img.cells])
        if fill_holes:
            masks = np.stack([_fill_holes(m) for m in masks])
        for (line, _), rle in zip(img.cells, encode_many(masks)):
            x1, y1, x2, y2 = bbox_xyxy(rle)
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": cat_ids[img.cell_type],
                "segmentation": rle, "area": area(rle), "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0,
                "csv_line": line,
            })
        coco_images.append({"id": image_id, "file_name": path.name, "height": h, "width": w,
                            "cell_type": img.cell_type, **img.meta})
    return {
        "info": {"description": f"Sartorius {Path(csv_path).name}, converted by segpc"
                                + (" (holes filled)" if fill_holes else "")},
        "licenses": [],
        "images": coco_images,
        "annotations": annotations,
        "categories": [dict(c) for c in CATEGORIES],
    }


def subset(coco: dict, names: Iterable[str]) -> dict:
    """The COCO dict restricted to the images whose file stem is in ``names`` (ids kept)."""
    names = set(names)
    keep = {img["id"] for img in coco["images"] if Path(img["file_name"]).stem in names}
    return {**coco, "images": [img for img in coco["images"] if img["id"] in keep],
            "annotations": [a for a in coco["annotations"] if a["image_id"] in keep]}


def write_sartorius_coco(csv_path: str | os.PathLike, img_dir: str | os.PathLike, out_json: str | os.PathLike,
                         fill_holes: bool = False, progress: bool = True, val_json: str | os.PathLike | None = None,
                         num_val: int = 0, seed: int = 0) -> tuple[dict, Optional[dict]]:
    """:func:`convert_sartorius`, then write the COCO JSON atomically; returns the COCO dict(s).

    With ``val_json`` and ``num_val``, ``num_val`` images drawn with ``seed``
    (:func:`segpc.datasets.split.split_ids`) go to ``val_json`` and the others to ``out_json``.
    """
    from segpc.datasets.split import split_ids

    for path in (out_json, val_json):
        if path is not None and Path(path).is_dir():
            raise SegPCError(path, "output is a folder, expected a .json file path")
    if (val_json is None) != (not num_val):
        raise SegPCError(None, "a validation split needs both a validation file and a number of images")
    coco = convert_sartorius(csv_path, img_dir, fill_holes=fill_holes, progress=progress)
    if val_json is None:
        write_json(coco, out_json)
        return coco, None
    names = [Path(img["file_name"]).stem for img in coco["images"]]
    if not 0 < num_val < len(names):
        raise SegPCError(csv_path, f"cannot hold out {num_val} of its {len(names)} images")
    train, val = split_ids(names, num_val, seed)
    train_coco, val_coco = subset(coco, train), subset(coco, val)
    write_json(val_coco, val_json)
    write_json(train_coco, out_json)
    return train_coco, val_coco


def summarize(coco: dict) -> str:
    """One line: images and cells per cell type."""
    names = {c["id"]: c["name"] for c in coco["categories"]}
    per_img = Counter(img.get("cell_type") for img in coco["images"])
    per_cat = Counter(names[a["category_id"]] for a in coco["annotations"])
    parts = ", ".join(f"{t} {per_img.get(t, 0)} images / {per_cat.get(t, 0)} cells" for t in CELL_TYPES)
    return f"{len(coco['images'])} images, {len(coco['annotations'])} cells ({parts})"


# --------------------------------------------------------------------------- dump → submission


def per_class(values: Optional[Mapping[str, float]], default: Mapping[str, float], what: str) -> dict:
    """``default`` updated with ``values``; an unknown class name is an error."""
    out = dict(default)
    for name, v in (values or {}).items():
        if name not in default:
            raise SegPCError(None, f"{what}: unknown class {name!r} (expected one of {', '.join(default)})")
        out[name] = float(v)
    return out


def parse_per_class(text: str, what: str = "value") -> dict[str, float]:
    """``'shsy5y=0.2,cort=0.5'`` (or one number for every class) → ``{class: value}``."""
    text = text.strip()
    try:
        if "=" not in text:
            return {name: float(text) for name in CELL_TYPES}
        out = {}
        for part in text.split(","):
            name, _, v = part.partition("=")
            out[name.strip()] = float(v)
    except ValueError:
        raise SegPCError(None, f"{what}: expected NUMBER or CLASS=NUMBER[,CLASS=NUMBER...], got {text!r}") from None
    return per_class(out, dict.fromkeys(CELL_TYPES, 0.0), what)


def image_class(categories: Iterable[str], classes: Sequence[str] = CELL_TYPES) -> Optional[str]:
    """The most frequent category (a tie goes to the one listed first in ``classes``); None if none."""
    counts = Counter(categories)
    if not counts:
        return None
    return max(classes, key=lambda c: (counts.get(c, 0), -classes.index(c)))


def _category(cell: dict, where: str) -> str:
    cat = cell.get("category")
    if cat is None:
        raise SegPCError(None, f"{where}: cell without 'category' (not a Sartorius model's dump)")
    if cat not in CELL_TYPES:
        raise SegPCError(None, f"{where}: unknown category {cat!r} (expected one of {', '.join(CELL_TYPES)})")
    return cat


def postprocess_image(cells: Sequence[dict], size: Sequence[int], score_thr: Optional[Mapping[str, float]] = None,
                      min_size: Optional[Mapping[str, float]] = None, name: str = "?"):
    """One image's predicted cells → ``(image class, [(y0, x0, crop), ...])``, no pixel twice.

    ``score_thr`` / ``min_size``: per class, defaults :data:`DEFAULT_SCORE_THR` /
    :data:`DEFAULT_MIN_SIZE`. The image's class is the majority of all its cells' categories
    (:func:`image_class`); cells scoring ``>=`` its threshold are taken by decreasing score
    (ties in dump order); each loses the pixels of the cells kept before it and is kept when at
    least its image class's minimum size in pixels remains. ``crop`` is the kept mask inside its
    original box ``(y0, x0)``.
    """
    thr = per_class(score_thr, DEFAULT_SCORE_THR, "score threshold")
    minimum = per_class(min_size, DEFAULT_MIN_SIZE, "minimum size")
    cls = image_class(_category(c, f"image {name!r}, cell {k}") for k, c in enumerate(cells, start=1))
    if cls is None:
        return None, []
    h, w = int(size[0]), int(size[1])
    used = np.zeros((h, w), dtype=bool)
    order = sorted(range(len(cells)), key=lambda i: -float(cells[i]["score"]))
    kept = []
    for i in order:
        cell = cells[i]
        if float(cell["score"]) < thr[cls]:
            break
        rle = cell["cell"]
        if tuple(int(v) for v in rle["size"]) != (h, w):
            raise SegPCError(None, f"image {name!r}, cell {i + 1}: mask is {rle['size'][0]}x{rle['size'][1]}, "
                                   f"the image {h}x{w}")
        x0, y0, x1, y1 = bbox_xyxy(rle)
        if x1 <= x0:
            continue
        crop = decode(rle)[y0:y1, x0:x1].astype(bool) & ~used[y0:y1, x0:x1]
        if np.count_nonzero(crop) >= minimum[cls]:
            used[y0:y1, x0:x1] |= crop
            kept.append((y0, x0, crop))
    return cls, kept


def paste_crop(y0: int, x0: int, crop: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """A crop placed in an ``(H, W)`` frame (uint8 0/1)."""
    out = np.zeros((int(size[0]), int(size[1])), dtype=np.uint8)
    out[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
    return out


def postprocess_dump(dump: dict, score_thr=None, min_size=None) -> dict[str, tuple[Optional[str], list[dict]]]:
    """Every image of a dump → ``(image class, RLEs of its kept cells)`` (:func:`postprocess_image`)."""
    out = {}
    for img in dump["images"]:
        size = (int(img["height"]), int(img["width"]))
        cls, kept = postprocess_image(img["cells"], size, score_thr, min_size, str(img["name"]))
        out[str(img["name"])] = (cls, [encode(paste_crop(y0, x0, c, size)) for y0, x0, c in kept])
    return out


def write_submission_csv(dump: dict, out_csv: str | os.PathLike, score_thr: Optional[Mapping[str, float]] = None,
                         min_size: Optional[Mapping[str, float]] = None, progress: bool = False) -> dict:
    """Write the submission CSV ``id,predicted`` of a dump (:func:`postprocess_image`), atomically.

    One row per kept cell, the image name as ``id``; an image without kept cells gets one row
    with an empty ``predicted`` (every image is listed). Returns ``{"images", "cells",
    "classes": {image class: number of images}}``.
    """
    if Path(out_csv).is_dir():
        raise SegPCError(out_csv, "is a folder: the Sartorius submission is a CSV file")
    rows, classes = [], Counter()
    images = dump["images"]
    for img in tqdm(images, desc="submission", unit="img", disable=not progress):
        size = (int(img["height"]), int(img["width"]))
        name = str(img["name"])
        cls, kept = postprocess_image(img["cells"], size, score_thr, min_size, name)
        classes[cls] += 1
        if not kept:
            rows.append((name, ""))
        rows += [(name, kaggle_encode(paste_crop(y0, x0, c, size))) for y0, x0, c in kept]
    with atomic_path(out_csv) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(SUBMISSION_COLUMNS)
            writer.writerows(rows)
    return {"images": len(images), "cells": sum(1 for _, t in rows if t),
            "classes": {str(k): v for k, v in classes.items()}}
