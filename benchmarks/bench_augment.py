"""Benchmark offline augmentation (tools/augment.py) on real SegPC images against plain imgaug.

    python benchmarks/bench_augment.py [--data DIR] [--num 4] [--workers 1 2] [--full-512]

The real SegPC samples are looked up at --data, else $SEGPC_REAL_DATA, else
``<repo>/../shared/data/segpc_real``; both sets are converted to COCO with
segpc.datasets.convert in a temporary directory. On ``train_fullres`` (14 images, 2040x1536) it
times --num augmented copies per image (originals left out) with the default policy
(configs/augment/segpc_xlab.yaml):

  (a) plain:  a sequential imgaug loop, what one writes without segpc: per image one
              SegmentationMapsOnImage with a channel per cell (0 background, 1 cytoplasm,
              2 nucleus), imgaug's own PiecewiseAffine, then cv2.imwrite of the JPEG and
              pycocotools.mask.encode of every cell, nucleus and cytoplasm, one JSON at the end;
  (b) ours:   segpc.augment.augment_dataset with 1 and 2 workers (everything included: worker
              start-up, atomic writes, per-image records, the final JSON);
  (c) ours with imgaug's stock PiecewiseAffine, 1 worker (what the packing, extraction and
              I/O gain on their own).

Every copy of every run draws the same augmentation (seed per (seed, image id, copy)), so the
runs do the same work. Before that it times each augmenter of the policy alone on a
2040x1536 image with its cells (stock and fast PiecewiseAffine) to show the slowest.
With --full-512 it also makes 50 copies of the 298 ``train_512`` images with the largest
--workers and projects the full-resolution time from (b).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from segpc.augment import Options, augment_dataset, load_policy  # noqa: I001  (numpy aliases first)
from segpc.augment.cells import pack_cells
from segpc.augment.pipeline import copy_entropy, load_sources, output_name
from segpc.datasets.convert import write_coco
from segpc.structures import decode, encode

import imgaug.augmenters as iaa  # noqa: E402
from imgaug.augmentables.segmaps import SegmentationMapsOnImage  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
POLICY = REPO / "configs" / "augment" / "segpc_xlab.yaml"


def data_root(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("SEGPC_REAL_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data" / "segpc_real"


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


# --------------------------------------------------------------------------- (a) plain imgaug


def plain_imgaug(ann_json: Path, img_dir: Path, out_dir: Path, num: int, seed: int) -> float:
    """The sequential loop without segpc (see module doc); returns seconds."""
    t0 = time.perf_counter()
    policy = load_policy(POLICY, fast=False)
    _, sources = load_sources(ann_json, img_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for src in sources:
        rgb = cv2.cvtColor(cv2.imread(src.path), cv2.COLOR_BGR2RGB)
        chans = []
        for _, _, cell, nucleus, cyto in src.cells:
            m = np.zeros((src.height, src.width), np.int32)
            if cyto is not None:
                m[decode(cyto) > 0] = 1
            if nucleus is not None:
                m[decode(nucleus) > 0] = 2
            if cell is not None:
                m[(decode(cell) > 0) & (m == 0)] = 1
            chans.append(m)
        seg = SegmentationMapsOnImage(np.stack(chans, -1), shape=rgb.shape)
        for k in range(1, num + 1):
            policy.seed_(copy_entropy(seed, src.image_id, k))
            img, seg_aug = policy(image=rgb, segmentation_maps=seg)
            name = output_name(src.file_name, k, ".jpg")
            cv2.imwrite(str(out_dir / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            images.append({"id": len(images) + 1, "file_name": name, "height": img.shape[0], "width": img.shape[1]})
            arr = seg_aug.arr
            for c in range(arr.shape[2]):
                for cat, m in ((1, arr[..., c] == 2), (2, arr[..., c] == 1), (3, arr[..., c] > 0)):
                    if m.any():
                        rle = encode(m.astype(np.uint8))
                        anns.append({"id": len(anns) + 1, "image_id": len(images), "category_id": cat,
                                     "segmentation": rle, "iscrowd": 0})
    (out_dir / "annotations.json").write_text(json.dumps({"images": images, "annotations": anns}))
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- per augmenter


def per_augmenter(ann_json: Path, img_dir: Path, draws: int) -> list[tuple[str, float, float]]:
    """Median ms per call of each augmenter of the policy (image + packed cells), stock and fast
    (interleaved, same draws)."""
    _, sources = load_sources(ann_json, img_dir)
    src = sources[0]
    rgb = cv2.cvtColor(cv2.imread(src.path), cv2.COLOR_BGR2RGB)
    cells = [(ci, decode(cell), decode(nuc) if nuc is not None else None)
             for ci, _, cell, nuc, _ in src.cells]
    packed = pack_cells(cells, src.height, src.width)
    stock = list(policy_items(load_policy(POLICY, fast=False)))
    fast = list(policy_items(load_policy(POLICY, fast=True)))
    rows = []
    for a, b in zip(stock, fast):
        times = {id(a): [], id(b): []}
        for s in range(draws):
            for aug in (a, b):
                aug.seed_(s)
                seg = SegmentationMapsOnImage(packed.arr, shape=rgb.shape)
                t = time.perf_counter()
                aug(image=rgb, segmentation_maps=seg)
                times[id(aug)].append(time.perf_counter() - t)
        rows.append((f"{type(a).__name__}{describe(a)}", 1000 * float(np.median(times[id(a)])),
                     1000 * float(np.median(times[id(b)]))))
    return rows


def policy_items(aug):
    """The augmenters a policy chooses among (containers Sequential/SomeOf/OneOf/Sometimes opened)."""
    if isinstance(aug, (iaa.Sequential, iaa.SomeOf, iaa.Sometimes)):
        for lst in aug.get_children_lists():
            for child in lst:
                yield from policy_items(child)
    else:
        yield aug


def describe(aug) -> str:
    if type(aug) is iaa.Affine:
        return "(scale)" if aug.scale.__class__.__name__ != "Deterministic" else "(rotate)"
    return ""


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="real SegPC samples (default $SEGPC_REAL_DATA or ../shared/data/segpc_real)")
    p.add_argument("--num", type=int, default=4, help="copies per full-resolution image (default 4)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts for (b) (default 1 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--draws", type=int, default=5, help="draws per augmenter in the per-augmenter table")
    p.add_argument("--no-plain", action="store_true", help="skip (a) and (c), the slow ones")
    p.add_argument("--full-512", action="store_true", help="also time 50 copies of the 298 train_512 images")
    p.add_argument("--keep", help="write outputs here instead of a temporary directory (kept)")
    args = p.parse_args(argv)

    root = data_root(args.data)
    full, small = root / "train_fullres", root / "train_512"
    if not (full / "x").is_dir():
        print(f"error: real SegPC data not found at {root} (use --data or $SEGPC_REAL_DATA)", file=sys.stderr)
        return 2
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_augment."))
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}, OpenCV {cv2.__version__}, numpy {np.__version__}")
    print(f"data: {root}; work: {tmp}; {load()}")
    try:
        full_json = tmp / "train_fullres.json"
        write_coco(full, full_json, progress=False)
        _, sources = load_sources(full_json, full / "x")
        n_img = len(sources) * args.num
        print(f"\ntrain_fullres: {len(sources)} images, {sum(len(s.cells) for s in sources)} cells, "
              f"{args.num} copies each = {n_img} augmented images")

        print(f"\nper augmenter, 2040x1536 image + its {len(sources[0].cells)} cells, median of {args.draws} draws:")
        rows = per_augmenter(full_json, full / "x", args.draws)
        slowest = max(rows, key=lambda r: r[1])
        print("| augmenter | stock ms | segpc ms |\n|---|---:|---:|")
        for label, stock, fast in sorted(rows, key=lambda r: -r[1]):
            print(f"| {label} | {stock:.0f} | {fast:.0f} |")
        print(f"slowest: {slowest[0]} {slowest[1]:.0f} ms -> {slowest[2]:.0f} ms with FastPiecewiseAffine "
              f"({slowest[1] / max(slowest[2], 1e-9):.1f}x)")

        results = {}
        if not args.no_plain:
            print(f"\n(a) plain imgaug loop ... ({load()})", flush=True)
            results["plain"] = plain_imgaug(full_json, full / "x", tmp / "plain", args.num, args.seed)
        for w in args.workers:
            print(f"(b) ours, {w} worker(s) ... ({load()})", flush=True)
            out = tmp / f"ours_w{w}"
            shutil.rmtree(out, ignore_errors=True)
            st = augment_dataset(full_json, full / "x", out, POLICY,
                                 Options(num=args.num, seed=args.seed, originals=False),
                                 workers=w, progress=False)
            results[f"ours_w{w}"] = st["seconds"]
        if not args.no_plain:
            print(f"(c) ours, stock PiecewiseAffine, 1 worker ... ({load()})", flush=True)
            out = tmp / "ours_stock"
            shutil.rmtree(out, ignore_errors=True)
            results["ours_stock_w1"] = augment_dataset(
                full_json, full / "x", out, POLICY, Options(num=args.num, seed=args.seed, originals=False),
                workers=1, progress=False, fast=False)["seconds"]
        print(f"({load()})\n")
        print("| run | seconds | images/s | vs plain |\n|---|---:|---:|---:|")
        base = results.get("plain")
        for key, sec in results.items():
            ratio = f"{base / sec:.2f}x" if base else "-"
            print(f"| {key} | {sec:.1f} | {n_img / sec:.2f} | {ratio} |")
        if len(args.workers) > 1:
            a, b = min(args.workers), max(args.workers)
            print(f"\nours {b} workers vs {a}: {results[f'ours_w{a}'] / results[f'ours_w{b}']:.2f}x")

        if args.full_512:
            w = max(args.workers)
            small_json = tmp / "train_512.json"
            write_coco(small, small_json, progress=False)
            out = tmp / "ours_512"
            shutil.rmtree(out, ignore_errors=True)
            print(f"\ntrain_512: 50 copies of 298 images + originals, {w} workers ... ({load()})", flush=True)
            st = augment_dataset(small_json, small / "x", out, POLICY, Options(num=50, seed=args.seed),
                                 workers=w, progress=True)
            size = sum(f.stat().st_size for f in (out / "x").iterdir()) / 2 ** 20
            print(f"train_512: {st['images']} images, {st['annotations']} annotations in {st['seconds']:.0f} s "
                  f"({st['images'] / st['seconds']:.1f} images/s; images {size:.0f} MiB, "
                  f"annotations.json {(out / 'annotations.json').stat().st_size / 2 ** 20:.0f} MiB) ({load()})")
            per_full = results[f"ours_w{w}"] / n_img
            print(f"projected full resolution (2040x1536), 298 x 51 images with {w} workers: "
                  f"{per_full * 298 * 51 / 60:.0f} min ({per_full:.3f} s/image from (b))")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
