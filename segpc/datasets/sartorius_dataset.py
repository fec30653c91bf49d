"""``SartoriusDataset``: mmdet's COCO dataset for the Sartorius cell types (shsy5y, astro, cort)."""
from __future__ import annotations

import os

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from segpc.datasets.sartorius import CELL_TYPES
from segpc.io import SegPCError

HOW_TO_GET_DATA = (
    "convert Kaggle's Sartorius train.csv with tools/convert_sartorius.py (README.md, 'Kaggle cell data'), "
    "write synthetic data with tools/make_synthetic.py --format sartorius, "
    "or point the config elsewhere with --cfg-options data_root=DIR"
)


@DATASETS.register_module()
class SartoriusDataset(CocoDataset):
    """Sartorius cells in COCO form (``tools/convert_sartorius.py``); one category per cell type."""

    METAINFO = {
        "classes": CELL_TYPES,
        "palette": [(0, 200, 255), (255, 120, 0), (120, 255, 0)],
    }

    def load_data_list(self) -> list[dict]:
        if not os.path.isfile(self.ann_file):
            raise SegPCError(self.ann_file, f"annotation file not found: {HOW_TO_GET_DATA}")
        img_dir = self.data_prefix.get("img", "")
        if img_dir and not os.path.isdir(img_dir):
            raise SegPCError(img_dir, f"image folder not found: {HOW_TO_GET_DATA}")
        return super().load_data_list()
