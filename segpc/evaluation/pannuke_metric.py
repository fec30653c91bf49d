"""``PanNukeMetric``: PanNuke's bPQ and mPQ (official definitions) and COCO mask mAP in one metric.

Each image's predictions above ``score_thr`` are turned into instance maps the way PanNuke
stores them: where masks overlap, the higher-scoring instance keeps the pixel (an instance
left without pixels disappears), and every class gets its channel. bPQ, mPQ and per-class PQ
are then computed against the ground truth of the COCO file (``tools/convert_pannuke.py``) with
:mod:`segpc.evaluation.pq`, per tissue then over tissues. COCO mask mAP comes from mmdet's own
``CocoMetric`` over all predictions (its ``segm_mAP`` counts at most 100 detections per image,
``segm_mAP_50`` up to 1000).

``outfile`` (``tools/test.py --out PRED.npy``) writes the predictions in PanNuke's
``(N, H, W, 6)`` layout, in the fold's order, for ``tools/eval_pq.py``.
"""
from __future__ import annotations

import os.path as osp
from typing import Optional, Sequence

import numpy as np
import torch
from mmdet.evaluation.metrics import CocoMetric
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from segpc.evaluation.pq import CLASSES, PQResult, image_pq, summarize
from segpc.io import SegPCError, atomic_path, load_json
from segpc.structures import decode, encode_many


def instance_maps(masks: np.ndarray, labels: np.ndarray, scores: np.ndarray, num_classes: int) -> np.ndarray:
    """Overlapping instance masks → ``(H, W, num_classes)`` int32 instance maps (PanNuke's layout).

    The higher score keeps a contested pixel; ids are ``1..n`` in decreasing score, unique across
    channels; instances left without pixels are dropped.
    """
    n, h, w = masks.shape
    owner = np.zeros((h, w), np.int32)
    order = np.argsort(-np.asarray(scores), kind="stable")
    for rank in order[::-1]:  # lowest score first: higher scores overwrite
        owner[masks[rank]] = rank + 1
    out = np.zeros((h, w, num_classes), np.int32)
    new_id = np.zeros(n + 1, np.int32)
    new_id[order + 1] = np.arange(1, n + 1)
    fg = owner > 0
    ids = owner[fg] - 1
    out[fg, np.asarray(labels)[ids]] = new_id[ids + 1]
    return out


def maps_from_rles(items: Sequence[tuple[int, dict]], shape: tuple[int, int], num_classes: int) -> np.ndarray:
    """``[(label, rle), ...]`` of non-overlapping instances → ``(H, W, num_classes)`` int32 maps."""
    out = np.zeros((*shape, num_classes), np.int32)
    for k, (label, rle) in enumerate(items, start=1):
        out[..., label][decode(rle) > 0] = k
    return out


def _maps_to_rles(maps: np.ndarray) -> list[tuple[int, dict]]:
    items = []
    for c in range(maps.shape[2]):
        ids = np.unique(maps[..., c])
        ids = ids[ids > 0]
        items += [(c, r) for r in encode_many(maps[..., c][None] == ids[:, None, None])]
    return items


@METRICS.register_module()
class PanNukeMetric(BaseMetric):
    """bPQ, mPQ, per-class PQ (``PQ_<class>``) and COCO mask mAP (``segm_mAP``, ``segm_mAP_50``, ...).

    Args:
        ann_file: COCO file of the split (``tools/convert_pannuke.py``), relative to ``data_root``.
        data_root: prefix of ``ann_file``.
        score_thr: predictions scoring below are not instances for PQ (mAP uses all).
        coco_metric: what mmdet's ``CocoMetric`` evaluates (``'segm'``, ``'bbox'``); ``()`` for PQ only.
        outfile: write the predictions as PanNuke's ``(N, H, W, 6)`` ``.npy`` here.
        format_only: only write ``outfile``, do not score.
    """

    default_prefix: Optional[str] = "pannuke"

    def __init__(self, ann_file: str, data_root: Optional[str] = None, score_thr: float = 0.5,
                 coco_metric: Sequence[str] = ("segm",), outfile: Optional[str] = None,
                 format_only: bool = False, collect_device: str = "cpu", prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ann_file = osp.join(data_root, ann_file) if data_root else ann_file
        self.score_thr = score_thr
        if outfile and not str(outfile).endswith(".npy"):
            raise SegPCError(outfile, "PanNuke predictions are written as a .npy array: give a .npy file name")
        self.outfile = outfile
        self.format_only = format_only
        self.coco = CocoMetric(ann_file=self.ann_file, metric=list(coco_metric)) if coco_metric else None
        self.result: Optional[PQResult] = None  # the last result, exact
        self._gt: Optional[dict] = None

    @property
    def dataset_meta(self) -> Optional[dict]:
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, meta: dict) -> None:
        self._dataset_meta = meta
        if self.coco is not None:
            self.coco.dataset_meta = meta

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        num_classes = len(self.dataset_meta["classes"])
        for sample in data_samples:
            coco = None
            if self.coco is not None:
                self.coco.process(data_batch, [sample])
                coco = self.coco.results.pop()
            pred = sample["pred_instances"]
            scores = pred["scores"].cpu().numpy()
            keep = np.flatnonzero(scores >= self.score_thr)
            h, w = sample["ori_shape"]
            if len(keep):
                idx = torch.as_tensor(keep, device=pred["masks"].device)
                masks = pred["masks"][idx].cpu().numpy().astype(bool)
                maps = instance_maps(masks, pred["labels"].cpu().numpy()[keep], scores[keep], num_classes)
            else:
                maps = np.zeros((h, w, num_classes), np.int32)
            self.results.append({"img_id": sample["img_id"], "coco": coco, "shape": (int(h), int(w)),
                                 "instances": _maps_to_rles(maps)})

    def _ground_truth(self) -> dict:
        """Per image id: shape, tissue, fold index, ``[(label, rle)]``; channel per label."""
        if self._gt is None:
            coco = load_json(self.ann_file)
            try:
                names = {c["id"]: c["name"] for c in coco["categories"]}
                channel = {c["name"]: c.get("pannuke_channel", CLASSES.index(c["name"]) if c["name"] in CLASSES else -1)
                           for c in coco["categories"]}
                classes = list(self.dataset_meta["classes"])
                label = {cid: classes.index(n) for cid, n in names.items() if n in classes}
                images = {img["id"]: {"shape": (img["height"], img["width"]), "tissue": img["tissue"],
                                      "index": img.get("pannuke_index", k), "anns": []}
                          for k, img in enumerate(coco["images"])}
                for ann in coco["annotations"]:
                    if ann["category_id"] in label:
                        images[ann["image_id"]]["anns"].append((label[ann["category_id"]], ann["segmentation"]))
            except (KeyError, TypeError, ValueError) as e:
                raise SegPCError(self.ann_file, f"not a PanNuke COCO file from tools/convert_pannuke.py ({e!r})") from None
            channels = [channel.get(n, -1) for n in classes]
            if min(channels) < 0:
                raise SegPCError(self.ann_file, f"classes {classes} are not all PanNuke categories of this file")
            self._gt = {"images": images, "channels": channels}
        return self._gt

    def compute_metrics(self, results: list) -> dict:
        logger = MMLogger.get_current_instance()
        gt = self._ground_truth()
        classes = list(self.dataset_meta["classes"])
        results = sorted(results, key=lambda r: r["img_id"])
        if self.outfile:
            self._write(results, gt)
            logger.info(f"PanNuke-layout predictions written to {self.outfile}")
        if self.format_only:
            return {}
        k = len(classes)
        bpq, pq, types = [], [], []
        for r in results:
            img = gt["images"][r["img_id"]]
            true = maps_from_rles(img["anns"], img["shape"], k)
            pred = maps_from_rles(r["instances"], img["shape"], k)
            b, p = image_pq(true, pred, range(k))
            bpq.append(b)
            pq.append(p)
            types.append(img["tissue"])
        res = self.result = summarize(np.array(bpq), np.array(pq).reshape(len(bpq), k), types, classes)
        logger.info("PanNuke " + res.format().replace("\n", ", "))
        metrics = {"bPQ": res.bPQ, "mPQ": res.mPQ}
        metrics.update({f"PQ_{n}": v for n, v in res.per_class.items()})
        if self.coco is not None:
            metrics.update(self.coco.compute_metrics([r["coco"] for r in results]))
        return metrics

    def _write(self, results: list, gt: dict) -> None:
        shapes = {img["shape"] for img in gt["images"].values()}
        if len(shapes) != 1:
            raise SegPCError(self.ann_file, f"images of different sizes {sorted(shapes)} cannot share PanNuke's layout")
        (h, w), n = shapes.pop(), 1 + max(img["index"] for img in gt["images"].values())
        most = max((len(r["instances"]) for r in results), default=0)
        dtype = np.uint16 if most < 2 ** 16 else np.int32
        with atomic_path(self.outfile) as tmp:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(n, h, w, 6))
            arr[..., 5] = 1  # background channel, as PanNuke's masks
            for r in results:
                img = gt["images"][r["img_id"]]
                maps = maps_from_rles(r["instances"], (h, w), len(gt["channels"]))
                out = np.zeros((h, w, 6), dtype)
                for label, ch in enumerate(gt["channels"]):
                    out[..., ch] = maps[..., label]
                out[..., 5] = maps.max(axis=2) == 0
                arr[img["index"]] = out
            arr.flush()
            del arr
