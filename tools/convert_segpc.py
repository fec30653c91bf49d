"""Convert a SegPC-2021 split (x/<id>.<ext>, y/<id>_<k>.<ext>) to COCO with nucleus, cytoplasm and cell.

    python tools/convert_segpc.py SPLIT_DIR OUT_JSON [--semantic-dir DIR]
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from segpc.cli import run
from segpc.datasets.convert import summarize, write_coco


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("split_dir", help="folder with x/ (images) and optionally y/ (one mask per cell)")
    parser.add_argument("out_json", help="COCO annotation file to write")
    parser.add_argument(
        "--semantic-dir", help="also write DIR/<image stem>.png (0 background, 1 cell) for HTC/SCNet"
    )
    parser.add_argument("--workers", type=int, default=None, help="threads decoding masks (default: up to 4)")
    parser.add_argument(
        "--verify-images", action="store_true", help="decode every image instead of reading its header"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    coco = write_coco(
        args.split_dir, args.out_json, args.semantic_dir,
        progress=not args.no_progress, workers=args.workers, verify_images=args.verify_images,
    )
    print(summarize(coco, args.out_json))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
