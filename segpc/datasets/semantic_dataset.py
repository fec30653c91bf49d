"""``SegPCSemanticDataset``: a SegPC split with its 3-class maps, for MMSegmentation models.

Images come from ``data_prefix.img_path`` (a split's ``x/``: .bmp/.png/.jpg/.tif, any mix),
their maps from ``data_prefix.seg_map_path`` (``<stem>.png``, 0 background, 1 cytoplasm,
2 nucleus, written by ``tools/export_semantic.py``). Without ``seg_map_path`` the images are
listed alone (prediction on a split without ground truth).
"""
from __future__ import annotations

import os.path as osp
from pathlib import Path

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from segpc.datasets.semantic import SEMANTIC_CLASSES
from segpc.io import IMAGE_EXTS, SegPCError, natural_key

HOW_TO_GET_MAPS = ("write them with `python tools/export_semantic.py SPLIT_DIR OUT_DIR` (see README.md, "
                   "'Own annotations'), or point the config elsewhere with --cfg-options data_root=DIR")


@DATASETS.register_module()
class SegPCSemanticDataset(BaseSegDataset):
    """SegPC images with background / cytoplasm / nucleus maps."""

    METAINFO = {"classes": SEMANTIC_CLASSES, "palette": [[0, 0, 0], [0, 170, 255], [128, 0, 128]]}

    def __init__(self, seg_map_suffix: str = ".png", **kwargs) -> None:
        super().__init__(img_suffix="", seg_map_suffix=seg_map_suffix, reduce_zero_label=False, **kwargs)

    def load_data_list(self) -> list[dict]:
        img_dir = self.data_prefix.get("img_path") or ""
        seg_dir = self.data_prefix.get("seg_map_path") or None
        if not osp.isdir(img_dir):
            raise SegPCError(img_dir, f"image folder not found: {HOW_TO_GET_MAPS}")
        images = sorted((p for p in Path(img_dir).iterdir()
                         if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")),
                        key=lambda p: natural_key(p.stem))
        if not images:
            raise SegPCError(img_dir, f"no images ({', '.join(IMAGE_EXTS)}) in the image folder")
        if seg_dir is not None and not osp.isdir(seg_dir):
            raise SegPCError(seg_dir, f"semantic map folder not found: {HOW_TO_GET_MAPS}")
        data_list = []
        for p in images:
            info = {"img_path": str(p), "label_map": self.label_map,
                    "reduce_zero_label": False, "seg_fields": []}
            if seg_dir is not None:
                seg = osp.join(seg_dir, p.stem + self.seg_map_suffix)
                if not osp.isfile(seg):
                    raise SegPCError(seg, f"semantic map missing for image {p.name}: {HOW_TO_GET_MAPS}")
                info["seg_map_path"] = seg
            data_list.append(info)
        return data_list
