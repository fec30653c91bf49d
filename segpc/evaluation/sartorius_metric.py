"""``SartoriusMetric``: the Kaggle cell AP (:mod:`segpc.evaluation.kaggle_ap`) as an mmengine metric.

Every image's instances become cells with their category (``shsy5y``/``astro``/``cort``) and
score, are post-processed as a submission would be (:func:`segpc.datasets.sartorius.postprocess_image`:
image class by majority, per-class score threshold and minimum size, overlaps removed by score)
and scored against the COCO file's cells. Keys: ``sartorius/AP`` and ``sartorius/AP_<cell type>``.
The raw cells can be written as a prediction dump, the post-processed ones as a submission CSV.
"""
from __future__ import annotations

import os.path as osp
from pathlib import Path
from typing import Mapping, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmdet.registry import METRICS

from segpc.datasets.sartorius import CELL_TYPES, postprocess_dump, write_submission_csv
from segpc.evaluation.kaggle_ap import evaluate, load_coco_truth
from segpc.structures import bbox_xyxy, encode_many, make_dump, save_dump


@METRICS.register_module()
class SartoriusMetric(BaseMetric):
    """Kaggle Sartorius AP of post-processed predictions.

    Args:
        ann_file: COCO file of the split (``tools/convert_sartorius.py``), relative to ``data_root``.
        data_root: prefix of ``ann_file``.
        score_thr: per image class minimum score (default shsy5y 0.15, astro 0.35, cort 0.55).
        min_size: per image class minimum pixels after overlap removal (default 75, 150, 75).
        outfile: write the prediction dump (every instance, with ``category``) here.
        submission: write the submission CSV (``id,predicted``) here.
        format_only: only write outputs, do not score (a split without ground truth).
    """

    default_prefix: Optional[str] = "sartorius"

    def __init__(self, ann_file: Optional[str] = None, data_root: Optional[str] = None,
                 score_thr: Optional[Mapping[str, float]] = None, min_size: Optional[Mapping[str, float]] = None,
                 outfile: Optional[str] = None, submission: Optional[str] = None, format_only: bool = False,
                 collect_device: str = "cpu", prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ann_file = osp.join(data_root, ann_file) if (data_root and ann_file) else ann_file
        if not format_only and not self.ann_file:
            raise ValueError("SartoriusMetric needs ann_file unless format_only=True")
        self.score_thr = dict(score_thr) if score_thr else None
        self.min_size = dict(min_size) if min_size else None
        self.outfile = outfile
        self.submission = submission
        self.format_only = format_only
        self.result = None  # the last KaggleAPResult, exact
        self._gt = None

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = sample["pred_instances"]
            labels = pred["labels"].cpu().numpy()
            scores = pred["scores"].cpu().numpy()
            masks = pred["masks"]
            rles = []  # in chunks: up to 1000 full-frame masks per image
            for i in range(0, len(labels), 100):
                rles += encode_many(masks[i:i + 100].cpu().numpy())
            cells = [{"score": float(s), "bbox": bbox_xyxy(rle), "cell": rle, "category": CELL_TYPES[int(k)]}
                     for rle, k, s in zip(rles, labels, scores)]
            h, w = sample["ori_shape"]
            self.results.append({"name": Path(sample["img_path"]).stem, "img_id": int(sample["img_id"]),
                                 "height": int(h), "width": int(w), "cells": cells})

    def compute_metrics(self, results: list) -> dict:
        logger = MMLogger.get_current_instance()
        dump = make_dump(sorted(results, key=lambda r: r["img_id"]))
        if self.outfile:
            save_dump(dump, self.outfile)
            logger.info(f"prediction dump written to {self.outfile}")
        if self.submission:
            stats = write_submission_csv(dump, self.submission, self.score_thr, self.min_size)
            logger.info(f"submission ({stats['cells']} cells) written to {self.submission}")
        if self.format_only:
            return {}
        if self._gt is None:
            self._gt = load_coco_truth(self.ann_file)[0]
        kept = postprocess_dump(dump, self.score_thr, self.min_size)
        gt = {name: self._gt[name] for name in kept if name in self._gt}  # a partial run scores its images
        res = self.result = evaluate(gt, {name: rles for name, (_, rles) in kept.items()})
        logger.info(f"Sartorius AP {res.score:.4f} over {len(res.per_image)} images, "
                    f"{res.num_gt} cells, {res.num_pred} predictions")
        return {"AP": res.score, **{f"AP_{t}": r["score"] for t, r in res.per_type.items()}}
