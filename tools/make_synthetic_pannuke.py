"""Write synthetic PanNuke-format folds: python tools/make_synthetic_pannuke.py OUT_DIR --num N --seed S."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from segpc.cli import run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="H&E-like tiles with nuclei of the five PanNuke classes, written as PanNuke's folds: "
                    "OUT_DIR/Fold k/images/foldk/{images,types}.npy and OUT_DIR/Fold k/masks/foldk/masks.npy.")
    parser.add_argument("out_dir", metavar="OUT_DIR")
    parser.add_argument("--num", type=int, default=8, help="images per fold (default 8)")
    parser.add_argument("--folds", type=int, default=3, help="number of folds (default 3)")
    parser.add_argument("--size", type=int, default=256, help="tile side in pixels (default 256, as PanNuke)")
    parser.add_argument("--max-nuclei", type=int, default=40, help="most nuclei per tile (default 40)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace existing synthetic fold files")
    args = parser.parse_args(argv)
    from segpc.datasets.pannuke import write_synthetic_folds
    from segpc.io import SegPCError

    for name in ("num", "folds", "size", "max_nuclei"):
        if getattr(args, name) < 1:
            raise SegPCError(None, f"--{name.replace('_', '-')} must be at least 1")
    folds = write_synthetic_folds(args.out_dir, num=args.num, folds=args.folds, seed=args.seed, size=args.size,
                                  max_nuclei=args.max_nuclei, overwrite=args.overwrite)
    print(f"{len(folds)} folds of {args.num} images ({args.size}x{args.size}) -> {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
