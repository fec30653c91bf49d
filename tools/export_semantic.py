"""Write one semantic map per image of a SegPC split: 0 background, 1 cytoplasm, 2 nucleus.

    python tools/export_semantic.py SPLIT_DIR OUT_DIR [--format png]
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from segpc.cli import run
from segpc.datasets.semantic import FORMATS, export_semantic


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("split_dir", help="SegPC split: x/<id>.<ext> and y/<id>_<k>.<ext>")
    parser.add_argument("out_dir", help="where <id>.<format> maps go (nucleus wins over cytoplasm where cells overlap)")
    parser.add_argument("--format", default="png", choices=FORMATS, help="map file format (default png)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    counts = export_semantic(args.split_dir, args.out_dir, args.format, progress=not args.no_progress)
    print(f"{counts['images']} maps ({counts['cells']} cells) -> {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
