"""``SegPCDataset``: mmdet's COCO dataset for SegPC's three classes, with clear missing-data errors."""
from __future__ import annotations

import os

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from segpc.io import SegPCError
from segpc.structures import CLASSES

HOW_TO_GET_DATA = (
    "get SegPC-2021 (see README.md, 'Data') and convert it with tools/convert_segpc.py, "
    "point the config elsewhere with --cfg-options data_root=DIR, or run `make demo` for synthetic data"
)


def require_coco_data(ann_file: str, img_dir: str, how: str = HOW_TO_GET_DATA) -> None:
    """A COCO data set's annotation file and image folder, or a one-line :class:`SegPCError`
    that says ``how`` to get the data (shared by every segpc COCO dataset)."""
    if not os.path.isfile(ann_file):
        raise SegPCError(ann_file, f"annotation file not found: {how}")
    if img_dir and not os.path.isdir(img_dir):
        raise SegPCError(img_dir, f"image folder not found: {how}")


@DATASETS.register_module()
class SegPCDataset(CocoDataset):
    """SegPC-2021 in COCO form (``tools/convert_segpc.py``): nucleus, cytoplasm and whole cell."""

    METAINFO = {
        "classes": CLASSES,
        "palette": [(128, 0, 128), (0, 170, 255), (255, 140, 0)],
    }

    def load_data_list(self) -> list[dict]:
        img_dir = self.data_prefix.get("img", "")
        require_coco_data(self.ann_file, img_dir)
        data_list = super().load_data_list()
        seg_dir = self.data_prefix.get("seg")
        if seg_dir:  # HTC/SCNet: check the semantic maps here, not in a DataLoader worker
            missing = next((d["seg_map_path"] for d in data_list if not os.path.isfile(d["seg_map_path"])), None)
            if missing is not None:
                where = seg_dir if not os.path.isdir(seg_dir) else missing
                split = os.path.dirname(os.path.normpath(img_dir)) if img_dir else "SPLIT_DIR"
                raise SegPCError(where, f"semantic map {'folder ' if where == seg_dir else ''}not found "
                                        "(HTC/SCNet learn the whole-cell maps): write them with `python "
                                        f"tools/convert_segpc.py {split} {self.ann_file} --semantic-dir {seg_dir}`")
        return data_list
