"""Offline augmentation: NUM augmented copies of every image of a SegPC COCO file.

    python tools/augment.py data/segpc/annotations/train.json data/segpc_aug \
        --img-dir data/segpc/train/x --num 50 --workers 2

writes OUT_DIR/x/ (images) and OUT_DIR/annotations.json (originals + copies; same categories and
cell_index linking as the input). Deterministic for a given --seed whatever --workers; a run
that was interrupted resumes where it stopped when started again with the same arguments.
See segpc/augment/pipeline.py for the layout and guarantees, and
configs/augment/segpc_xlab.yaml for the policy format.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from segpc.cli import run

REPO = Path(__file__).resolve().parents[1]
DEFAULT_POLICY = REPO / "configs" / "augment" / "segpc_xlab.yaml"


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ann_json", help="input COCO file (categories nucleus, cytoplasm, cell; cell_index per annotation)")
    p.add_argument("out_dir", help="output folder: x/ (images), annotations.json (and a hidden work folder for resuming)")
    p.add_argument("--img-dir", required=True,
                   help="folder the input JSON's file_name entries are relative to (e.g. data/segpc/train/x)")
    p.add_argument("--num", type=int, default=50, help="augmented copies per image (default 50)")
    p.add_argument("--workers", type=int, default=_cpus(), help="worker processes (default: the usable CPUs)")
    p.add_argument("--seed", type=int, default=0, help="copy k of image id i uses a seed derived from (seed, i, k)")
    p.add_argument("--policy", default=str(DEFAULT_POLICY), help="policy YAML (default configs/augment/segpc_xlab.yaml)")
    p.add_argument("--max-size", type=int, nargs=2, metavar=("W", "H"),
                   help="downscale images and masks to fit W x H (the policy then runs at that size)")
    p.add_argument("--format", choices=("jpg", "png"), default="jpg", help="output image format (default jpg)")
    p.add_argument("--no-originals", dest="originals", action="store_false",
                   help="leave the original images out of the output")
    p.add_argument("--min-area", type=int, default=1,
                   help="drop cells with fewer visible pixels than this after augmentation (default 1)")
    p.add_argument("--restart", action="store_true",
                   help="discard what OUT_DIR holds from a run with other settings and start over")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from segpc.augment import Options, augment_dataset

    opts = Options(num=args.num, seed=args.seed, max_size=tuple(args.max_size) if args.max_size else None,
                   image_format=args.format, originals=args.originals, min_area=args.min_area)
    stats = augment_dataset(args.ann_json, args.img_dir, args.out_dir, args.policy, opts,
                            workers=args.workers, restart=args.restart, progress=args.progress)
    print(f"{stats['images']} images ({stats['made']} made, {stats['reused']} already done), "
          f"{stats['annotations']} annotations -> {Path(args.out_dir) / 'annotations.json'} "
          f"in {stats['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
