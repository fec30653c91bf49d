"""Convert Sartorius run-length CSV to COCO: python tools/convert_sartorius.py CSV IMG_DIR OUT_JSON."""
import argparse
import sys

from segpc.cli import run


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Kaggle Sartorius annotations (train.csv: one row per cell, run-length starts 1-indexed, "
                    "row-major) and their images (IMG_DIR/<id>.png) -> COCO with categories shsy5y, astro, "
                    "cort; exact RLE, box and area per cell; overlapping cells kept.")
    p.add_argument("csv", metavar="CSV", help="annotation CSV (train.csv layout)")
    p.add_argument("img_dir", metavar="IMG_DIR", help="folder of the images, <id>.png")
    p.add_argument("out_json", metavar="OUT_JSON", help="COCO file to write")
    p.add_argument("--fill-holes", action="store_true",
                   help="fill the enclosed holes of every cell mask (scipy binary_fill_holes)")
    p.add_argument("--val-json", metavar="VAL_JSON",
                   help="hold out --num-val random images into this COCO file (OUT_JSON gets the others)")
    p.add_argument("--num-val", type=int, default=0, help="number of held-out images")
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out draw (default 0)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from segpc.datasets.sartorius import summarize, write_sartorius_coco

    coco, val = write_sartorius_coco(args.csv, args.img_dir, args.out_json, fill_holes=args.fill_holes,
                                     val_json=args.val_json, num_val=args.num_val, seed=args.seed)
    print(f"{summarize(coco)} -> {args.out_json}")
    if val is not None:
        print(f"{summarize(val)} -> {args.val_json}")


if __name__ == "__main__":
    sys.exit(run(main))
