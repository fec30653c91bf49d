"""MMSegmentation data sets of the bmdeep method, built on the fly from any SegPC COCO file.

* ``SegPCNucleusDataset``: every image with its binary nucleus map (all nuclei of the image;
  ``LoadSegPCNucleusMap`` paints them). Classes ``background, nucleus``.
* ``SegPCCropDataset``: one sample per annotated cell that has a nucleus: the 4-channel crop of
  its nucleus at ``scale`` (:mod:`segpc.datasets.crops`) brought to ``crop_size``, and the binary
  map of the cell (nucleus + cytoplasm) in that crop (``LoadSegPCCrop``). Classes
  ``background, cell``.

The cell list is a pure function of the COCO file (images by id, cells by their index), so a
data set is the same on every run; random augmentation in the pipeline follows the runner's
seed. A cell of the COCO file is the group of annotations with the same ``image_id`` and
``cell_index`` (``tools/convert_segpc.py`` writes them).
"""
from __future__ import annotations

import json
import os.path as osp
from collections import defaultdict

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS, TRANSFORMS

from segpc.datasets.crops import INPUT_SIZE, equalize, fit_to_input, make_crop, mask_patch, to_input
from segpc.io import SegPCError, read_image
from segpc.structures import CLASSES, CropMask

NUCLEUS_ID, CELL_ID = CLASSES.index("nucleus") + 1, CLASSES.index("cell") + 1


def coco_cells(ann_file: str) -> list[tuple[dict, list[dict]]]:
    """``[(image, [{"nucleus": seg | None, "cell": seg | None}, ...]), ...]`` of a SegPC COCO
    file: images by id, cells by ``cell_index`` (natural order)."""
    from segpc.io import natural_key

    try:
        with open(ann_file) as f:
            coco = json.load(f)
    except FileNotFoundError:
        raise SegPCError(ann_file, "annotation file not found") from None
    except (OSError, ValueError) as e:
        raise SegPCError(ann_file, f"cannot read COCO annotations: {e}") from None
    cells: dict[int, dict[str, dict]] = defaultdict(dict)
    for ann in coco.get("annotations", []):
        key = {NUCLEUS_ID: "nucleus", CELL_ID: "cell"}.get(ann.get("category_id"))
        if key is None:
            continue
        if "cell_index" not in ann:
            raise SegPCError(ann_file, f"annotation {ann.get('id')} has no cell_index "
                                       "(write the file with tools/convert_segpc.py)")
        cells[ann["image_id"]].setdefault(str(ann["cell_index"]), {})[key] = ann["segmentation"]
    out = []
    for img in sorted(coco.get("images", []), key=lambda i: i["id"]):
        mine = cells.get(img["id"], {})
        out.append((img, [{"nucleus": mine[k].get("nucleus"), "cell": mine[k].get("cell")}
                          for k in sorted(mine, key=natural_key)]))
    return out


def _mask(seg, hw) -> CropMask:
    return CropMask.from_rle(seg, size=hw)


class _SegPCCocoDataset(BaseSegDataset):
    """A segpc COCO file read by :func:`coco_cells`; ``data_prefix=dict(img_path=...)``."""

    def _images(self):
        img_dir = self.data_prefix.get("img_path", "")
        for img, cells in coco_cells(self.ann_file):
            yield dict(img_path=osp.join(img_dir, img["file_name"]), img_id=img["id"],
                       frame=(int(img["height"]), int(img["width"])), label_map=self.label_map,
                       reduce_zero_label=False, seg_fields=[]), cells


@DATASETS.register_module()
class SegPCNucleusDataset(_SegPCCocoDataset):
    """Images and their binary nucleus maps (for the nucleus U-Net)."""

    METAINFO = dict(classes=("background", "nucleus"), palette=[[0, 0, 0], [128, 0, 128]])

    def load_data_list(self) -> list[dict]:
        return [dict(info, nuclei=[c["nucleus"] for c in cells if c["nucleus"] is not None])
                for info, cells in self._images()]


@DATASETS.register_module()
class SegPCCropDataset(_SegPCCocoDataset):
    """One 4-channel crop per cell with a nucleus, at ``scale`` (for a cytoplasm network)."""

    METAINFO = dict(classes=("background", "cell"), palette=[[0, 0, 0], [255, 255, 0]])

    def __init__(self, scale: float, crop_size: int = INPUT_SIZE, **kwargs):
        self.scale = float(scale)
        self.crop_size = int(crop_size)
        super().__init__(**kwargs)

    def load_data_list(self) -> list[dict]:
        out = []
        for info, cells in self._images():
            for k, c in enumerate(cells):
                if c["nucleus"] is None or c["cell"] is None:
                    continue
                out.append(dict(info, nucleus=c["nucleus"], cell=c["cell"], cell_k=k,
                                scale=self.scale, crop_size=self.crop_size))
        return out


def _check_frame(shape, results: dict) -> None:
    """The image as read (``shape``, before any resize) must be the annotations' size."""
    if tuple(shape[:2]) != tuple(results["frame"]):
        raise SegPCError(results["img_path"], f"image is {shape[0]}x{shape[1]}, the annotations "
                                              f"{results['frame'][0]}x{results['frame'][1]}")


@TRANSFORMS.register_module()
class LoadSegPCNucleusMap(BaseTransform):
    """``gt_seg_map``: 1 on every nucleus of ``results['nuclei']``, 0 elsewhere, at the image's
    own size (after ``LoadImageFromFile``; before a ``Resize`` for training, after it for testing,
    where mmseg scores at the original size)."""

    def transform(self, results: dict) -> dict:
        _check_frame(results["ori_shape"], results)
        seg = np.zeros(results["frame"], dtype=np.uint8)
        for s in results["nuclei"]:
            m = _mask(s, results["frame"])
            seg[m.y0:m.y1, m.x0:m.x1] |= m.crop
        results["gt_seg_map"] = seg
        results["seg_fields"].append("gt_seg_map")
        return results


@TRANSFORMS.register_module()
class LoadSegPCCrop(BaseTransform):
    """``img``: the ``crop_size`` 4-channel crop of ``results['nucleus']`` at ``scale``;
    ``gt_seg_map``: the cell in that crop (when ``results`` has a ``cell``)."""

    def transform(self, results: dict) -> dict:
        img = read_image(results["img_path"])
        _check_frame(img.shape, results)
        nucleus = _mask(results["nucleus"], results["frame"])
        crop, window = make_crop(equalize(img), nucleus, results["scale"])
        fit = fit_to_input(window.shape, results["crop_size"])
        results["img"] = to_input(crop, fit)
        results["img_shape"] = results["ori_shape"] = results["img"].shape[:2]
        if results.get("cell") is not None:
            label = mask_patch(_mask(results["cell"], results["frame"]), window).astype(np.uint8)
            results["gt_seg_map"] = to_input(label, fit, label=True)
            results["seg_fields"].append("gt_seg_map")
        return results
