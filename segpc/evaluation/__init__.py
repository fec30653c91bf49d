"""SegPC-2021 evaluation: the challenge's mIoU as pure functions (:mod:`segpc.evaluation.miou`).

Light on purpose (numpy + OpenCV): importing this package does not import torch, mmengine or
mmdet. The mmengine metric lives in :mod:`segpc.evaluation.metric` and is imported only by
:mod:`segpc.register`.
"""
from segpc.evaluation.miou import (
    PRED_VALUES,
    TARGET,
    ImageRecord,
    MIoUResult,
    ScaledMask,
    accumulate,
    best_ious,
    evaluate_dirs,
    evaluate_masks,
    iou_matrix,
    resize_maps,
    summarize,
)

__all__ = [
    "PRED_VALUES", "TARGET", "ImageRecord", "MIoUResult", "ScaledMask", "accumulate", "best_ious",
    "evaluate_dirs", "evaluate_masks", "iou_matrix", "resize_maps", "summarize",
]
