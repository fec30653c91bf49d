"""Write a synthetic SegPC data set (x/<id>.bmp, y/<id>_<k>.bmp) for demos and tests.

    python tools/make_synthetic.py data/synthetic --num 40 --seed 0 [--size 384 512]

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
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=list(DEFAULT_SIZE),
                   help="image height and width (default: %(default)s)")
    p.add_argument("--max-cells", type=int, default=6, help="most plasma cells per image (default: 6)")
    p.add_argument("--overwrite", action="store_true", help="replace x/ and y/ if they already hold files")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
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
