"""Benchmark the Kaggle cell metric (Sartorius AP): ours vs the straightforward dense implementation.

    python benchmarks/bench_kaggle_ap.py [--num 9] [--seed 0] [--repeat 3] [--ref-repeat 1]

Synthetic Sartorius data at the competition's size (704x520; shsy5y, astro and cort images in
turn) is written to a temporary folder with a perturbed submission (cells eroded, dilated,
shifted or dropped, one false positive per image, no overlaps). Then, interleaved after a
warm-up:

  (a) ours:      segpc.evaluation.kaggle_ap.evaluate_csv, what tools/eval_kaggle_ap.py runs
                 (transposed RLEs straight from the run-length text, pycocotools IoUs on
                 box-overlapping pairs, exact counts for pairs above 0.5);
  (b) reference: segpc.testing.kaggle_ap.evaluate_csv, every mask decoded to the full frame
                 and every truth/prediction pair of an image compared on it.

Both must give the same score (exit 1 otherwise). Prints best and median wall seconds and the
ratio reference / ours.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from segpc.datasets.sartorius_synthetic import write_sartorius_synthetic
from segpc.evaluation.kaggle_ap import evaluate_csv
from segpc.testing import kaggle_ap as ref


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num", type=int, default=9, help="images (default 9: three of each cell type)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=3, help="timed runs of ours")
    p.add_argument("--ref-repeat", type=int, default=1, help="timed runs of the reference")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_sartorius_synthetic(tmp, args.num, seed=args.seed)
        truth = tmp / "train.csv"
        sub = ref.perturbed_submission(truth, tmp / "submission.csv", args.seed)
        n_gt = sum(1 for _ in open(truth)) - 1
        n_pred = sum(1 for _ in open(sub)) - 1
        evaluate_csv(truth, sub)  # warm-up (imports, page cache)
        ours, theirs = [], []
        for i in range(max(args.repeat, args.ref_repeat)):
            if i < args.repeat:
                t, res = timed(evaluate_csv, truth, sub)
                ours.append(t)
            if i < args.ref_repeat:
                t, (ref_score, _) = timed(ref.evaluate_csv, truth, sub)
                theirs.append(t)
    print(f"machine: {platform.machine()}, {platform.python_version()}, numpy {np.__version__}")
    print(f"{args.num} images 704x520, {n_gt} truth cells, {n_pred} predicted cells")
    print(f"score ours {res.score:.12f}  reference {ref_score:.12f}  |diff| {abs(res.score - ref_score):.2e}")
    print("| run | best s | median s |\n|---|---:|---:|")
    print(f"| (a) ours | {min(ours):.3f} | {statistics.median(ours):.3f} |")
    print(f"| (b) dense reference | {min(theirs):.3f} | {statistics.median(theirs):.3f} |")
    print(f"reference / ours: {min(theirs) / min(ours):.1f} (best), "
          f"{statistics.median(theirs) / statistics.median(ours):.1f} (median)")
    return 0 if abs(res.score - ref_score) < 1e-12 else 1


if __name__ == "__main__":
    sys.exit(main())
