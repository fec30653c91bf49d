"""``SegPCMetric``: the challenge's mIoU as an mmengine metric (key ``segpc/mIoU``).

During validation and ``tools/test.py`` every image's three-class instances are assembled into
cells with their nucleus (:func:`segpc.structures.assemble_cells`), kept as RLE, and scored
against the cell annotations of the COCO file with the same pure functions as
``tools/eval_miou.py``. The same results can be written as a prediction dump and as a
challenge submission folder.
"""
from __future__ import annotations

import os.path as osp
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmdet.registry import METRICS

from segpc.io import SUBMISSION_FILES, SegPCError, check_output_dir, load_json
from segpc.structures import (CELL_LABEL, NUCLEUS_LABEL, assemble_cells, check_dump_path, encode_many,
                              CropMask, make_dump, save_dump, write_submission)
from segpc.evaluation.miou import TARGET, evaluate_masks, scaled_rle


def load_gt_cells(ann_file: str) -> dict[int, tuple[str, list[CropMask]]]:
    """Image id → (name (file stem), ground-truth cells at the scoring scale) of a COCO file.

    Segmentations may be RLE (compressed or not) or polygons, as in a COCO file made elsewhere.
    Cells whose mask file is empty (``empty_masks`` of the image, listed by
    ``tools/convert_segpc.py``) are cells no prediction can match: IoU 0, as the challenge's
    scorer counts them.
    """
    coco = load_json(ann_file)
    try:
        cell_cat = next(c["id"] for c in coco["categories"] if c["name"] == "cell")
        images = {img["id"]: img for img in coco["images"]}
        gt = {i: (Path(img["file_name"]).stem, [CropMask.empty(TARGET)] * len(img.get("empty_masks", [])))
              for i, img in images.items()}
        for ann in coco["annotations"]:
            if ann["category_id"] == cell_cat:
                img = images[ann["image_id"]]
                gt[ann["image_id"]][1].append(
                    scaled_rle(ann["segmentation"], size=(img["height"], img["width"])))
    except StopIteration:
        raise SegPCError(ann_file, "no 'cell' category: write it with tools/convert_segpc.py") from None
    except (KeyError, TypeError, ValueError) as e:
        raise SegPCError(ann_file, f"not a COCO instance file ({type(e).__name__}: {e})") from None
    return gt


@METRICS.register_module()
class SegPCMetric(BaseMetric):
    """SegPC-2021 mIoU of the whole-cell predictions.

    Args:
        ann_file: COCO file of the split (``tools/convert_segpc.py``), relative to ``data_root``.
        data_root: prefix of ``ann_file``.
        score_thr: cells scoring below are not predictions (nuclei of any score may attach).
        outfile: write the prediction dump (``segpc-predictions/1`` JSON) here.
        submission_dir: write the challenge submission (``<id>_<k>.bmp``, 40/20) here; a folder
            holding anything else is refused, a previous submission replaced only with ``overwrite``.
        overwrite: replace a previous submission in ``submission_dir``.
        format_only: only write outputs, do not score (a split without ground truth).
    """

    default_prefix: Optional[str] = "segpc"

    def __init__(self, ann_file: Optional[str] = None, data_root: Optional[str] = None,
                 score_thr: float = 0.5, outfile: Optional[str] = None,
                 submission_dir: Optional[str] = None, format_only: bool = False,
                 overwrite: bool = False, collect_device: str = "cpu", prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ann_file = osp.join(data_root, ann_file) if (data_root and ann_file) else ann_file
        if not format_only and not self.ann_file:
            raise ValueError("SegPCMetric needs ann_file unless format_only=True")
        if outfile:
            check_dump_path(outfile)
        self.score_thr = score_thr
        self.outfile = outfile
        self.submission_dir = submission_dir
        self.overwrite = overwrite
        if submission_dir:  # refuse before the model runs, not after
            check_output_dir(submission_dir, SUBMISSION_FILES, overwrite)
        self.format_only = format_only
        self.result = None  # the last MIoUResult, exact (mmengine's logger rounds the returned dict)
        self._gt = None  # image id → (name, ground-truth CropMasks at the challenge's scale), read once from ann_file

    def load_gt(self) -> dict[int, tuple[str, list[CropMask]]]:
        """Image id → (image name, ground-truth cells at the scoring scale) of the split."""
        return load_gt_cells(self.ann_file)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = sample["pred_instances"]
            labels = pred["labels"].cpu().numpy()
            scores = pred["scores"].cpu().numpy()
            # Only what can end up in a cell: cells above threshold and candidate nuclei.
            keep = ((labels == CELL_LABEL) & (scores >= self.score_thr)) | (labels == NUCLEUS_LABEL)
            idx = np.flatnonzero(keep)
            masks = pred["masks"][idx].cpu().numpy() if len(idx) else np.zeros((0, 1, 1), bool)
            cells = assemble_cells(encode_many(masks), labels[idx], scores[idx], self.score_thr)
            h, w = sample["ori_shape"]
            self.results.append({
                "name": Path(sample["img_path"]).stem,
                "img_id": int(sample["img_id"]),
                "height": int(h),
                "width": int(w),
                "cells": cells,
            })

    def compute_metrics(self, results: list) -> dict:
        logger = MMLogger.get_current_instance()
        results = sorted(results, key=lambda r: r["img_id"])
        dump = make_dump(results)
        if self.outfile:
            save_dump(dump, self.outfile)
            logger.info(f"prediction dump written to {self.outfile}")
        if self.submission_dir:
            n = write_submission(dump, self.submission_dir, overwrite=self.overwrite)
            self.overwrite = True  # the next validation replaces what this one wrote
            logger.info(f"submission ({n} cell masks) written to {self.submission_dir}")
        if self.format_only:
            return {}
        if self._gt is None:  # the split's ground truth does not change between validations
            self._gt = self.load_gt()
        preds = {r["img_id"]: r for r in results}
        gt_masks, pred_masks = {}, {}
        for img_id, (name, masks) in self._gt.items():
            if img_id not in preds:  # e.g. a partial run over part of the split
                continue
            gt_masks[name] = masks
            pred_masks[name] = [scaled_rle(c["cell"]) for c in preds[img_id]["cells"]]
        res = self.result = evaluate_masks(gt_masks, pred_masks)
        logger.info(f"SegPC mIoU {res.mIoU:.4f} over {res.num_gt} cells, {res.num_pred} predictions")
        return {"mIoU": res.mIoU}
