"""SegPC-2021 evaluation: the challenge's mIoU as pure functions (:mod:`segpc.evaluation.miou`).

Evaluation only scores: masks, RLEs and dumps are :mod:`segpc.structures`'. Light on purpose
(numpy, OpenCV, pycocotools): importing this package does not import torch, mmengine or mmdet.
The mmengine metric lives in :mod:`segpc.evaluation.metric` and is imported only by
:mod:`segpc.register`.
"""
from segpc.evaluation.miou import (
    PRED_VALUES,
    TARGET,
    ImageRecord,
    MIoUResult,
    accumulate,
    best_ious,
    best_matches,
    evaluate_dirs,
    evaluate_masks,
    scaled_file,
    scaled_rle,
    summarize,
)

__all__ = [
    "PRED_VALUES", "TARGET", "ImageRecord", "MIoUResult", "accumulate", "best_ious", "best_matches",
    "evaluate_dirs", "evaluate_masks", "scaled_file", "scaled_rle", "summarize",
]
