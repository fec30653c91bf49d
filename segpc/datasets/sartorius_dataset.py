"""``SartoriusDataset``: mmdet's COCO dataset for the Sartorius cell types (shsy5y, astro, cort)."""
from __future__ import annotations

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from segpc.datasets.sartorius import CELL_TYPES
from segpc.datasets.segpc_dataset import require_coco_data

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
        require_coco_data(self.ann_file, self.data_prefix.get("img", ""), HOW_TO_GET_DATA)
        return super().load_data_list()
