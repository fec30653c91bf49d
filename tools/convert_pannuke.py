"""Convert a PanNuke fold to PNG images and COCO: python tools/convert_pannuke.py FOLD_DIR OUT_DIR."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from segpc.cli import run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="PanNuke fold (images.npy, types.npy, masks.npy; memory-mapped) -> OUT_DIR/images/<index>.png "
                    "and OUT_DIR/annotations.json (COCO, exact RLE, tissue per image).")
    parser.add_argument("fold_dir", metavar="FOLD_DIR",
                        help="PanNuke's 'Fold k' folder (images/foldk/, masks/foldk/) or a folder with the three .npy files")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="output folder, new or empty")
    parser.add_argument("--classes", choices=("all", "neoplastic"), default="all",
                        help="five categories (default) or Neoplastic nuclei only")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a previous conversion in OUT_DIR (a folder holding other files is never replaced)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    from segpc.datasets.pannuke import convert_fold, summarize

    coco = convert_fold(args.fold_dir, args.out_dir, args.classes, progress=not args.no_progress,
                        overwrite=args.overwrite)
    print(summarize(coco, args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
