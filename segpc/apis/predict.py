"""Prediction on new slides (no ground truth): what ``tools/predict.py`` runs.

For every image of a folder the detector (optionally with flip TTA) predicts cells, assembled
with their nucleus exactly as ``tools/test.py`` does (:class:`~segpc.evaluation.metric.SegPCMetric`
with ``format_only``), and ``OUT_DIR`` receives:

* ``predictions.json``: the prediction dump (``segpc-predictions/1``);
* ``submission/<name>_<k>.bmp``: one challenge mask per cell (nucleus 40, cytoplasm 20);
* ``overlays/<name>.png``: the image with every cell's outline and its nucleus's outline;
* ``summary.csv``: one row per image: ``image, num_cells, mean_nucleus_area,
  mean_cytoplasm_area, mean_nucleus_cell_ratio`` (areas in pixels of the image; the ratio is
  the mean over the image's cells of nucleus area / cell area; blank when there is no cell);
* ``cells.csv``: one row per cell: ``image, k`` (as in the submission file name), ``score``,
  its box ``x1, y1, x2, y2`` (end exclusive) and ``cell_area, nucleus_area, cytoplasm_area,
  nucleus_cell_ratio``.
"""
from __future__ import annotations

import csv
import io
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from segpc.io import IMAGE_EXTS, SegPCError, atomic_dir, atomic_path, check_output_dir, natural_key, read_image
from segpc.structures import area, cell_to_mask, make_dump, save_dump, write_submission

SUMMARY_FIELDS = ("image", "num_cells", "mean_nucleus_area", "mean_cytoplasm_area", "mean_nucleus_cell_ratio")
# what write_outputs writes into OUT_DIR (segpc.io.check_output_dir)
OUTPUT_FILES = (r"predictions\.(pkl|json)", r"summary\.csv", r"cells\.csv", r"submission/[^/]+_[0-9]+\.bmp",
                r"overlays/[^/]+\.png")
CELL_FIELDS = ("image", "k", "score", "x1", "y1", "x2", "y2", "cell_area", "nucleus_area",
               "cytoplasm_area", "nucleus_cell_ratio")


# --------------------------------------------------------------------------- inputs


def list_images(images_dir: str | os.PathLike) -> list[Path]:
    """The images of a folder (``IMAGE_EXTS``, hidden files skipped), in natural name order."""
    folder = Path(images_dir)
    if not folder.is_dir():
        raise SegPCError(folder, "image folder not found")
    paths = sorted((p for p in folder.iterdir()
                    if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTS),
                   key=lambda p: natural_key(p.name))
    if not paths:
        raise SegPCError(folder, f"no images ({', '.join('*' + e for e in IMAGE_EXTS)})")
    stems: dict[str, Path] = {}
    for p in paths:
        if p.stem in stems:
            raise SegPCError(p, f"two images named {p.stem!r} ({stems[p.stem].name}): names must be unique")
        stems[p.stem] = p
    return paths


# --------------------------------------------------------------------------- statistics


def cell_rows(dump: dict) -> list[dict]:
    """One row per cell (``CELL_FIELDS``), ``k`` numbered from 1 as in the submission."""
    rows = []
    for img in dump["images"]:
        for k, cell in enumerate(img["cells"], start=1):
            c = area(cell["cell"])
            n = area(cell["nucleus"]) if cell.get("nucleus") is not None else 0
            x1, y1, x2, y2 = cell["bbox"]
            rows.append({"image": img["name"], "k": k, "score": float(cell["score"]),
                         "x1": x1, "y1": y1, "x2": x2, "y2": y2,
                         "cell_area": c, "nucleus_area": n, "cytoplasm_area": c - n,
                         "nucleus_cell_ratio": n / c if c else 0.0})
    return rows


def summary_rows(dump: dict, cells: Optional[list[dict]] = None) -> list[dict]:
    """One row per image (``SUMMARY_FIELDS``); the means are ``None`` for an image without cells."""
    cells = cell_rows(dump) if cells is None else cells
    by_image: dict[str, list[dict]] = {}
    for r in cells:
        by_image.setdefault(r["image"], []).append(r)
    rows = []
    for img in dump["images"]:
        mine = by_image.get(img["name"], [])
        n = len(mine)
        rows.append({
            "image": img["name"], "num_cells": n,
            "mean_nucleus_area": sum(r["nucleus_area"] for r in mine) / n if n else None,
            "mean_cytoplasm_area": sum(r["cytoplasm_area"] for r in mine) / n if n else None,
            "mean_nucleus_cell_ratio": sum(r["nucleus_cell_ratio"] for r in mine) / n if n else None,
        })
    return rows


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) < 1 else f"{v:.2f}"
    return str(v)


def write_csv(rows: Sequence[dict], fields: Sequence[str], path: str | os.PathLike) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(fields)
    for r in rows:
        w.writerow([_fmt(r[f]) for f in fields])
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def write_overlays(dump: dict, image_paths: dict[str, Path], out_dir: str | os.PathLike) -> int:
    """``<name>.png`` per image: cell outlines (yellow) and nucleus outlines (magenta); replaces ``out_dir``."""
    import cv2

    from segpc.visualization import PRED_COLORS, caption, draw_cells

    with atomic_dir(out_dir) as tmp:
        for img in dump["images"]:
            image = read_image(image_paths[img["name"]])
            thickness = max(1, image.shape[1] // 400)
            over = draw_cells(image, [cell_to_mask(c) for c in img["cells"]], PRED_COLORS, thickness)
            over = caption(over, f"{img['name']}: {len(img['cells'])} cells")
            path = Path(tmp) / f"{img['name']}.png"
            if not cv2.imwrite(str(path), over):
                raise SegPCError(path, "cannot write overlay")
    return len(dump["images"])


def write_outputs(dump: dict, image_paths: dict[str, Path], out_dir: str | os.PathLike,
                  overwrite: bool = False) -> dict:
    """Write everything of the module docstring under ``out_dir``; returns the paths.

    ``out_dir`` is written whole, atomically: an existing one is replaced only if it holds a
    previous output (``OUTPUT_FILES``) and ``overwrite`` (:func:`segpc.io.check_output_dir`).
    """
    names = {"dump": "predictions.json", "submission": "submission", "overlays": "overlays",
             "summary": "summary.csv", "cells": "cells.csv"}
    with atomic_dir(out_dir, OUTPUT_FILES, overwrite) as tmp:
        paths = {k: tmp / v for k, v in names.items()}
        save_dump(dump, paths["dump"])
        write_submission(dump, paths["submission"])
        write_overlays(dump, image_paths, paths["overlays"])
        cells = cell_rows(dump)
        write_csv(cells, CELL_FIELDS, paths["cells"])
        write_csv(summary_rows(dump, cells), SUMMARY_FIELDS, paths["summary"])
    return {k: Path(out_dir) / v for k, v in names.items()}


# --------------------------------------------------------------------------- inference


def build_predictor(config: str, checkpoint: str, tta: bool = False, device: Optional[str] = None,
                    cfg_options: Optional[dict] = None):
    """The model (eval mode, weights loaded) and the test pipeline (the TTA one with ``tta``)."""
    import torch
    from mmcv.transforms import Compose
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    import segpc.register  # noqa: F401  (registers SegPCDataset, SegPCMetric, SegPCTTAModel)
    from mmdet.registry import MODELS
    from segpc.apis.config import load_config
    from segpc.engine.checkpoint import check_checkpoint
    from segpc.models.tta import apply_tta, tested_dataset_cfg

    check_checkpoint(checkpoint)
    cfg = load_config(config, cfg_options)
    init_default_scope(cfg.get("default_scope", "mmdet"))
    if tta:
        apply_tta(cfg)
    pipeline = list(tested_dataset_cfg(cfg)["pipeline"])
    model = MODELS.build(cfg.model)
    load_checkpoint(model, checkpoint, map_location="cpu", logger="silent")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    return model, Compose(pipeline), cfg


def predict(config: str, checkpoint: str, images_dir: str, out_dir: str, tta: bool = False,
            score_thr: Optional[float] = None, device: Optional[str] = None,
            cfg_options: Optional[dict] = None, progress: bool = True, overwrite: bool = False) -> dict:
    """Predict every image of ``images_dir``; write the outputs to ``out_dir``; returns the dump.

    ``score_thr``: minimum cell score (default: the config's test_evaluator's, 0.5). Images
    are named by their file stem and taken in natural name order; their ``img_id`` is the
    number of the name when every name is a distinct number (as SegPC's), else 0, 1, ...
    A file that is not a decodable image (e.g. ``a.jpg`` holding text) is skipped with a
    one-line warning naming it (it has no row and no outputs).
    ``overwrite``: replace a previous output in ``out_dir`` (see :func:`write_outputs`).
    """
    import torch
    from mmengine.dataset import pseudo_collate
    from tqdm import tqdm

    from segpc.evaluation.metric import SegPCMetric

    images = list_images(images_dir)
    check_output_dir(out_dir, OUTPUT_FILES, overwrite)  # refuse before the model runs
    ids = [int(p.stem) for p in images] if all(p.stem.isascii() and p.stem.isdigit() for p in images) else []
    if len(set(ids)) != len(images):  # e.g. "1" and "01", or names that are not numbers
        ids = list(range(len(images)))
    model, pipeline, cfg = build_predictor(config, checkpoint, tta, device, cfg_options)
    if score_thr is None:
        score_thr = float((cfg.get("test_evaluator") or {}).get("score_thr", 0.5))
    metric = SegPCMetric(score_thr=score_thr, format_only=True)
    skipped = []
    with torch.no_grad():
        for i, path in enumerate(tqdm(images, desc="predict", unit="img", disable=not progress)):
            try:
                data = pipeline({"img_path": str(path), "img_id": ids[i]})
            except Exception:
                if is_image(path):
                    raise
                tqdm.write(f"warning: {path}: not a readable image, skipped", file=sys.stderr)
                skipped.append(path)
                continue
            results = model.test_step(pseudo_collate([data]))
            metric.process({}, [r.to_dict() for r in results])
    if not metric.results:
        raise SegPCError(images_dir, f"no readable image ({len(skipped)} skipped)")
    dump = make_dump(metric.results)
    write_outputs(dump, {p.stem: p for p in images}, out_dir, overwrite)
    return dump


def is_image(path: str | os.PathLike) -> bool:
    """Whether OpenCV decodes ``path`` (what the test pipeline's image loader also needs)."""
    import cv2

    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED) is not None
