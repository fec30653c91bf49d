"""Post-processing of the two stages and the scale aggregation (plain functions, no model).

Nucleus stage (published ``clean_nuc_mask`` and notebook cell 20): probability ``> 0.5`` at the
network's input size, 3x3 opening (erosion then dilation, pixels beyond the border count as
background), hole filling, 8-connected components under 80 px dropped; the mask is brought back
to the image (bilinear on 0/255, ``> 127``) and every 8-connected component is one nucleus.

Cytoplasm stage (``get_cyto_mask``, ``do_cyto_postprocess``, ``get_biggest_cc_msk``): probability
``> 0.48``, 3x3 opening, hole filling, the largest 4-connected component. The cell is that
region united with its nucleus.

Scale aggregation, on the ratio ``cytoplasm area / nucleus area`` of each scale's cell
(cytoplasm = cell − nucleus):

* ``'filter'`` (the published code, notebook cell 32): every scale whose ratio lies in its
  range (:data:`FILTER_RANGES`, bounds included) gives a cell; all are submitted.
* ``'select'`` (the paper's description): start at the smallest scale and move to the next one
  while the ratio exceeds that scale's threshold (default: the upper bound of its range); the
  first scale within its threshold gives the one cell, the largest scale when none does.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import cv2
import numpy as np
from scipy import ndimage

from segpc.structures import CropMask, bbox_xyxy

NUCLEUS_THRESHOLD = 0.5
CYTOPLASM_THRESHOLD = 0.48
KERNEL = 3
MIN_NUCLEUS_AREA = 80
FILTER_RANGES = {0.5: (0.0, 0.8), 1.75: (0.4, 200.0), 2.6: (0.3, 200.0), 3.0: (0.4, 200.0)}
AGGREGATES = ("filter", "select")


def open_fill(mask: np.ndarray, kernel: int = KERNEL) -> np.ndarray:
    """Binary opening with a ``kernel x kernel`` square (background beyond the border), then
    hole filling; bool."""
    se = np.ones((kernel, kernel), dtype=bool)
    m = ndimage.binary_dilation(ndimage.binary_erosion(np.asarray(mask, bool), structure=se), structure=se)
    return ndimage.binary_fill_holes(m, structure=np.ones((3, 3), dtype=bool))


def drop_small(mask: np.ndarray, min_area: int, connectivity: int = 8) -> np.ndarray:
    """``mask`` without its components of fewer than ``min_area`` pixels."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(np.asarray(mask, np.uint8), connectivity=connectivity)
    keep = np.zeros(n, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels]


def largest_component(mask: np.ndarray, connectivity: int = 4) -> np.ndarray:
    """The largest component (the first on ties); an empty mask stays empty."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(np.asarray(mask, np.uint8), connectivity=connectivity)
    if n < 2:
        return np.zeros(labels.shape, dtype=bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def components(mask: np.ndarray, connectivity: int = 8) -> list[CropMask]:
    """Every connected component of a frame mask as a :class:`CropMask`, in label order."""
    mask = np.asarray(mask, np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=connectivity)
    out = []
    for i in range(1, n):
        x, y, w, h = (int(v) for v in stats[i, :4])
        out.append(CropMask(y, x, labels[y:y + h, x:x + w] == i, mask.shape))
    return out


def nucleus_mask(prob: np.ndarray, frame: Sequence[int], threshold: float = NUCLEUS_THRESHOLD,
                 kernel: int = KERNEL, min_area: int = MIN_NUCLEUS_AREA) -> np.ndarray:
    """The nucleus stage's probability map (at the network's input size) → the cleaned bool
    nucleus mask of the ``frame = (H, W)`` image."""
    clean = drop_small(open_fill(np.asarray(prob) > threshold, kernel), min_area)
    h, w = int(frame[0]), int(frame[1])
    if clean.shape != (h, w):
        clean = cv2.resize(clean.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_LINEAR) > 127
    return clean


def nucleus_instances(prob: np.ndarray, frame: Sequence[int], **kwargs) -> list[CropMask]:
    """The nucleus instances of an image (:func:`nucleus_mask`, then its 8-connected components)."""
    return components(nucleus_mask(prob, frame, **kwargs))


def cytoplasm_region(prob: np.ndarray, threshold: float = CYTOPLASM_THRESHOLD, kernel: int = KERNEL) -> np.ndarray:
    """A crop's cell probability map → the cell region: threshold, opening, holes filled,
    largest 4-connected component (bool, same shape)."""
    return largest_component(open_fill(np.asarray(prob) > threshold, kernel), connectivity=4)


def with_nucleus(region: CropMask, nucleus: CropMask) -> CropMask:
    """The cell: the predicted region united with its nucleus."""
    if region.size != nucleus.size:
        raise ValueError("region and nucleus in different frames")
    if region.area == 0:
        return nucleus
    y0, x0 = min(region.y0, nucleus.y0), min(region.x0, nucleus.x0)
    y1, x1 = max(region.y1, nucleus.y1), max(region.x1, nucleus.x1)
    out = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    out[region.y0 - y0:region.y1 - y0, region.x0 - x0:region.x1 - x0] |= region.crop
    out[nucleus.y0 - y0:nucleus.y1 - y0, nucleus.x0 - x0:nucleus.x1 - x0] |= nucleus.crop
    return CropMask(y0, x0, out, region.size)


def cyto_nucleus_ratio(cell: CropMask, nucleus: CropMask) -> float:
    """``(|cell| − |cell ∩ nucleus|) / |nucleus|`` (``inf`` for an empty nucleus)."""
    if nucleus.area == 0:
        return float("inf")
    return (cell.area - (cell & nucleus).area) / nucleus.area


def aggregate(cells: Mapping[float, CropMask], nucleus: CropMask, mode: str = "filter",
              ranges: Optional[Mapping[float, Sequence[float]]] = None,
              select_thresholds: Optional[Mapping[float, float]] = None) -> list[float]:
    """The scales whose cell is submitted for one nucleus (ascending), by ``mode``.

    ``cells``: each scale's cell (:func:`with_nucleus`). ``ranges``: per scale ``(lo, hi)``
    (default :data:`FILTER_RANGES`; a scale without a range keeps everything in ``'filter'``);
    ``select_thresholds``: per scale, default the range's upper bound.
    """
    if mode not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {mode!r}")
    ranges = FILTER_RANGES if ranges is None else ranges
    scales = sorted(cells)
    ratios = {s: cyto_nucleus_ratio(cells[s], nucleus) for s in scales}
    if mode == "filter":
        kept = []
        for s in scales:
            lo, hi = ranges.get(s, (-np.inf, np.inf))
            if lo <= ratios[s] <= hi:
                kept.append(s)
        return kept
    if not scales:
        return []
    thresholds = ({s: ranges.get(s, (0, np.inf))[1] for s in scales}
                  if select_thresholds is None else select_thresholds)
    for s in scales:
        if ratios[s] <= thresholds.get(s, np.inf):
            return [s]
    return [scales[-1]]


def cell_entry(cell: CropMask, nucleus: CropMask, score: float, scale: Optional[float] = None) -> dict:
    """A cell of the prediction dump (:mod:`segpc.structures.cells`); ``scale`` recorded when given."""
    rle = cell.to_rle()
    out = {"score": float(score), "bbox": bbox_xyxy(rle), "cell": rle, "nucleus": (cell & nucleus).to_rle()}
    if scale is not None:
        out["scale"] = float(scale)
    return out


def image_cells(nuclei: Sequence[CropMask], candidates: Sequence[Mapping[float, tuple[CropMask, float]]],
                mode: str = "filter", ranges: Optional[Mapping[float, Sequence[float]]] = None,
                select_thresholds: Optional[Mapping[float, float]] = None) -> list[dict]:
    """The dump cells of one image: for each nucleus, ``candidates[i] = {scale: (cell, score)}``
    aggregated by :func:`aggregate`; cells in nucleus order, then by scale."""
    out = []
    for nucleus, cand in zip(nuclei, candidates, strict=True):
        cells = {s: c for s, (c, _) in cand.items()}
        for s in aggregate(cells, nucleus, mode, ranges, select_thresholds):
            out.append(cell_entry(cand[s][0], nucleus, cand[s][1], s))
    return out


def candidate_cells(nuclei: Sequence[CropMask],
                    candidates: Sequence[Mapping[float, tuple[CropMask, float]]]) -> list[dict]:
    """Every scale's cell of every nucleus, unaggregated, each with its ``scale`` and
    ``nucleus_index`` (the candidates file; :func:`reaggregate` picks from it later)."""
    out = []
    for i, (nucleus, cand) in enumerate(zip(nuclei, candidates, strict=True)):
        for s in sorted(cand):
            out.append(dict(cell_entry(cand[s][0], nucleus, cand[s][1], s), nucleus_index=i))
    return out


def reaggregate(dump: dict, mode: str = "filter", ranges: Optional[Mapping[float, Sequence[float]]] = None,
                select_thresholds: Optional[Mapping[float, float]] = None,
                scales: Optional[Sequence[float]] = None) -> dict:
    """A candidates dump (:func:`candidate_cells`) aggregated by ``mode`` over ``scales``
    (default all); a new dump. ``mode=None`` keeps every candidate of ``scales`` (per-scale scores)."""
    from segpc.structures import make_dump

    keep = None if scales is None else {round(float(s), 6) for s in scales}
    images = []
    for img in dump["images"]:
        groups: dict[int, dict[float, dict]] = {}
        for c in img["cells"]:
            if "scale" not in c or "nucleus_index" not in c:
                raise ValueError(f"image {img['name']!r}: not a candidates dump (cells without scale/nucleus_index)")
            if keep is None or round(float(c["scale"]), 6) in keep:
                groups.setdefault(c["nucleus_index"], {})[float(c["scale"])] = c
        cells = []
        for _, by_scale in sorted(groups.items()):
            if mode is None:
                chosen = sorted(by_scale)
            else:
                size = (img["height"], img["width"])
                nucleus = CropMask.from_rle(next(iter(by_scale.values()))["nucleus"], size=size)
                chosen = aggregate({s: CropMask.from_rle(c["cell"], size=size) for s, c in by_scale.items()},
                                   nucleus, mode, ranges, select_thresholds)
            cells += [{k: v for k, v in by_scale[s].items() if k != "nucleus_index"} for s in chosen]
        images.append(dict(img, cells=cells))
    return make_dump(images)
