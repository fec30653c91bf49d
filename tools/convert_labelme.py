"""Convert a folder of LabelMe JSON files to the SegPC raw layout (x/<id>.png, y/<id>_<k>.png).

    python tools/convert_labelme.py JSON_DIR OUT_SPLIT_DIR [--cell-label L] [--nucleus-label L]
        [--cytoplasm-label L]
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from segpc.cli import run
from segpc.datasets.labelme import LabelMap, convert_labelme, summarize


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_dir", help="folder of LabelMe .json files (images inside them or beside them)")
    parser.add_argument("out_dir", help="split folder to write: x/<id>.png and y/<id>_<k>.png (0/20/40)")
    parser.add_argument("--cell-label", default="cell", help="label of whole-cell outlines (default 'cell')")
    parser.add_argument("--nucleus-label", default="nucleus", help="label of nuclei (default 'nucleus')")
    parser.add_argument("--cytoplasm-label", default="cytoplasm",
                        help="label of cytoplasm outlines or rings (default 'cytoplasm')")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    labels = LabelMap(cell=args.cell_label, nucleus=args.nucleus_label, cytoplasm=args.cytoplasm_label)
    counts = convert_labelme(args.json_dir, args.out_dir, labels, progress=not args.no_progress)
    print(summarize(counts, args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
