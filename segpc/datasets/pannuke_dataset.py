"""``PanNukeDataset`` (mmdet's COCO dataset over tools/convert_pannuke.py's output) and
``BoxesFromMasks`` (tight boxes after a geometric transform)."""
from __future__ import annotations

from mmcv.transforms import BaseTransform
from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS, TRANSFORMS

from segpc.datasets.pannuke import HOW_TO_GET_DATA
from segpc.datasets.segpc_dataset import require_coco_data
from segpc.evaluation.pq import CLASSES


@DATASETS.register_module()
class PanNukeDataset(CocoDataset):
    """A converted PanNuke fold: five nucleus classes (``metainfo=dict(classes=('Neoplastic',))``
    for a file converted with ``--classes neoplastic``)."""

    METAINFO = {
        "classes": CLASSES,
        "palette": [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 140, 0)],
    }

    def load_data_list(self) -> list[dict]:
        require_coco_data(self.ann_file, self.data_prefix.get("img", ""), HOW_TO_GET_DATA)
        return super().load_data_list()


@TRANSFORMS.register_module()
class BoxesFromMasks(BaseTransform):
    """Replace ``gt_bboxes`` by the tight boxes of ``gt_masks``.

    mmdet's ``Rotate`` rotates a box's corners, which makes every box larger than its (rotated)
    mask; put this after it. Instances whose mask left the image keep an empty box; follow
    with ``FilterAnnotations`` to drop them.
    """

    def transform(self, results: dict) -> dict:
        if results.get("gt_masks") is not None and results.get("gt_bboxes") is not None:
            results["gt_bboxes"] = results["gt_masks"].get_bboxes(dst_type="hbox")
        return results
