"""Write a synthetic SegPC data set (x/<id>.bmp, y/<id>_<k>.bmp) for demos and tests.

    python tools/make_synthetic.py data/synthetic --num 40 --seed 0 [--size 384 512]
    python tools/make_synthetic.py data/sartorius_synthetic --format sartorius --split train --num 12

The same arguments always write byte-identical files; see :mod:`segpc.datasets.synthetic`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from segpc.cli import run
from segpc.datasets.synthetic import DEFAULT_SIZE, write_dataset
from segpc.io import split_mask_stem


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path, help="folder to write x/ and y/ into")
    p.add_argument("--num", type=int, default=20, help="number of images (default: 20)")
    p.add_argument("--seed", type=int, default=0, help="random seed, >= 0 (default: 0)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help=f"image height and width (default: {list(DEFAULT_SIZE)}; sartorius 520 704)")
    p.add_argument("--max-cells", type=int, help="most cells per image (default: 6; sartorius: by cell type)")
    p.add_argument("--format", choices=("segpc", "sartorius"), default="segpc",
                   help="sartorius: Kaggle's layout, OUT_DIR/<split>.csv (run-length, one row per cell) "
                        "and OUT_DIR/<split>/<id>.png, cell types shsy5y/astro/cort in turn")
    p.add_argument("--split", default="train", help="sartorius: the split's name (default: train)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a previous synthetic set in OUT_DIR (never other files)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.format == "sartorius":
        from segpc.datasets.sartorius_synthetic import DEFAULT_SIZE as SARTORIUS_SIZE, write_sartorius_synthetic

        size = args.size or SARTORIUS_SIZE
        ids = write_sartorius_synthetic(args.out_dir, args.num, args.seed, args.split, size,
                                        max_cells=args.max_cells, overwrite=args.overwrite, progress=True)
        cells = sum(1 for _ in open(args.out_dir / f"{args.split}.csv")) - 1
        print(f"wrote {len(ids)} images ({size[0]}x{size[1]}) to {args.out_dir / args.split} and "
              f"{cells} cells to {args.out_dir / (args.split + '.csv')}")
        return 0
    args.size = args.size or list(DEFAULT_SIZE)
    args.max_cells = 6 if args.max_cells is None else args.max_cells
    ids = write_dataset(args.out_dir, args.num, args.seed, args.size, max_cells=args.max_cells,
                        overwrite=args.overwrite, progress=True)
    masks = [split_mask_stem(m.stem)[0] for m in (args.out_dir / "y").glob("*.bmp")]
    empty = len(set(ids) - set(masks))
    h, w = args.size
    print(f"wrote {len(ids)} images ({h}x{w}, ids {ids[0]}..{ids[-1]}, {empty} without cells) "
          f"and {len(masks)} cell masks to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
