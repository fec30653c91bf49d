"""Mask primitives and the prediction dump: the one home of every mask, RLE, box and dump.

* :mod:`~segpc.structures.rle` — the RLE codec (COCO compressed RLE, ``counts`` as ``str``; and
  Kaggle's run-length text);
* :mod:`~segpc.structures.boxes` — boxes ``(x1, y1, x2, y2)``, end exclusive;
* :mod:`~segpc.structures.masks` — :class:`CropMask`, a mask as its box + crop, optionally
  resized to a target frame; IoUs, votes, flips on crops;
* :mod:`~segpc.structures.cells` — cells with their nucleus from a model's instances;
* :mod:`~segpc.structures.dump` — the prediction dump (JSON; validated on reading) and
  submission folders.

Light: numpy, OpenCV and pycocotools; no torch, mmengine or mmdet.
"""
from segpc.structures.boxes import (FLIP_DIRECTIONS, boxes_overlap, flip_boxes, flip_image, mask_box,
                                    overlap_matrix, xyxy_to_xywh)
from segpc.structures.cells import (CELL_LABEL, CLASSES, CYTOPLASM_LABEL, NUCLEUS_LABEL, assemble_cells,
                                    cell_to_mask)
from segpc.structures.dump import (DUMP_FORMAT, check_dump_path, load_dump, load_predictions, make_dump,
                                   read_submission, save_dump, validate_dump, write_submission)
from segpc.structures.masks import CropMask, iou_matrix, paste, resize_maps, vote
from segpc.structures.rle import (area, bbox_xyxy, decode, encode, encode_many, intersect, kaggle_decode,
                                  kaggle_encode, kaggle_runs, kaggle_to_rle, kaggle_to_rle_t, rle_iou,
                                  rle_to_kaggle)

__all__ = [
    "CELL_LABEL", "CLASSES", "CYTOPLASM_LABEL", "DUMP_FORMAT", "FLIP_DIRECTIONS", "NUCLEUS_LABEL", "CropMask",
    "area", "assemble_cells", "bbox_xyxy", "boxes_overlap", "cell_to_mask", "check_dump_path", "decode",
    "encode", "encode_many", "flip_boxes", "flip_image", "intersect", "iou_matrix", "kaggle_decode", "kaggle_encode",
    "kaggle_runs", "kaggle_to_rle", "kaggle_to_rle_t", "load_dump", "load_predictions", "make_dump",
    "mask_box", "overlap_matrix", "paste", "read_submission", "resize_maps", "rle_iou", "rle_to_kaggle",
    "save_dump", "validate_dump", "vote", "write_submission", "xyxy_to_xywh",
]
