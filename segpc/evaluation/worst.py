"""The worst-matched ground-truth cells of an evaluated run (``tools/worst_cells.py``).

The SegPC-2021 annotations are noisy (cells missed, nuclei drawn loosely, neighbours merged);
the cells a model matches worst are where to look, for label errors as much as for model
errors. Every ground-truth cell gets its challenge IoU — its best IoU over the predictions of
its image at 1080x1440, exactly as :mod:`segpc.evaluation.miou` scores it — and the index of
that best prediction (:func:`~segpc.evaluation.miou.best_matches`). The ``num`` lowest are
reported, worst first (ties: image and mask name order):

* ``crops/<rank>_<gt mask>.png``: the region of the cell and of its best prediction, prediction
  (left: cell outline yellow, nucleus magenta) next to ground truth (right: green, blue),
  enlarged so that the short side is at least 256 pixels;
* ``index.csv`` (``rank, image, gt_mask, iou, pred, crop``) and ``index.md`` (the same table
  with the crops inline). ``pred`` names the best prediction: its file stem for a submission
  folder, ``<name>_<k>`` (the submission file it would be) for a dump; empty when no
  prediction overlaps the cell.
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from segpc.evaluation.miou import best_matches, default_workers, find_gt_dir, scaled_file, scaled_rle
from segpc.io import (IMAGE_EXTS, SegPCError, atomic_dir, mask_files, natural_key, read_image,
                      read_mask)
from segpc.structures import CropMask, cell_to_mask, load_dump, mask_box

MIN_SIDE = 256
# what write_report writes into its folder (segpc.io.check_output_dir)
REPORT_FILES = (r"index\.csv", r"index\.md", r"crops/[0-9]+_[^/]+\.png")


@dataclass(frozen=True)
class CellMatch:
    """One ground-truth cell and its best prediction."""

    image: str
    gt_path: Path
    iou: float
    pred: Optional[str]  # name of the best prediction (None: nothing overlaps)
    pred_source: object = None  # Path of the submission file, or the dump's cell dict

    @property
    def gt_name(self) -> str:
        return self.gt_path.stem


def _load_predictions(pred: Path) -> dict[str, list[tuple[str, object, CropMask]]]:
    """Image name → [(prediction name, source, mask)] from a submission folder or a dump."""
    if pred.is_dir():
        return {image: [(p.stem, p, scaled_file(p, prediction=True)) for p in paths]
                for image, paths in mask_files(pred).items()}
    return {img["name"]: [(f"{img['name']}_{k}", cell, scaled_rle(cell["cell"]))
                          for k, cell in enumerate(img["cells"], start=1)]
            for img in load_dump(pred)["images"]}


def match_cells(gt_dir: str | os.PathLike, pred: str | os.PathLike,
                workers: Optional[int] = None) -> list[CellMatch]:
    """Every ground-truth cell of ``gt_dir`` with its challenge IoU and best prediction, worst first."""
    from concurrent.futures import ThreadPoolExecutor

    folder = find_gt_dir(gt_dir)
    gt_files = mask_files(folder)
    if not gt_files:
        raise SegPCError(gt_dir, "no ground-truth masks")
    pred = Path(pred)
    if not pred.exists():
        raise SegPCError(pred, "predictions not found (a submission folder or a prediction dump)")
    preds = _load_predictions(pred)
    jobs = [(image, p) for image, paths in gt_files.items() for p in paths]
    workers = default_workers() if workers is None else max(1, int(workers))
    with ThreadPoolExecutor(workers) as pool:
        masks = list(pool.map(lambda j: scaled_file(j[1], prediction=False), jobs))
    by_image: dict[str, list[tuple[Path, CropMask]]] = {}
    for (image, p), m in zip(jobs, masks):
        by_image.setdefault(image, []).append((p, m))
    out = []
    for image, gts in by_image.items():
        cand = preds.get(image, [])
        ious, idx = best_matches([m for _, m in gts], [m for _, _, m in cand])
        for (p, _), iou, i in zip(gts, ious, idx):
            out.append(CellMatch(image, p, float(iou), cand[i][0] if i >= 0 else None,
                                 cand[i][1] if i >= 0 else None))
    out.sort(key=lambda c: (c.iou, natural_key(c.image), natural_key(c.gt_name)))
    return out


# --------------------------------------------------------------------------- crops


def _find_image(split: Path, image: str) -> Optional[Path]:
    for ext in IMAGE_EXTS:
        for e in (ext, ext.upper()):
            p = split / "x" / f"{image}{e}"
            if p.is_file():
                return p
    return None


def _pred_mask(match: CellMatch, shape: tuple[int, int]) -> Optional[np.ndarray]:
    if match.pred_source is None:
        return None
    if isinstance(match.pred_source, Path):
        m = read_mask(match.pred_source)
    else:
        m = cell_to_mask(match.pred_source)
    if m.shape != shape:  # show it over the ground truth's frame
        m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return m


def crop_comparison(match: CellMatch, split_dir: Path, min_side: int = MIN_SIDE) -> np.ndarray:
    """Prediction next to ground truth around the cell (the image's own pixels when the split
    has ``x/<image>.*``, else a grey background)."""
    from segpc.visualization import comparison

    gt = read_mask(match.gt_path)
    h, w = gt.shape
    pred = _pred_mask(match, (h, w))
    boxes = [b for b in (mask_box(gt), None if pred is None else mask_box(pred)) if b]
    if not boxes:
        boxes = [(0, 0, w, h)]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    margin = max(16, (max(x1 - x0, y1 - y0) + 3) // 4)
    x0, y0, x1, y1 = max(0, x0 - margin), max(0, y0 - margin), min(w, x1 + margin), min(h, y1 + margin)
    path = _find_image(split_dir, match.image)
    if path is not None:
        image = read_image(path)
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        image = np.full((h, w, 3), 160, np.uint8)
    crop_img = image[y0:y1, x0:x1]
    crops = [m[y0:y1, x0:x1] for m in (gt, pred) if m is not None]
    f = min(8, max(1, math.ceil(min_side / max(1, min(y1 - y0, x1 - x0)))))
    if f > 1:
        size = ((x1 - x0) * f, (y1 - y0) * f)
        crop_img = cv2.resize(crop_img, size, interpolation=cv2.INTER_LINEAR)
        crops = [cv2.resize(m, size, interpolation=cv2.INTER_NEAREST) for m in crops]
    gt_c = crops[0]
    pred_c = crops[1:] if pred is not None else []
    return comparison(crop_img, pred_c, [gt_c], title=f"IoU {match.iou:.3f}")


def write_report(matches: Sequence[CellMatch], split_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 num: int = 20, overwrite: bool = False) -> list[dict]:
    """Crops of the ``num`` worst cells into ``out_dir/crops/``, ``index.csv`` and ``index.md``;
    returns the index rows. ``out_dir`` is written whole, atomically; an existing one is
    replaced only if it holds a previous report and ``overwrite`` (:func:`segpc.io.check_output_dir`)."""
    split = Path(split_dir)
    split = split.parent if split.name == "y" and not (split / "x").is_dir() else split
    rows = []
    width = len(str(max(1, min(num, len(matches)))))
    with atomic_dir(out_dir, REPORT_FILES, overwrite) as out:
        (out / "crops").mkdir()
        for rank, m in enumerate(matches[:num], start=1):
            name = f"{rank:0{width}d}_{m.gt_name}.png"
            if not cv2.imwrite(str(out / "crops" / name), crop_comparison(m, split)):
                raise SegPCError(Path(out_dir) / "crops" / name, "cannot write crop")
            rows.append({"rank": rank, "image": m.image, "gt_mask": m.gt_path.name, "iou": m.iou,
                         "pred": m.pred or "", "crop": f"crops/{name}"})
        _write_index(rows, out)
    return rows


def _write_index(rows: list[dict], out: Path) -> None:
    """``index.csv`` and ``index.md`` of the report rows, in ``out``."""
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(["rank", "image", "gt_mask", "iou", "pred", "crop"])
    for r in rows:
        wr.writerow([r["rank"], r["image"], r["gt_mask"], f"{r['iou']:.6f}", r["pred"], r["crop"]])
    (out / "index.csv").write_text(buf.getvalue())
    md = [f"# The {len(rows)} worst-matched ground-truth cells", "",
          "Challenge IoU (best prediction, masks at 1080x1440). Left: prediction (cell yellow, "
          "nucleus magenta); right: ground truth (cell green, nucleus blue).", "",
          "| rank | image | ground truth | IoU | best prediction | crop |", "|---:|---|---|---:|---|---|"]
    md += [f"| {r['rank']} | {r['image']} | {r['gt_mask']} | {r['iou']:.4f} | {r['pred'] or '(none)'} "
           f"| ![{r['gt_mask']}]({r['crop']}) |" for r in rows]
    (out / "index.md").write_text("\n".join(md) + "\n")
