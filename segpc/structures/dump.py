"""The prediction dump: one reader that validates it, one writer; submissions in and out.

A *prediction dump* (``tools/test.py --out preds.json``, ``tools/ensemble.py --out``,
``tools/predict.py``) is a JSON file of plain data::

    {"format": "segpc-predictions/1",
     "images": [{"name": "106", "img_id": 106, "height": H, "width": W,
                 "cells": [cell, ...]}, ...],
     ...}                                  # optional extra entries, e.g. "ensemble" statistics

``cell`` as in :mod:`segpc.structures.cells`, every RLE at its image's ``H x W``. JSON rather
than pickle: a dump received from someone else is data and cannot run code. Dumps pickled by
earlier versions (``.pkl``) are still read, by an unpickler that accepts plain data only
(dicts, lists, strings, numbers) and refuses anything that would import or call code.

A *submission* is the challenge's format: one ``<name>_<k>.bmp`` per cell (k from 1), nucleus
pixels 40, cytoplasm pixels 20, background 0 (:func:`write_submission`, and back with
:func:`read_submission`).
"""
from __future__ import annotations

import io
import json
import math
import os
import pickle
from pathlib import Path
from typing import Iterable, Optional

from segpc.io import (NUCLEUS, PRED_VALUES, SUBMISSION_FILES, SegPCError, atomic_dir, mask_files, natural_key,
                      read_mask, write_json)
from segpc.structures.cells import cell_to_mask
from segpc.structures.masks import CropMask

DUMP_FORMAT = "segpc-predictions/1"


def make_dump(images: Iterable[dict]) -> dict:
    return {"format": DUMP_FORMAT, "images": list(images)}


# --------------------------------------------------------------------------- validation


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _rle_problem(rle, hw: tuple[int, int]) -> Optional[str]:
    if not isinstance(rle, dict) or not isinstance(rle.get("counts"), str) or "size" not in rle:
        return "is not an RLE ({'size': [H, W], 'counts': str})"
    size = rle["size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(_is_int(v) for v in size)):
        return f"has a bad size {size!r}"
    if tuple(size) != hw:
        return f"is {size[0]}x{size[1]}, the image {hw[0]}x{hw[1]}"
    return None


def _cell_problem(cell, hw: tuple[int, int]) -> Optional[str]:
    if not isinstance(cell, dict):
        return "is not a dict"
    for key in ("score", "bbox", "cell"):
        if key not in cell:
            return f"has no {key!r}"
    score = cell["score"]
    if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
        return f"has a bad score {score!r}"
    bbox = cell["bbox"]
    if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(_is_int(v) for v in bbox)):
        return f"has a bad bbox {bbox!r}"
    if "category" in cell and not isinstance(cell["category"], str):
        return f"has a bad category {cell['category']!r}"
    for key in ("cell", "nucleus"):
        rle = cell.get(key)
        if rle is None and key == "nucleus":
            continue
        problem = _rle_problem(rle, hw)
        if problem:
            return f"{key} mask {problem}"
    return None


def validate_dump(dump, source: str | os.PathLike | None = None) -> dict:
    """Check the schema of a dump (format, image entries, every cell and RLE at its image's
    size, unique image names); returns it, or raises a one-line :class:`SegPCError`."""
    if not isinstance(dump, dict) or dump.get("format") != DUMP_FORMAT:
        raise SegPCError(source, f"not a prediction dump (expected format {DUMP_FORMAT!r})")
    images = dump.get("images")
    if not isinstance(images, list):
        raise SegPCError(source, "malformed prediction dump: 'images' is not a list")
    seen = set()
    for n, img in enumerate(images, start=1):
        if not isinstance(img, dict) or not isinstance(img.get("name"), str):
            raise SegPCError(source, f"malformed prediction dump: image #{n} has no name")
        name = img["name"]
        where = f"malformed prediction dump: image {name!r}"
        if name in seen:
            raise SegPCError(source, f"{where} appears twice")
        seen.add(name)
        h, w = img.get("height"), img.get("width")
        if not (_is_int(h) and _is_int(w) and h > 0 and w > 0):
            raise SegPCError(source, f"{where} has no valid height and width")
        if "img_id" in img and not _is_int(img["img_id"]):
            raise SegPCError(source, f"{where} has a bad img_id {img['img_id']!r}")
        cells = img.get("cells")
        if not isinstance(cells, list):
            raise SegPCError(source, f"{where} has no list of cells")
        for k, cell in enumerate(cells, start=1):
            problem = _cell_problem(cell, (h, w))
            if problem:
                raise SegPCError(source, f"{where}, cell {k}: {problem}")
    return dump


# --------------------------------------------------------------------------- files


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, tuples, strings, numbers, None; refuses every global (so no
    code can run)."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a dump holds plain data only")


def check_dump_path(path: str | os.PathLike) -> None:
    """Refuse a pickle name (``.pkl``) for a dump to be written: dumps are JSON now."""
    if Path(path).suffix.lower() in (".pkl", ".pickle"):
        raise SegPCError(path, "prediction dumps are written as JSON: give a .json file name")


def save_dump(dump: dict, path: str | os.PathLike) -> None:
    """Write a dump as JSON (atomically), after :func:`validate_dump`."""
    check_dump_path(path)
    write_json(validate_dump(dump, path), path)


def load_dump(path: str | os.PathLike) -> dict:
    """Read and validate a prediction dump: JSON, or a pickle written by earlier versions."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise SegPCError(path, "file not found") from None
    except IsADirectoryError:
        raise SegPCError(path, "is a folder, not a prediction dump") from None
    try:
        if data[:1] == b"\x80":  # pickle protocol >= 2
            dump = _PlainDataUnpickler(io.BytesIO(data)).load()
        else:
            dump = json.loads(data)
    except Exception as e:  # noqa: BLE001 - any decoding failure is a bad file
        raise SegPCError(path, f"not a prediction dump ({type(e).__name__}: {e})") from None
    return validate_dump(dump, path)


def write_submission(dump: dict, out_dir: str | os.PathLike, overwrite: bool = False) -> int:
    """Write ``<name>_<k>.bmp`` (k from 1) per predicted cell into ``out_dir``, atomically.

    An existing ``out_dir`` is replaced only if it holds nothing but ``<id>_<k>.bmp`` files and
    ``overwrite`` (:func:`segpc.io.check_output_dir`). Returns the number of files written.
    """
    import cv2  # local: keep module import light for pure users

    n = 0
    with atomic_dir(out_dir, SUBMISSION_FILES, overwrite) as tmp:
        for img in dump["images"]:
            for k, cell in enumerate(img["cells"], start=1):
                path = Path(tmp) / f"{img['name']}_{k}.bmp"
                if not cv2.imwrite(str(path), cell_to_mask(cell)):
                    raise SegPCError(path, "cannot write submission mask")
                n += 1
    return n


def read_submission(folder: str | os.PathLike) -> dict:
    """A submission folder (``<name>_<k>.bmp|png``, nucleus 40, cytoplasm 20) → a dump.

    Every file is a cell (pixels 20 or 40; its nucleus the pixels 40) with **score 1.0**, in
    the order of ``k``. An image without cells has no file, so it is not in the dump. ``img_id``
    is the number of the name when every name is a distinct number, else 0, 1, ...
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SegPCError(folder, "submission folder not found")
    groups = mask_files(folder)
    if not groups:
        raise SegPCError(folder, "no submission masks (<image id>_<k>.bmp|png)")
    names = sorted(groups, key=natural_key)
    ids = [int(n) for n in names] if all(n.isdigit() for n in names) else []
    if len(set(ids)) != len(names):
        ids = list(range(len(names)))
    images = []
    for img_id, name in zip(ids, names):
        cells, hw = [], None
        for path in groups[name]:
            mask = read_mask(path)
            if hw is None:
                hw = mask.shape
            elif mask.shape != hw:
                raise SegPCError(path, f"mask is {mask.shape[0]}x{mask.shape[1]}, the other masks of "
                                       f"image {name!r} {hw[0]}x{hw[1]}")
            cell = CropMask.from_dense(mask, PRED_VALUES)
            nucleus = CropMask.from_dense(mask, (NUCLEUS,))
            cells.append({"score": 1.0, "bbox": list(cell.box), "cell": cell.to_rle(),
                          "nucleus": nucleus.to_rle() if nucleus.area else None})
        images.append({"name": name, "img_id": img_id, "height": int(hw[0]), "width": int(hw[1]),
                       "cells": cells})
    return make_dump(images)


def load_predictions(path: str | os.PathLike) -> dict:
    """A prediction dump file (:func:`load_dump`) or a submission folder (:func:`read_submission`)."""
    return read_submission(path) if Path(path).is_dir() else load_dump(path)
