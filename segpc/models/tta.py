"""Flip test-time augmentation for instance segmentation: ``SegPCTTAModel``.

mmdet's ``DetTTAModel`` merges boxes only and refuses masks. ``SegPCTTAModel`` runs the detector
on every view that mmcv's ``TestTimeAug`` makes of an image (by default the original and its
horizontal, vertical and diagonal flips, see :func:`apply_tta`), maps every
view's boxes and masks back to the original frame and merges them:

* **Back to the original frame.** mmdet predicts with ``rescale=True``: boxes and masks are at
  ``ori_shape``, still mirrored when the view was flipped. A flip is its own inverse, so the
  mask crop is mirrored and its box reflected in the ``ori_shape`` frame (``x -> W - x``,
  ``y -> H - y``); this is exact, pixel for pixel.
* **Matching.** Per class, the instances of all views are taken by decreasing score (ties: view
  order, then the view's own order). Each joins the cluster whose *anchor* (its first, highest
  scoring member) has the highest mask IoU with it, if that IoU is ``>= match_iou`` and the
  cluster has no member from the same view yet; otherwise it starts a new cluster. A cluster
  thus holds at most one instance per view.
* **Vote.** The merged mask is a pixel-wise majority over the cluster's ``n`` members (the views
  that found the instance, not all views): a pixel is in when ``2 * votes > n``; a tie
  (``2 * votes == n``) goes to the anchor. E.g. found by 4 views: pixels of at least 3 of
  them, or of 2 including the anchor; by 3 views: of at least 2; by 2 views: every pixel the
  anchor has (both, or a tie won by the anchor), so the anchor's mask; by 1 view: its mask.
* **Score**: the mean of the scores over *all* views, a view that did not find the instance
  counting 0: ``sum(member scores) / number of views``. An instance seen by 1 of 4 views at 0.9
  scores 0.225, by all 4 at 0.9 scores 0.9: agreement between views is evidence, and the score
  threshold of the metric (``score_thr``) then drops what only one view believes in.
  **Box**: the mean of the members' boxes (in the original frame); **label**: the cluster's class.
* Clusters found by fewer than ``min_views`` views are dropped (default 1: an instance found
  by a single view is kept). At most ``max_per_img`` instances are kept, by decreasing score.

Masks are handled as box + crop (:class:`segpc.structures.CropMask`): IoUs only for pairs whose boxes
overlap, votes on the union of the members' boxes; the merged masks are pasted into dense
``ori_shape`` frames at the end, which is what the metric expects.
"""
from __future__ import annotations

from copy import deepcopy
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.model import BaseTTAModel
from mmengine.structures import InstanceData

from mmdet.registry import MODELS

from segpc.io import SegPCError
from segpc.structures import CropMask, FLIP_DIRECTIONS, flip_boxes, iou_matrix, paste, vote

DEFAULT_FLIPS = FLIP_DIRECTIONS
FLIP_META_KEYS = ("flip", "flip_direction")
VIEW_FLIP_KEY = "tta_view_flip"  # a view's flip direction (None: the original) while the detector runs


# --------------------------------------------------------------------------- pure merging


def masks_to_crops(masks: np.ndarray) -> list[CropMask]:
    """``(N, H, W)`` bool masks → one crop mask each."""
    return [CropMask.from_dense(m) for m in np.asarray(masks, dtype=bool)]


def merge_views(views: Sequence[dict], size: Sequence[int], match_iou: float = 0.5,
                min_views: int = 1, max_per_img: Optional[int] = None) -> dict:
    """Merge the instances of several views of one image, already in the original frame.

    ``views``: one dict per view with ``bboxes`` ``(N, 4)``, ``scores`` ``(N,)``, ``labels``
    ``(N,)`` and ``masks`` (a list of N :class:`CropMask` of ``size``). Returns the merged
    ``bboxes``, ``scores``, ``labels`` (numpy), ``masks`` (list of CropMask) and ``views``
    (how many views found each merged instance), by decreasing score. See the module docstring
    for the rules.
    """
    size = (int(size[0]), int(size[1]))
    pool = []  # (view, index)
    for v, view in enumerate(views):
        n = len(view["scores"])
        if not (len(view["bboxes"]) == len(view["labels"]) == len(view["masks"]) == n):
            raise ValueError(f"view {v}: bboxes, scores, labels and masks differ in length")
        pool += [(v, i) for i in range(n)]
    scores = np.array([float(views[v]["scores"][i]) for v, i in pool], dtype=np.float64)
    labels = np.array([int(views[v]["labels"][i]) for v, i in pool], dtype=np.int64)
    boxes = np.array([np.asarray(views[v]["bboxes"][i], dtype=np.float64) for v, i in pool]).reshape(-1, 4)
    masks = [views[v]["masks"][i] for v, i in pool]
    for m in masks:
        if m.size != size:
            raise ValueError(f"mask of size {m.size} in a {size} image")

    merged = []  # (score, label, box, mask, n_views)
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        idx = idx[np.argsort(-scores[idx], kind="stable")]  # pool order is view order, then index
        ious = iou_matrix([masks[p] for p in idx], [masks[p] for p in idx])
        clusters: list[list[int]] = []  # positions in idx; the first is the anchor
        for pos in range(len(idx)):
            view = pool[idx[pos]][0]
            best, best_iou = None, -1.0
            for c, members in enumerate(clusters):
                iou = ious[pos, members[0]]
                if iou >= match_iou and iou > best_iou and all(pool[idx[q]][0] != view for q in members):
                    best, best_iou = c, iou
            if best is None:
                clusters.append([pos])
            else:
                clusters[best].append(pos)
        for members in clusters:
            if len(members) < min_views:
                continue
            pts = idx[members]
            mask = vote([masks[p] for p in pts], anchor=0, tie="anchor")
            score = float(np.sum(scores[pts])) / len(views)  # views that missed it count 0
            merged.append((score, int(label), boxes[pts].mean(axis=0), mask, len(members)))
    merged.sort(key=lambda t: -t[0])
    if max_per_img is not None:
        merged = merged[:int(max_per_img)]
    return {
        "scores": np.array([t[0] for t in merged], dtype=np.float64),
        "labels": np.array([t[1] for t in merged], dtype=np.int64),
        "bboxes": np.array([t[2] for t in merged], dtype=np.float64).reshape(-1, 4),
        "masks": [t[3] for t in merged],
        "views": np.array([t[4] for t in merged], dtype=np.int64),
    }


# --------------------------------------------------------------------------- the model


@MODELS.register_module()
class SegPCTTAModel(BaseTTAModel):
    """Merge the flipped views of instance segmentation predictions (boxes, masks, scores).

    Args:
        module: the detector (config or module), as for any ``BaseTTAModel``.
        match_iou: minimum mask IoU (same class) for instances of two views to be one.
        min_views: drop merged instances found by fewer views (1 keeps them all).
        max_per_img: keep at most this many merged instances per image (None: all).
        data_preprocessor: see ``BaseTTAModel``.

    The views must carry ``flip`` and ``flip_direction`` in their metainfo (``PackDetInputs``
    ``meta_keys``), and the detector must predict at ``ori_shape`` (mmdet's ``rescale=True``).
    """

    def __init__(self, module, match_iou: float = 0.5, min_views: int = 1,
                 max_per_img: Optional[int] = 100, data_preprocessor=None):
        super().__init__(module=module, data_preprocessor=data_preprocessor)
        if not 0.0 < float(match_iou) <= 1.0:
            raise ValueError(f"match_iou must be in (0, 1], got {match_iou}")
        if int(min_views) < 1:
            raise ValueError(f"min_views must be >= 1, got {min_views}")
        self.match_iou = float(match_iou)
        self.min_views = int(min_views)
        self.max_per_img = None if max_per_img is None else int(max_per_img)

    def test_step(self, data):
        """mmengine's: every view through the detector, then :meth:`merge_preds`.

        While the detector predicts, each view's ``flip``/``flip_direction`` are moved to
        ``tta_view_flip``: mmdet's cascade mask heads (Cascade R-CNN, HTC) read ``flip`` to
        un-flip their stages' masks themselves (mmdet 2's TTA convention, which fails on mmdet
        3's tensors); here the final masks and boxes are un-flipped once, in :meth:`merge_preds`.
        """
        views = data["data_samples"] if isinstance(data, dict) else data[-1]
        for view in views:
            for s in view if isinstance(view, (list, tuple)) else [view]:
                direction = self._view_flip(s.metainfo)
                s.set_metainfo({VIEW_FLIP_KEY: direction, "flip": False, "flip_direction": None})
        return super().test_step(data)

    def merge_preds(self, data_samples_list):
        return [self._merge_single_sample(samples) for samples in data_samples_list]

    @staticmethod
    def _view_flip(meta) -> Optional[str]:
        if VIEW_FLIP_KEY in meta:
            return meta[VIEW_FLIP_KEY]
        if any(k not in meta for k in FLIP_META_KEYS):
            raise SegPCError(None, "TTA views lack 'flip'/'flip_direction': add them to the "
                                   "meta_keys of PackDetInputs in tta_pipeline")
        return meta["flip_direction"] if meta["flip"] else None

    def _merge_single_sample(self, samples):
        h, w = (int(v) for v in samples[0].metainfo["ori_shape"][:2])
        views, device = [], None
        directions = [self._view_flip(s.metainfo) for s in samples]
        for s, direction in zip(samples, directions):
            pred = s.pred_instances
            masks = pred.get("masks")
            if masks is None:
                raise SegPCError(None, "SegPCTTAModel needs instance masks: the detector predicted none")
            device = masks.device
            masks = masks.detach().cpu().numpy().astype(bool, copy=False)
            if masks.shape[1:] != (h, w):
                raise SegPCError(None, f"predicted masks are {masks.shape[1]}x{masks.shape[2]}, not at "
                                       f"ori_shape {h}x{w}: the detector must predict with rescale=True")
            views.append({
                "bboxes": flip_boxes(pred.bboxes.detach().cpu().numpy(), (h, w), direction),
                "scores": pred.scores.detach().cpu().numpy(),
                "labels": pred.labels.detach().cpu().numpy(),
                "masks": [m.flip(direction) for m in masks_to_crops(masks)],
            })
        merged = merge_views(views, (h, w), self.match_iou, self.min_views, self.max_per_img)
        out = samples[directions.index(None)] if None in directions else samples[0]
        result = InstanceData()
        result.bboxes = torch.as_tensor(merged["bboxes"], dtype=torch.float32, device=device)
        result.scores = torch.as_tensor(merged["scores"], dtype=torch.float32, device=device)
        result.labels = torch.as_tensor(merged["labels"], dtype=torch.long, device=device)
        result.masks = torch.as_tensor(paste(merged["masks"], (h, w)), device=device)
        out.pred_instances = result
        return out


# --------------------------------------------------------------------------- configs


def tta_pipeline_from(test_pipeline: Sequence[dict], flips: Sequence[str] = DEFAULT_FLIPS) -> list:
    """The test pipeline with its final ``PackDetInputs`` replaced by ``TestTimeAug`` over the
    original image and ``flips`` (``RandomFlip(prob=1., direction=d)`` per flip), packed with
    ``flip``/``flip_direction`` in the metainfo — what mmdet's tools/test.py derives for
    ``--tta`` when a config has no ``tta_pipeline``, with segpc's flips."""
    pipeline = [deepcopy(dict(t)) for t in test_pipeline]
    if not pipeline or pipeline[-1].get("type") != "PackDetInputs":
        raise SegPCError(None, "cannot derive the TTA pipeline: the test pipeline does not end with PackDetInputs")
    bad = [f for f in flips if f not in DEFAULT_FLIPS]
    if bad or len(set(flips)) != len(flips):
        raise SegPCError(None, f"tta_flips must be distinct values of {list(DEFAULT_FLIPS)}, got {list(flips)}")
    pack = pipeline.pop()
    keys = tuple(pack.get("meta_keys", ("img_id", "img_path", "ori_shape", "img_shape", "scale_factor")))
    pack["meta_keys"] = keys + tuple(k for k in FLIP_META_KEYS if k not in keys)
    views = [dict(type="RandomFlip", prob=0.)] + [dict(type="RandomFlip", prob=1., direction=d) for d in flips]
    return pipeline + [dict(type="TestTimeAug", transforms=[views, [pack]])]


def tested_dataset_cfg(cfg) -> dict:
    """The dataset config of ``test_dataloader`` (inside any dataset wrappers)."""
    ds = cfg.test_dataloader.dataset
    while "dataset" in ds:
        ds = ds["dataset"]
    return ds


def apply_tta(cfg) -> None:
    """Turn a test config into its TTA version, in place (what ``--tta`` does).

    The model becomes ``tta_model`` (default ``dict(type='SegPCTTAModel')``) wrapping the
    config's model; the test pipeline becomes ``tta_pipeline`` if the config has one (as
    mmdet's tools/test.py does), else :func:`tta_pipeline_from` the test pipeline and
    ``tta_flips`` (default: all three flips; ``[]``: the original image only).
    """
    tta_model = cfg.get("tta_model") or dict(type="SegPCTTAModel")
    if "module" in tta_model:
        raise SegPCError(getattr(cfg, "filename", None) or None,
                         "tta_model must not set 'module': --tta wraps the config's own model in it")
    ds = tested_dataset_cfg(cfg)
    flips = cfg.get("tta_flips")
    pipeline = cfg.get("tta_pipeline") or tta_pipeline_from(ds["pipeline"], DEFAULT_FLIPS if flips is None else flips)
    cfg.model = ConfigDict(**tta_model, module=cfg.model)
    ds["pipeline"] = pipeline
