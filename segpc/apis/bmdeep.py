"""The bmdeep two-stage predictor: what ``tools/predict_bmdeep.py`` runs.

A *two-stage spec* (``configs/bmdeep/two_stage.py``) names the nucleus U-Net config, one
cytoplasm config per crop scale with the scale's ratio range, the thresholds and the
aggregation; checkpoints are given separately. For every image:

1. the nucleus network's probability at its ``input_size`` (the image resized bilinearly) →
   nucleus instances (:func:`segpc.bmdeep.postprocess.nucleus_instances`);
2. for every scale and nucleus, the 4-channel crop (:mod:`segpc.datasets.crops`) → the
   cytoplasm network's probability → the cell region (threshold, opening, holes, largest
   component), mapped back to the image and united with the nucleus; its score is the mean
   probability over the region;
3. the scales aggregated (``'filter'`` or ``'select'``, :func:`segpc.bmdeep.postprocess.aggregate`).

With ``tta``, the image and its horizontal, vertical and diagonal flips are each predicted this
way and merged like the instance models' flip TTA (:func:`predict_image_tta`).

The output is the project's prediction dump (each cell also records its ``scale``) and the
same folder as ``tools/predict.py`` writes (:func:`segpc.apis.predict.write_outputs`), scored by
``tools/eval_miou.py`` and accepted by ``tools/ensemble.py`` like any other. Optionally every
scale's cell of every nucleus is saved too (a *candidates* dump), so that each scale alone and
both aggregations are scored from one run (:func:`compare_aggregations`, ``tools/bmdeep_scores.py``).
"""
from __future__ import annotations

import os.path as osp
from dataclasses import dataclass, field
from typing import Mapping, Optional

import numpy as np

from segpc.bmdeep.postprocess import (AGGREGATES, candidate_cells, cytoplasm_region, image_cells,
                                      nucleus_instances, reaggregate, with_nucleus)
from segpc.datasets.crops import INPUT_SIZE, equalize, fit_to_input, from_input, make_crop, to_input
from segpc.io import SegPCError, read_image
from segpc.structures import (CELL_LABEL, FLIP_DIRECTIONS, NUCLEUS_LABEL, CropMask, assemble_cells, check_dump_path,
                              flip_image, load_dump, make_dump, save_dump)


@dataclass
class Stage:
    """A loaded network: the mmseg model (eval mode) and its input size ``(H, W)``."""

    model: object
    input_size: tuple[int, int]


@dataclass
class TwoStage:
    """The loaded predictor (:func:`load_two_stage`)."""

    nucleus: Stage
    cytoplasm: dict[float, Stage]
    ranges: dict[float, tuple[float, float]]
    nucleus_threshold: float = 0.5
    min_area: int = 80
    cytoplasm_threshold: float = 0.48
    kernel: int = 3
    aggregate: str = "filter"
    select_thresholds: Optional[dict[float, float]] = None  # default: the ranges' upper bounds
    meta: dict = field(default_factory=dict)


def _scale_key(s) -> float:
    return round(float(s), 6)


def load_stage(config: str, checkpoint: str, device: str, default_size: Optional[int] = None) -> Stage:
    """An mmseg model from ``config`` + ``checkpoint``; its input size is the config's
    ``input_size`` (H, W) or ``crop_size``."""
    from mmseg.apis import init_model

    from segpc.apis.config import load_config
    from segpc.engine.checkpoint import check_checkpoint

    check_checkpoint(checkpoint)
    cfg = load_config(config)
    size = cfg.get("input_size") or cfg.get("crop_size") or default_size
    if size is None:
        raise SegPCError(config, "config has no input_size or crop_size")
    size = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    model = init_model(cfg, checkpoint, device=device)
    return Stage(model.eval(), size)


def load_two_stage(spec: str, nucleus_checkpoint: str, cytoplasm_checkpoints: Mapping[float, str],
                   aggregate: Optional[str] = None, device: Optional[str] = None) -> TwoStage:
    """Load a two-stage spec with its checkpoints (``{scale: checkpoint}``, one per spec scale)."""
    import torch
    from mmengine.config import Config

    if not osp.isfile(spec):
        raise SegPCError(spec, "two-stage spec not found")
    s = Config.fromfile(spec)
    here = osp.dirname(osp.abspath(spec))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    aggregate = aggregate or s.get("aggregate", "filter")
    if aggregate not in AGGREGATES:
        raise SegPCError(spec, f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    ckpts = {_scale_key(k): v for k, v in cytoplasm_checkpoints.items()}
    scales = [_scale_key(c["scale"]) for c in s.cytoplasm]
    missing, extra = sorted(set(scales) - set(ckpts)), sorted(set(ckpts) - set(scales))
    if missing or extra:
        raise SegPCError(spec, f"cytoplasm checkpoints must match the spec's scales {scales}: "
                               f"missing {missing}, unknown {extra}")
    nuc = s.nucleus
    cyto = {}
    for c in s.cytoplasm:
        cyto[_scale_key(c["scale"])] = load_stage(osp.join(here, c["config"]), ckpts[_scale_key(c["scale"])],
                                                  device, INPUT_SIZE)
    return TwoStage(
        nucleus=load_stage(osp.join(here, nuc["config"]), nucleus_checkpoint, device),
        cytoplasm=cyto,
        ranges={_scale_key(c["scale"]): tuple(c.get("range", (-np.inf, np.inf))) for c in s.cytoplasm},
        nucleus_threshold=float(nuc.get("threshold", 0.5)), min_area=int(nuc.get("min_area", 80)),
        cytoplasm_threshold=float(s.get("cytoplasm_threshold", 0.48)), kernel=int(s.get("kernel", 3)),
        aggregate=aggregate, meta=dict(spec=spec),
        select_thresholds={_scale_key(c["scale"]): float(c["select_threshold"])
                           for c in s.cytoplasm if "select_threshold" in c} or None)


def probabilities(stage: Stage, inputs: list[np.ndarray], batch_size: int = 16) -> list[np.ndarray]:
    """Sigmoid probability maps (input size) of ``(H, W, C)`` uint8 inputs at the stage's size."""
    import torch

    model = stage.model
    out = []
    h, w = stage.input_size
    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), padding_size=[0, 0, 0, 0])
    with torch.no_grad():
        for i in range(0, len(inputs), batch_size):
            batch = [torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))) for x in inputs[i:i + batch_size]]
            data = model.data_preprocessor({"inputs": batch}, False)
            logits = model.inference(data["inputs"], [meta] * len(batch))
            out.extend(torch.sigmoid(logits[:, 0]).cpu().numpy())
    return out


def predict_candidates(p: TwoStage, image: np.ndarray) -> tuple[list[CropMask], list[dict]]:
    """The nuclei of one BGR image and, per nucleus, ``{scale: (cell, score)}``."""
    import cv2

    frame = image.shape[:2]
    h, w = p.nucleus.input_size
    (prob,) = probabilities(p.nucleus, [cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)])
    nuclei = nucleus_instances(prob, frame, threshold=p.nucleus_threshold, kernel=p.kernel, min_area=p.min_area)
    eq = equalize(image)
    candidates: list[dict[float, tuple[CropMask, float]]] = [{} for _ in nuclei]
    for scale, stage in p.cytoplasm.items():
        crops = []
        for nucleus in nuclei:
            crop, window = make_crop(eq, nucleus, scale)
            fit = fit_to_input(window.shape, stage.input_size[0])
            crops.append((to_input(crop, fit), fit, window))
        probs = probabilities(stage, [c[0] for c in crops])
        for i, ((_, fit, window), cprob) in enumerate(zip(crops, probs)):
            region = cytoplasm_region(cprob, p.cytoplasm_threshold, p.kernel)
            score = float(cprob[region].mean()) if region.any() else 0.0
            candidates[i][scale] = (with_nucleus(from_input(region, fit, window), nuclei[i]), score)
    return nuclei, candidates


def predict_image(p: TwoStage, image: np.ndarray) -> list[dict]:
    """The dump cells of one BGR image."""
    return image_cells(*predict_candidates(p, image), p.aggregate, p.ranges, p.select_thresholds)


def predict_image_tta(p: TwoStage, image: np.ndarray, flips=FLIP_DIRECTIONS, match_iou: float = 0.5) -> list[dict]:
    """Flip TTA of one BGR image: the image and each of its ``flips`` predicted by
    :func:`predict_image`, every view's cells and nuclei mirrored back and merged per class as
    the instance models' TTA merges (:func:`segpc.models.tta.merge_views`: matched by mask IoU
    >= ``match_iou``, pixels voted, the score the mean over *all* views with 0 for a view that
    missed it); each merged cell gets the merged nucleus it overlaps most
    (:func:`segpc.structures.assemble_cells`). Cells lose their ``scale``."""
    from segpc.models.tta import merge_views

    frame = image.shape[:2]
    views = []
    for direction in (None, *flips):
        masks, labels, scores = [], [], []
        for c in predict_image(p, flip_image(image, direction)):
            for key, label in (("cell", CELL_LABEL), ("nucleus", NUCLEUS_LABEL)):
                if c.get(key) is not None:
                    masks.append(CropMask.from_rle(c[key], size=frame).flip(direction))
                    labels.append(label)
                    scores.append(c["score"])
        views.append({"bboxes": [m.box for m in masks], "scores": scores, "labels": labels, "masks": masks})
    merged = merge_views(views, frame, match_iou)
    return assemble_cells([m.to_rle() for m in merged["masks"]], merged["labels"], merged["scores"])


def predict_bmdeep(spec: str, nucleus_checkpoint: str, cytoplasm_checkpoints: Mapping[float, str],
                   images_dir: str, out_dir: str, aggregate: Optional[str] = None,
                   device: Optional[str] = None, progress: bool = True, overwrite: bool = False,
                   candidates: Optional[str] = None, tta: bool = False) -> dict:
    """Predict every image of ``images_dir`` with the two stages; write ``out_dir`` as
    ``tools/predict.py`` does; returns the dump. ``candidates``: also save every scale's cell of
    every nucleus there (a dump for :func:`compare_aggregations`). ``tta``: flip TTA
    (:func:`predict_image_tta`; not with ``candidates``)."""
    from tqdm import tqdm

    from segpc.apis.predict import OUTPUT_FILES, list_images, write_outputs
    from segpc.io import check_output_dir

    if tta and candidates is not None:
        raise SegPCError(candidates, "candidates are per scale of one view: not with flip TTA")
    images = list_images(images_dir)
    check_output_dir(out_dir, OUTPUT_FILES, overwrite)
    if candidates is not None:
        check_dump_path(candidates)
    predictor = load_two_stage(spec, nucleus_checkpoint, cytoplasm_checkpoints, aggregate, device)
    ids = [int(p.stem) for p in images] if all(p.stem.isdigit() for p in images) else list(range(len(images)))
    entries, all_cells = [], []
    for i, path in enumerate(tqdm(images, desc="bmdeep", unit="img", disable=not progress)):
        image = read_image(path)
        entry = {"name": path.stem, "img_id": ids[i], "height": image.shape[0], "width": image.shape[1]}
        if tta:
            entries.append(dict(entry, cells=predict_image_tta(predictor, image)))
            continue
        nuclei, cand = predict_candidates(predictor, image)
        entries.append(dict(entry, cells=image_cells(nuclei, cand, predictor.aggregate, predictor.ranges,
                                                     predictor.select_thresholds)))
        all_cells.append(dict(entry, cells=candidate_cells(nuclei, cand)))
    if candidates is not None:
        cdump = make_dump(all_cells)
        cdump["bmdeep"] = {"ranges": {str(k): list(v) for k, v in predictor.ranges.items()},
                           "select_thresholds": {str(k): v for k, v in (predictor.select_thresholds or {}).items()}}
        save_dump(cdump, candidates)
    dump = make_dump(entries)
    dump["bmdeep"] = {"aggregate": predictor.aggregate, "scales": sorted(predictor.cytoplasm),
                      "tta": list(FLIP_DIRECTIONS) if tta else []}
    write_outputs(dump, {p.stem: p for p in images}, out_dir, overwrite)
    return dump


def compare_aggregations(gt_dir: str, candidates: str) -> list[tuple[str, object]]:
    """Score a candidates file (``predict_bmdeep(candidates=...)``) per scale, aggregated by
    ``filter`` and by ``select`` (with the ranges and thresholds it was predicted with):
    ``[(label, MIoUResult), ...]``."""
    import tempfile

    from segpc.evaluation.miou import evaluate_dirs

    dump = load_dump(candidates)
    meta = dump.get("bmdeep") or {}
    ranges = {float(k): tuple(v) for k, v in meta.get("ranges", {}).items()} or None
    thresholds = {float(k): float(v) for k, v in meta.get("select_thresholds", {}).items()} or None
    try:
        scales = sorted({float(c["scale"]) for img in dump["images"] for c in img["cells"]})
        variants = [(f"scale {s:g}", reaggregate(dump, None, scales=[s])) for s in scales]
        variants += [(m, reaggregate(dump, m, ranges, thresholds)) for m in AGGREGATES]
    except (KeyError, ValueError) as e:
        raise SegPCError(candidates, f"not a bmdeep candidates file ({e})") from None
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, d in variants:
            path = osp.join(tmp, "d.json")
            save_dump(d, path)
            out.append((label, evaluate_dirs(gt_dir, path)))
    return out
