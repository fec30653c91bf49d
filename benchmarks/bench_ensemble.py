"""Benchmark the dump ensemble (tools/ensemble.py): ours vs the dense reference, same input.

    python benchmarks/bench_ensemble.py [--data DIR] [--set train_fullres] [--models 7] [--repeat 5]

Seven prediction dumps (``--models``) over real-size images are built from the real SegPC
ground truth (``<set>/y``: one mask per cell, 40 nucleus / 20 cytoplasm), looked up at --data,
else $SEGPC_REAL_DATA, else ``<repo>/../shared/data/segpc_real``; without them, synthetic
2040x1536 images (segpc.datasets.synthetic) stand in. Every model sees every ground-truth
cell perturbed its own way (cell and nucleus dilated or eroded by a few pixels and shifted;
5 % of the cells missed, 10 % duplicated with a larger shift, as a false positive would be),
scores drawn at random. Then, after one warm-up run:

  (a) ours:      segpc.ensemble.ensemble_dumps (what tools/ensemble.py runs): IoUs on RLE,
                 votes on the crops of the voters' boxes;
  (b) reference: segpc.testing.ensemble.dense_reference_ensemble_dumps: every mask decoded to the full
                 frame, every pair compared and every vote counted on whole frames.

Both are checked to give identical dumps (exit 1 if not); best and median times and the
ratio reference / ours are printed.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from segpc.ensemble import ensemble_dumps
from segpc.evaluation.miou import find_gt_dir
from segpc.io import MASK_EXTS, natural_key, read_mask, split_mask_stem
from segpc.structures import CropMask, make_dump, mask_box
from segpc.testing.ensemble import dense_reference_ensemble_dumps

REPO = Path(__file__).resolve().parents[1]
SYNTHETIC_SIZE = (1536, 2040)  # (H, W): SegPC's full resolution


def data_root(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("SEGPC_REAL_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data" / "segpc_real"


def real_masks(split: Path) -> dict[str, list[np.ndarray]]:
    """Image name → its ground-truth SegPC masks (uint8 0/20/40)."""
    folder = find_gt_dir(split)
    out: dict[str, list[np.ndarray]] = {}
    for p in sorted((p for p in folder.iterdir() if p.suffix.lower() in MASK_EXTS),
                    key=lambda p: natural_key(p.name)):
        out.setdefault(split_mask_stem(p.stem)[0], []).append(read_mask(p))
    return out


def synthetic_masks(num: int = 14, seed: int = 0) -> dict[str, list[np.ndarray]]:
    from segpc.datasets.synthetic import generate_sample, image_rng

    out = {}
    for i in range(num):
        _, masks = generate_sample(image_rng(seed, i), SYNTHETIC_SIZE, max_cells=9, empty_prob=0.0)
        out[str(i + 1)] = masks
    return out


def _perturb_crop(crop: np.ndarray, k: int, op: int, dy: int, dx: int) -> np.ndarray:
    if op == 1:
        crop = cv2.dilate(crop, np.ones((k, k), np.uint8))
    elif op == 2:
        crop = cv2.erode(crop, np.ones((k, k), np.uint8))
    return np.roll(crop, (dy, dx), axis=(0, 1))


def perturbed_cell(rng: np.random.Generator, mask: np.ndarray, shift: int) -> dict | None:
    """A prediction of one ground-truth mask: cell and nucleus dilated/eroded and shifted."""
    h, w = mask.shape
    bx0, by0, bx1, by1 = mask_box(mask)
    pad = 12 + shift
    y0, x0, y1, x1 = max(0, by0 - pad), max(0, bx0 - pad), min(h, by1 + pad), min(w, bx1 + pad)
    sub = mask[y0:y1, x0:x1]
    k, op = int(rng.integers(2, 8)), int(rng.integers(0, 3))
    dy, dx = (int(v) for v in rng.integers(-shift, shift + 1, 2))
    cell = _perturb_crop((sub > 0).astype(np.uint8), k, op, dy, dx) > 0
    nuc = _perturb_crop((sub == 40).astype(np.uint8), max(2, k - 2), op, dy, dx) > 0
    c = CropMask(y0, x0, cell, (h, w))
    if c.area == 0:
        return None
    n = CropMask(y0, x0, nuc, (h, w)) & c
    return {"score": float(rng.uniform(0.3, 1.0)), "bbox": list(c.box), "cell": c.to_rle(),
            "nucleus": n.to_rle() if n.area else None}


def build_dumps(masks: dict[str, list[np.ndarray]], models: int, seed: int = 0) -> list[dict]:
    dumps = []
    for m in range(models):
        rng = np.random.default_rng([seed, m])
        images = []
        for i, (name, gts) in enumerate(masks.items()):
            h, w = gts[0].shape if gts else SYNTHETIC_SIZE
            cells = []
            for g in gts:
                if rng.random() < 0.05:  # missed
                    continue
                c = perturbed_cell(rng, g, 4)
                if c:
                    cells.append(c)
                if rng.random() < 0.10:  # a false positive near a real cell
                    c = perturbed_cell(rng, g, 40)
                    if c:
                        cells.append(c)
            cells.sort(key=lambda c: -c["score"])
            images.append({"name": name, "img_id": i, "height": h, "width": w, "cells": cells})
        dumps.append(make_dump(images))
    return dumps


def timed(fn) -> tuple[object, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="real SegPC samples (default $SEGPC_REAL_DATA or ../shared/data/segpc_real)")
    ap.add_argument("--set", default="train_fullres", help="set inside --data (default train_fullres)")
    ap.add_argument("--models", type=int, default=7, help="number of dumps, the reference included (default 7)")
    ap.add_argument("--min-iou", type=float, default=0.85)
    ap.add_argument("--quorum", type=int, default=None)
    ap.add_argument("--tie", choices=("out", "reference"), default="out")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of ours (default 5)")
    ap.add_argument("--ref-repeat", type=int, default=2, help="timed runs of the dense reference (default 2)")
    args = ap.parse_args(argv)

    split = data_root(args.data) / args.set
    if split.is_dir():
        masks, source = real_masks(split), f"real: {split}"
    else:
        masks, source = synthetic_masks(), "synthetic (real data not found)"
    dumps = build_dumps(masks, args.models)
    n_gt = sum(len(v) for v in masks.values())
    n_cells = [sum(len(i["cells"]) for i in d["images"]) for d in dumps]
    h, w = dumps[0]["images"][0]["height"], dumps[0]["images"][0]["width"]
    print(f"data: {source}; {len(masks)} images {w}x{h}, {n_gt} GT cells; {args.models} dumps of "
          f"{min(n_cells)}..{max(n_cells)} cells; min_iou {args.min_iou}, quorum {args.quorum or 'all'}, "
          f"tie {args.tie}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python "
          f"{platform.python_version()}, numpy {np.__version__}, opencv {cv2.__version__}")

    def run_ours():
        return ensemble_dumps(dumps, args.min_iou, args.quorum, tie=args.tie)

    def run_reference():
        return dense_reference_ensemble_dumps(dumps, args.min_iou, args.quorum, tie=args.tie)

    ours, _ = timed(run_ours)  # warm-up
    ref, t = timed(run_reference)
    identical = ours == ref
    s = ours["ensemble"]
    print(f"ensemble: {s['voted']} voted, {s['kept']} kept, {s['added']} added, {s['duplicates']} duplicates "
          f"dropped; ours and reference identical: {identical}")
    times = {"ours": [], "reference": [t]}
    for _ in range(args.repeat):
        times["ours"].append(timed(run_ours)[1])
    for _ in range(max(0, args.ref_repeat - 1)):
        times["reference"].append(timed(run_reference)[1])
    print(f"\n{'':28s} {'best s':>8s} {'median s':>9s}  runs")
    for k, label in (("ours", "(a) ours (RLE + crops)"), ("reference", "(b) dense reference")):
        print(f"{label:28s} {min(times[k]):8.3f} {statistics.median(times[k]):9.3f}  {len(times[k])}")
    best = min(times["reference"]) / min(times["ours"])
    med = statistics.median(times["reference"]) / statistics.median(times["ours"])
    print(f"\nreference / ours: best {best:.1f}x  median {med:.1f}x  (target >= 10x)")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
