"""Metrics of the semantic path (MMSegmentation models on background / cytoplasm / nucleus).

* ``SegPCIoUMetric``: mmseg's ``IoUMetric`` that also returns its per-class values
  (``IoU.cytoplasm``, ``Dice.nucleus``, ...), so they reach the logs, ``scalars.json`` and
  ``tools/test.py``'s result, not only the printed table.
* ``SegPCSemanticMetric`` (key ``segpc/mIoU``): cells recovered from the predicted map
  (:func:`segpc.datasets.semantic.recover_cells`) and scored with the challenge's mIoU against
  the split's cell masks (``y/``); writes the same prediction dump and ``<id>_<k>.bmp``
  submission as :class:`~segpc.evaluation.metric.SegPCMetric`, whose scoring it shares.
"""
from __future__ import annotations

import os.path as osp
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

from segpc.datasets.semantic import BACKGROUND_ID, recover_cells
from segpc.evaluation.metric import SegPCMetric
from segpc.evaluation.miou import scaled_file
from segpc.io import SegPCError


@METRICS.register_module()
class SegPCIoUMetric(IoUMetric):
    """``IoUMetric`` plus per-class entries ``<metric>.<class>`` (in %, as mmseg's means)."""

    def compute_metrics(self, results: list) -> dict:
        metrics = super().compute_metrics(results)
        if self.format_only or not results:
            return metrics
        areas = [sum(a) for a in zip(*results)]
        per_class = self.total_area_to_metrics(*areas, self.metrics, self.nan_to_num, self.beta)
        per_class.pop("aAcc", None)
        for key, values in per_class.items():
            for name, v in zip(self.dataset_meta["classes"], np.asarray(values, dtype=float)):
                metrics[f"{key}.{name}"] = round(float(v) * 100, 2)
        return metrics


@METRICS.register_module()
class SegPCSemanticMetric(SegPCMetric):
    """SegPC-2021 mIoU of the cells recovered from a semantic model's maps.

    Args:
        split_dir: the split folder (``x/`` images, ``y/`` cell masks), relative to ``data_root``.
        data_root: prefix of ``split_dir``.
        score_thr: cells whose mean foreground probability is below are dropped (default 0: all).
        min_nucleus_area: nucleus components smaller than this (pixels) seed no cell.
        outfile, submission_dir, format_only, overwrite: as :class:`SegPCMetric`.
    """

    def __init__(self, split_dir: Optional[str] = None, data_root: Optional[str] = None,
                 score_thr: float = 0.0, min_nucleus_area: int = 0, outfile: Optional[str] = None,
                 submission_dir: Optional[str] = None, format_only: bool = False, overwrite: bool = False,
                 collect_device: str = "cpu", prefix: Optional[str] = None) -> None:
        # The ground truth is the split's mask files, not SegPCMetric's COCO file.
        super().__init__(ann_file=None, score_thr=score_thr, outfile=outfile, submission_dir=submission_dir,
                         format_only=True, overwrite=overwrite, collect_device=collect_device, prefix=prefix)
        self.format_only = format_only
        if not split_dir:
            raise ValueError("SegPCSemanticMetric needs split_dir (the split folder with x/ and y/)")
        self.split_dir = osp.join(data_root, split_dir) if data_root else split_dir
        self.min_nucleus_area = min_nucleus_area
        self._entries = None

    def entries(self):
        from segpc.datasets.convert import scan_split

        if self._entries is None:
            self._entries = scan_split(self.split_dir)
        return self._entries

    def load_gt(self) -> dict[int, tuple[str, list]]:
        return {e.id: (e.stem, [scaled_file(p, prediction=False) for _, p in e.masks]) for e in self.entries()}

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        ids = {e.stem: e.id for e in self.entries()}
        for sample in data_samples:
            name = Path(sample["img_path"]).stem
            if name not in ids:
                raise SegPCError(sample["img_path"], f"image not in the metric's split {self.split_dir}")
            sem = sample["pred_sem_seg"]["data"][0].cpu().numpy().astype(np.uint8)
            scores = None
            if sample.get("seg_logits") is not None:
                prob = sample["seg_logits"]["data"].float().softmax(dim=0)
                scores = (1.0 - prob[BACKGROUND_ID]).cpu().numpy()
            cells = [c for c in recover_cells(sem, scores, self.min_nucleus_area) if c["score"] >= self.score_thr]
            h, w = sample["ori_shape"]
            self.results.append({"name": name, "img_id": ids[name], "height": int(h), "width": int(w),
                                 "cells": cells})
