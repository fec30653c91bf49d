"""Benchmark the SegPC mIoU on real masks: ours vs the dense reference vs merely decoding.

    python benchmarks/bench_eval_miou.py [--data DIR] [--set train_fullres] [--repeat 5]

The real SegPC samples are looked up at --data, else $SEGPC_REAL_DATA, else
``<repo>/../shared/data/segpc_real``. A prediction folder is built in a temporary directory:
every ground-truth mask perturbed (dilated, eroded and/or shifted, a few dropped, a few
duplicated), written at its original size as a 40/20 BMP, as a submission would be. Then:

  (a) ours:      segpc.evaluation.miou.evaluate_dirs (what tools/eval_miou.py runs), with its
                 default thread pool and with one thread;
  (c) decode:    cv2.imread of every GT and prediction file, nothing else (one thread, and the
                 same thread pool as ours);
  (b) reference: segpc.testing.miou.reference_evaluate_dirs (dense full-frame pairs);
  (d) in memory: the same cells as RLE (what the mmengine metric scores): ours from RLE vs
                 pycocotools decoding every RLE to a full frame.

Each is run --repeat times (interleaved, after a warm-up that fills the page cache); best and
median wall times are printed with the ratios ours/decode and reference/ours.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from segpc.evaluation.miou import default_workers, evaluate_dirs, evaluate_masks, find_gt_dir, scaled_rle
from segpc.io import MASK_EXTS, read_mask, split_mask_stem
from segpc.structures import decode, encode
from segpc.testing.miou import reference_evaluate_dirs

REPO = Path(__file__).resolve().parents[1]


def data_root(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("SEGPC_REAL_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data" / "segpc_real"


def perturb(rng: np.random.Generator, m: np.ndarray) -> np.ndarray:
    """A plausible prediction of a GT mask: nucleus 40 / cytoplasm 20, dilated/eroded/shifted."""
    p = np.where(m == 40, 40, np.where(m > 0, 20, 0)).astype(np.uint8)
    k = int(rng.integers(3, 16))
    op = int(rng.integers(0, 3))
    if op == 1:
        p = cv2.dilate(p, np.ones((k, k), np.uint8))
    elif op == 2:
        p = cv2.erode(p, np.ones((k, k), np.uint8))
    dy, dx = (int(v) for v in rng.integers(-k, k + 1, 2))
    return np.roll(p, (dy, dx), axis=(0, 1))


def build_predictions(gt_files: list[Path], out: Path, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    n = 0
    for p in gt_files:
        m = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if m.ndim == 3:
            m = m[..., 0]
        image_id, _, k = p.stem.rpartition("_")
        if rng.random() < 0.05:  # a missed cell
            continue
        cv2.imwrite(str(out / f"{image_id}_{k}.bmp"), perturb(rng, m))
        n += 1
        if rng.random() < 0.1:  # a duplicate / false positive
            cv2.imwrite(str(out / f"{image_id}_{k}dup.bmp"), perturb(rng, m))
            n += 1
    return n


def rles_by_image(paths: list[Path], prediction: bool) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for p in paths:
        m = read_mask(p)
        cell = (m == 20) | (m == 40) if prediction else m > 0
        out.setdefault(split_mask_stem(p.stem)[0], []).append(encode(cell))
    return out


def evaluate_rles(gt: dict[str, list[dict]], pred: dict[str, list[dict]]):
    return evaluate_masks({k: [scaled_rle(r) for r in v] for k, v in gt.items()},
                          {k: [scaled_rle(r) for r in v] for k, v in pred.items()})


def decode_all(paths: list[Path], workers: int) -> None:
    def read(p: Path):
        return cv2.imread(str(p), cv2.IMREAD_UNCHANGED)

    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(read, paths):
                pass
    else:
        for p in paths:
            read(p)


def timed_call(fn):
    t = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t


def timed(fn) -> float:
    return timed_call(fn)[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="real SegPC samples (default $SEGPC_REAL_DATA or ../shared/data/segpc_real)")
    ap.add_argument("--set", default="train_fullres", help="set inside --data (default train_fullres)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of ours and decode (default 5)")
    ap.add_argument("--ref-repeat", type=int, default=2, help="timed runs of the dense reference (default 2)")
    args = ap.parse_args(argv)

    split = data_root(args.data) / args.set
    if not split.is_dir():
        print(f"error: {split}: real SegPC data not found (--data or $SEGPC_REAL_DATA)", file=sys.stderr)
        return 2
    gt_dir = find_gt_dir(split)
    gt_files = sorted(p for p in gt_dir.iterdir() if p.suffix.lower() in MASK_EXTS)
    workers = default_workers()

    with tempfile.TemporaryDirectory(prefix="segpc-bench-") as tmp:
        pred_dir = Path(tmp)
        n_pred = build_predictions(gt_files, pred_dir)
        pred_files = sorted(pred_dir.iterdir())
        files = gt_files + pred_files
        shape = cv2.imread(str(gt_files[0]), cv2.IMREAD_UNCHANGED).shape
        print(f"data: {split}  {len(gt_files)} GT masks + {n_pred} predicted masks (BMP), "
              f"{shape[0]}x{shape[1]}, {sum(p.stat().st_size for p in files) / 2**20:.0f} MiB")
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
              f"(affinity {len(os.sched_getaffinity(0))}), python {platform.python_version()}, "
              f"opencv {cv2.__version__}, numpy {np.__version__}; ours uses {workers} thread(s)")

        # Warm up (page cache, lazy imports, cached resize maps) and check agreement.
        decode_all(files, 1)
        ours = evaluate_dirs(split, pred_dir)
        ref, t = timed_call(lambda: reference_evaluate_dirs(split, pred_dir))
        t_ref = [t]
        agree = ours.to_dict() == ref.to_dict()
        print(f"mIoU ours {ours.mIoU:.12f}  reference {ref.mIoU:.12f}  "
              f"|diff| {abs(ours.mIoU - ref.mIoU):.1e}  identical results: {agree}")

        times: dict[str, list[float]] = {k: [] for k in ("decode_1", "decode_pool", "ours_1", "ours_pool")}
        for _ in range(args.repeat):
            times["decode_1"].append(timed(lambda: decode_all(files, 1)))
            times["ours_1"].append(timed(lambda: evaluate_dirs(split, pred_dir, workers=1)))
            times["decode_pool"].append(timed(lambda: decode_all(files, workers)))
            times["ours_pool"].append(timed(lambda: evaluate_dirs(split, pred_dir, workers=workers)))
        for _ in range(max(0, args.ref_repeat - 1)):
            t_ref.append(timed(lambda: reference_evaluate_dirs(split, pred_dir)))
        times["reference"] = t_ref

        # In memory (the mmengine metric's path): the same masks as RLE.
        gt_rles, pred_rles = rles_by_image(gt_files, False), rles_by_image(pred_files, True)
        mem = evaluate_rles(gt_rles, pred_rles)
        mem_agree = mem.to_dict() == ours.to_dict()
        all_rles = [r for d in (gt_rles, pred_rles) for v in d.values() for r in v]
        times["rle_ours"], times["rle_decode"] = [], []
        for _ in range(args.repeat):
            times["rle_ours"].append(timed(lambda: evaluate_rles(gt_rles, pred_rles)))
            times["rle_decode"].append(timed(lambda: [decode(r) for r in all_rles]))

    print(f"in memory (RLE): mIoU {mem.mIoU:.12f}, identical to the files' result: {mem_agree}")
    best = {k: min(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    labels = {"decode_1": "(c) decode, 1 thread", "decode_pool": f"(c) decode, {workers} threads",
              "ours_1": "(a) ours, 1 thread", "ours_pool": f"(a) ours, {workers} threads (default)",
              "reference": "(b) dense reference, 1 thread",
              "rle_ours": "(d) ours in memory, from RLE", "rle_decode": "(d) pycocotools decode of the RLEs"}
    print(f"\n{'':34s} {'best s':>8s} {'median s':>9s}  runs")
    for k, label in labels.items():
        print(f"{label:34s} {best[k]:8.3f} {med[k]:9.3f}  {len(times[k])}")
    print()
    print(f"ours/decode, 1 thread:        best {best['ours_1'] / best['decode_1']:.3f}  "
          f"median {med['ours_1'] / med['decode_1']:.3f}")
    print(f"ours/decode, {workers} threads:       best {best['ours_pool'] / best['decode_pool']:.3f}  "
          f"median {med['ours_pool'] / med['decode_pool']:.3f}")
    print(f"ours ({workers} threads)/decode (1 thread): best {best['ours_pool'] / best['decode_1']:.3f}")
    print(f"reference/ours, 1 thread:     best {best['reference'] / best['ours_1']:.1f}  "
          f"median {med['reference'] / med['ours_1']:.1f}")
    print(f"reference/ours (default):     best {best['reference'] / best['ours_pool']:.1f}")
    print(f"in memory: ours (RLE → score) / pycocotools decode of the same RLEs: "
          f"best {best['rle_ours'] / best['rle_decode']:.3f}")
    return 0 if agree and mem_agree else 1


if __name__ == "__main__":
    sys.exit(main())
