"""SegPC cells: a model's three-class instances assembled into cells with their nucleus.

A *cell* prediction is a dict of plain data::

    {"score": float, "bbox": [x1, y1, x2, y2],          # box of the cell mask, x2/y2 exclusive
     "cell": RLE, "nucleus": RLE | None}                 # nucleus is clipped to the cell

Models with other classes (Sartorius: shsy5y, astro, cort) write cells with an optional
``"category": str`` (the class name) and no nucleus; readers that do not need it ignore it.

RLEs are :mod:`segpc.structures.rle`'s (compressed, ``counts`` as ``str``). A cell becomes a
challenge mask with :func:`cell_to_mask`: nucleus pixels 40, cytoplasm pixels (cell − nucleus)
20, background 0.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from segpc.io import CYTOPLASM, NUCLEUS
from segpc.structures.boxes import boxes_overlap
from segpc.structures.rle import area, bbox_xyxy, decode, intersect

CLASSES = ("nucleus", "cytoplasm", "cell")
NUCLEUS_LABEL, CYTOPLASM_LABEL, CELL_LABEL = 0, 1, 2


def assemble_cells(
    rles: Sequence[dict],
    labels: Sequence[int],
    scores: Sequence[float],
    score_thr: float = 0.0,
) -> list[dict]:
    """Turn a model's three-class instances into cells with their nucleus.

    Every cell-class instance with ``score >= score_thr`` becomes a cell. Its nucleus is the
    nucleus-class instance with the largest *score-weighted overlap* ``score × |nucleus ∩ cell|``
    (the first such instance on ties), clipped to the cell: a confident nucleus beats a larger
    doubtful one (score 0.9 over 40 pixels of the cell wins against score 0.2 over 100), while a
    nucleus that barely touches the cell does not win on its score alone. A cell that no
    nucleus touches has none. Cytoplasm-class instances are not used: cytoplasm is
    cell − nucleus. Cells are returned by decreasing score; empty cells are dropped.
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    nuclei = [(rles[i], bbox_xyxy(rles[i]), float(scores[i]))
              for i in np.flatnonzero(labels == NUCLEUS_LABEL)]
    cell_idx = [i for i in np.flatnonzero(labels == CELL_LABEL) if scores[i] >= score_thr]
    cell_idx.sort(key=lambda i: -scores[i])
    cells = []
    for i in cell_idx:
        cell = rles[i]
        if area(cell) == 0:
            continue
        box = bbox_xyxy(cell)
        best, best_weight = None, 0.0
        for nuc, nbox, nscore in nuclei:
            if not boxes_overlap(box, nbox):
                continue
            inter = intersect(cell, nuc)
            weight = nscore * area(inter)
            if weight > best_weight:
                best, best_weight = inter, weight
        cells.append({"score": float(scores[i]), "bbox": box, "cell": cell, "nucleus": best})
    return cells


def cell_to_mask(cell: dict) -> np.ndarray:
    """One predicted cell → a SegPC mask: nucleus 40, cytoplasm 20, background 0."""
    m = decode(cell["cell"]).astype(np.uint8) * CYTOPLASM
    if cell.get("nucleus") is not None:
        nuc = decode(cell["nucleus"]).astype(bool) & (m > 0)
        m[nuc] = NUCLEUS
    return m
