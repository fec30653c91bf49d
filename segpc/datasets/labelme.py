"""LabelMe annotations → the SegPC raw layout (what ``tools/convert_labelme.py`` runs).

A LabelMe file (versions 3.x-7.x) is JSON::

    {"version": ..., "flags": {}, "imagePath": "slide.jpg", "imageData": <base64 file or null>,
     "imageHeight": H, "imageWidth": W,
     "shapes": [{"label": "cell", "points": [[x, y], ...], "group_id": 3,
                 "shape_type": "polygon", "flags": {}}, ...]}

It is read here directly (the ``labelme`` package pulls in Qt). Shapes that share a ``group_id``
form one cell; a shape whose ``group_id`` is null stands alone. Each shape is a *cell* outline
(nucleus inside), a *cytoplasm* outline (often a ring around the nucleus) or a *nucleus*, by its
label (:class:`LabelMap`). A cell's mask is the union of its cell and cytoplasm shapes — plus its
nucleus when the group has only cytoplasm shapes, so that a ring and its nucleus make the whole
cell — and the nucleus is clipped to it. Shapes are rasterised as LabelMe's own
``labelme.utils.shape_to_mask`` does: PIL ``ImageDraw`` polygon / rectangle / ellipse with the
outline included (rectangle corners may come in any order).

Output, the SegPC raw layout every other tool reads::

    OUT/x/<id>.png        the image (from ``imageData``, else ``imagePath`` beside the JSON)
    OUT/y/<id>_<k>.png    one mask per cell, k = 1.. in order of first shape: 0, 20, 40

``<id>`` is the JSON file's stem. Bad input raises :class:`~segpc.io.SegPCError` (one line naming
the file) and nothing is written.
"""
from __future__ import annotations

import base64
import binascii
import logging
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from segpc.io import (CYTOPLASM, NUCLEUS, SegPCError, atomic_dir, check_output_dir, load_json, natural_key, read_image,
                      write_image)

logger = logging.getLogger(__name__)

FILLABLE = ("polygon", "rectangle", "circle")


@dataclass(frozen=True)
class LabelMap:
    """Which LabelMe label means a cell outline, a nucleus and a cytoplasm outline."""

    cell: str = "cell"
    nucleus: str = "nucleus"
    cytoplasm: str = "cytoplasm"

    def __post_init__(self):
        if len({self.cell, self.nucleus, self.cytoplasm}) != 3:
            raise SegPCError(None, f"the cell, nucleus and cytoplasm labels must differ, got {self}")

    def role(self, label: str) -> str | None:
        return {self.cell: "cell", self.nucleus: "nucleus", self.cytoplasm: "cytoplasm"}.get(label)

    def describe(self) -> str:
        return (f"--cell-label {self.cell!r}, --nucleus-label {self.nucleus!r}, "
                f"--cytoplasm-label {self.cytoplasm!r}")


@dataclass
class LabelMeImage:
    """One converted LabelMe file: the image (BGR) and one SegPC mask (0/20/40) per cell."""

    image: np.ndarray
    masks: list[np.ndarray]


# --------------------------------------------------------------------------- rasterisation


def _points(shape: dict, where: str) -> list[tuple[float, float]]:
    pts = shape.get("points")
    try:
        xy = [(float(p[0]), float(p[1])) for p in pts if len(p) == 2]
    except (TypeError, ValueError, IndexError):
        xy = None
    if xy is None or len(xy) != len(pts) or not all(math.isfinite(v) for p in xy for v in p):
        raise SegPCError(None, f"{where}: points must be a list of [x, y] numbers")
    return xy


def shape_mask(shape_type: str, points: Sequence[Sequence[float]], hw: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` bool mask of one LabelMe shape, as ``labelme.utils.shape_to_mask`` draws it.

    ``polygon``: PIL ``ImageDraw.polygon(fill=1, outline=1)`` (at least 3 points);
    ``rectangle``: two corners, ``ImageDraw.rectangle`` with its outline; ``circle``: centre and a
    point on the circle, ``ImageDraw.ellipse`` of that radius with its outline. Other types
    (line, linestrip, point, mask, ...) enclose no area and raise ``ValueError``.
    """
    from PIL import Image, ImageDraw

    h, w = hw
    img = Image.new("L", (int(w), int(h)), 0)
    draw = ImageDraw.Draw(img)
    xy = [(float(x), float(y)) for x, y in points]
    if shape_type == "circle":
        if len(xy) != 2:
            raise ValueError(f"a circle needs 2 points (centre, rim), got {len(xy)}")
        (cx, cy), (px, py) = xy
        d = math.sqrt((cx - px) ** 2 + (cy - py) ** 2)
        draw.ellipse([cx - d, cy - d, cx + d, cy + d], outline=1, fill=1)
    elif shape_type == "rectangle":
        if len(xy) != 2:
            raise ValueError(f"a rectangle needs 2 points (corners), got {len(xy)}")
        (x0, y0), (x1, y1) = xy
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=1, fill=1)
    elif shape_type == "polygon":
        if len(xy) < 3:
            raise ValueError(f"a polygon needs at least 3 points, got {len(xy)}")
        draw.polygon(xy, outline=1, fill=1)
    else:
        raise ValueError(f"shape_type {shape_type!r} cannot be filled (use {', '.join(FILLABLE)})")
    return np.asarray(img, dtype=bool)


# --------------------------------------------------------------------------- one file


def _load_image(doc: dict, json_path: Path) -> np.ndarray:
    data = doc.get("imageData")
    if data:
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise SegPCError(json_path, "imageData is not base64") from None
        img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise SegPCError(json_path, "imageData is not a readable image")
        return img
    rel = doc.get("imagePath")
    if not isinstance(rel, str) or not rel:
        raise SegPCError(json_path, "no image: imageData is null and imagePath is empty")
    path = json_path.parent / rel.replace("\\", "/")
    if not path.is_file():
        raise SegPCError(json_path, f"image not found: imageData is null and imagePath {rel!r} "
                                    f"does not exist beside the JSON ({path})")
    return read_image(path)


def _group_key(shape: dict, index: int) -> tuple:
    gid = shape.get("group_id")
    if gid is None:
        return ("single", index)
    if not isinstance(gid, (int, str)) or isinstance(gid, bool):
        raise SegPCError(None, f"shapes[{index}]: group_id must be an integer or null, got {gid!r}")
    return ("group", gid)


def _group_name(key: tuple) -> str:
    return "group_id null" if key[0] == "single" else f"group_id {key[1]!r}"


def read_labelme(json_path: str | os.PathLike, labels: LabelMap = LabelMap()) -> LabelMeImage:
    """Read one LabelMe file: its image and one SegPC mask per cell (see the module docstring)."""
    json_path = Path(json_path)
    try:
        doc = load_json(json_path)
    except OSError as e:
        raise SegPCError(json_path, f"cannot read ({e.strerror or e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        raise SegPCError(json_path, "not a LabelMe file (no 'shapes' list)")
    h, w = doc.get("imageHeight"), doc.get("imageWidth")
    if not (isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0):
        raise SegPCError(json_path, f"imageHeight/imageWidth must be positive integers, got {h!r}/{w!r}")
    shapes = doc["shapes"]

    # Labels first: an unknown one is reported with every label of the file.
    roles = []
    for i, shape in enumerate(shapes):
        label = shape.get("label") if isinstance(shape, dict) else None
        role = labels.role(label) if isinstance(label, str) else None
        if role is None:
            found = sorted({str(s.get("label")) for s in shapes if isinstance(s, dict)})
            raise SegPCError(json_path, f"shapes[{i}]: unknown label {label!r}; labels in this file: "
                                        f"{', '.join(map(repr, found))}; map them with {labels.describe()}")
        roles.append(role)

    groups: dict[tuple, dict[str, list[int]]] = {}
    for i, (shape, role) in enumerate(zip(shapes, roles)):
        try:
            key = _group_key(shape, i)
        except SegPCError as e:
            raise SegPCError(json_path, e.problem) from None
        groups.setdefault(key, {"cell": [], "cytoplasm": [], "nucleus": []})[role].append(i)
    for key, g in groups.items():
        if len(g["nucleus"]) > 1:
            a, b = g["nucleus"][:2]
            raise SegPCError(json_path, f"{_group_name(key)} has two nuclei (shapes[{a}] and shapes[{b}]); "
                                        "give each cell its own group_id")
        if g["nucleus"] and not (g["cell"] or g["cytoplasm"]):
            i = g["nucleus"][0]
            raise SegPCError(json_path, f"shapes[{i}]: nucleus without a cell in its group ({_group_name(key)}); "
                                        f"give it the group_id of its {labels.cell!r} or "
                                        f"{labels.cytoplasm!r} shape")

    rasters: dict[int, np.ndarray] = {}
    for i, shape in enumerate(shapes):
        where = f"shapes[{i}] ({shape['label']!r})"
        stype = shape.get("shape_type") or "polygon"  # LabelMe 3.x wrote polygons without a type
        try:
            rasters[i] = shape_mask(stype, _points(shape, where), (h, w))
        except SegPCError as e:
            raise SegPCError(json_path, e.problem) from None
        except ValueError as e:
            raise SegPCError(json_path, f"{where}: {e}") from None
        if not rasters[i].any():
            raise SegPCError(json_path, f"{where}: no pixel inside the {w}x{h} image")

    image = _load_image(doc, json_path)
    if image.shape[:2] != (h, w):
        raise SegPCError(json_path, f"image is {image.shape[1]}x{image.shape[0]} but imageWidth x "
                                    f"imageHeight say {w}x{h}")

    masks = []
    for key, g in groups.items():
        outline = g["cell"] + g["cytoplasm"]
        cell = np.logical_or.reduce([rasters[i] for i in outline])
        nucleus = rasters[g["nucleus"][0]] if g["nucleus"] else None
        if nucleus is not None:
            if not g["cell"]:  # cytoplasm only: a ring around the nucleus, or an outline with it inside
                cell = cell | nucleus
            nucleus = nucleus & cell
            if not nucleus.any():
                logger.warning("%s: %s: the nucleus lies outside its cell outline; kept as a cell without "
                               "nucleus", json_path, _group_name(key))
        mask = cell.astype(np.uint8) * CYTOPLASM
        if nucleus is not None:
            mask[nucleus] = NUCLEUS
        masks.append(mask)
    return LabelMeImage(image, masks)


# --------------------------------------------------------------------------- a folder


def list_labelme(json_dir: str | os.PathLike) -> list[Path]:
    """The ``*.json`` files of a folder (not hidden), in natural name order."""
    json_dir = Path(json_dir)
    if not json_dir.is_dir():
        raise SegPCError(json_dir, "LabelMe folder not found")
    files = [p for p in json_dir.iterdir()
             if p.suffix.lower() == ".json" and not p.name.startswith(".") and p.is_file()]
    if not files:
        raise SegPCError(json_dir, "no LabelMe .json files in the folder")
    return sorted(files, key=lambda p: natural_key(p.stem))


def _owned(ids: set[str]) -> dict[str, Callable[[str], bool]]:
    """What ``x/`` and ``y/`` may hold to be replaced: this conversion's files (segpc.io.check_output_dir)."""
    patterns = {"x": re.compile(r"(?P<id>.+)\.png"), "y": re.compile(r"(?P<id>.+)_\d+\.png")}
    return {sub: lambda name, p=p: bool((m := p.fullmatch(name)) and m["id"] in ids) for sub, p in patterns.items()}


def convert_labelme(json_dir: str | os.PathLike, out_dir: str | os.PathLike,
                    labels: LabelMap = LabelMap(), progress: bool = True) -> dict[str, Any]:
    """Convert every LabelMe file of ``json_dir`` to ``out_dir/x`` and ``out_dir/y``.

    Everything is read and checked before anything is visible: ``x/`` and ``y/`` are built in
    temporary folders and replace the old ones only when every file converted. An output folder
    that holds files other than those this conversion writes is refused. Returns the counts
    ``{"images", "images_without_cells", "cells", "nuclei"}``.
    """
    files = list_labelme(json_dir)
    out = Path(out_dir)
    owns = _owned({p.stem for p in files})
    if out.exists() and not out.is_dir():
        raise SegPCError(out, "output exists and is not a folder")
    for sub in ("x", "y"):  # both before anything is read
        check_output_dir(out / sub, owns[sub], overwrite=True)
    counts = {"images": 0, "images_without_cells": 0, "cells": 0, "nuclei": 0}
    created = next((p for p in reversed([out.absolute(), *out.absolute().parents]) if not p.exists()), None)
    try:
        with atomic_dir(out / "x", owns["x"], True) as x_tmp, atomic_dir(out / "y", owns["y"], True) as y_tmp:
            for path in tqdm(files, desc="labelme", unit="file", disable=not progress):
                item = read_labelme(path, labels)
                write_image(x_tmp / f"{path.stem}.png", item.image)
                for k, mask in enumerate(item.masks, start=1):
                    write_image(y_tmp / f"{path.stem}_{k}.png", mask)
                counts["images"] += 1
                counts["images_without_cells"] += not item.masks
                counts["cells"] += len(item.masks)
                counts["nuclei"] += sum(bool((m == NUCLEUS).any()) for m in item.masks)
    except BaseException:
        if created is not None:  # folders made for the output: nothing of a failed run stays
            shutil.rmtree(created, ignore_errors=True)
        raise
    return counts


def summarize(counts: dict[str, Any], out_dir: str | os.PathLike) -> str:
    return (f"{counts['images']} images ({counts['images_without_cells']} without cells), "
            f"{counts['cells']} cells, {counts['nuclei']} nuclei -> {out_dir}")
