"""Write a Sartorius submission from a prediction dump: python tools/sartorius_submission.py DUMP OUT.csv."""
import argparse
import sys

from segpc.cli import run


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Prediction dump of a Sartorius model (cells with category and score) -> submission CSV "
                    "id,predicted without overlapping pixels: the image's class is the majority of its "
                    "cells' classes; cells below that class's score threshold are dropped; by decreasing "
                    "score each cell loses the pixels already taken and is kept if at least that class's "
                    "minimum size remains.")
    p.add_argument("dump", metavar="DUMP", help="prediction dump (tools/test.py --out)")
    p.add_argument("out_csv", metavar="OUT.csv", help="submission to write")
    p.add_argument("--score-thr", metavar="SPEC",
                   help="per image class: NUMBER, or CLASS=NUMBER,... (default shsy5y=0.15,astro=0.35,cort=0.55)")
    p.add_argument("--min-size", metavar="SPEC",
                   help="minimum pixels per image class, same form (default shsy5y=75,astro=150,cort=75)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from segpc.datasets.sartorius import parse_per_class, write_submission_csv
    from segpc.structures import load_dump

    thr = parse_per_class(args.score_thr, "--score-thr") if args.score_thr else None
    size = parse_per_class(args.min_size, "--min-size") if args.min_size else None
    stats = write_submission_csv(load_dump(args.dump), args.out_csv, thr, size, progress=True)
    classes = ", ".join(f"{k} {v}" for k, v in sorted(stats["classes"].items()))
    print(f"{stats['images']} images ({classes}), {stats['cells']} cells -> {args.out_csv}")


if __name__ == "__main__":
    sys.exit(run(main))
