"""Ensemble predictions: python tools/ensemble.py REF OTHER ... --out ENS.json [--tie out|reference]."""
import argparse
import sys

from segpc.cli import run


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="IoU-matched majority vote of predictions, the SegPC-2021 winners' scheme. Inputs are "
                    "prediction dumps (tools/test.py --out) or submission folders (<id>_<k>.bmp; their "
                    "cells all score 1.0). Every reference cell takes from each other input its best-IoU "
                    "cell if IoU >= --min-iou; when all (or --quorum K) of them do, cell and nucleus are "
                    "voted pixel by pixel (more than half of the voters; --tie decides exactly half), "
                    "else the reference cell is kept. Cells no reference cell matched are added "
                    "(a cell matching one already added from an earlier input is dropped).")
    p.add_argument("ref", metavar="REF", help="the reference dump or submission folder: its cells drive the vote")
    p.add_argument("others", nargs="+", metavar="OTHER", help="the other models' dumps or submission folders")
    p.add_argument("--min-iou", type=float, default=0.85,
                   help="minimum whole-cell IoU for a cell to contribute (default 0.85)")
    p.add_argument("--quorum", type=int, metavar="K",
                   help="vote when at least K other dumps contribute (default: all of them)")
    p.add_argument("--tie", choices=("out", "reference"), default="out",
                   help="a pixel exactly half of an even number of voters have: out (default, the "
                        "winners' rule votes > n/2) or in if the reference cell has it")
    p.add_argument("--method", choices=("vote", "nms"), default="vote",
                   help="vote: the IoU-matched majority vote above (default); nms: mask non-maximum "
                        "suppression over all inputs' cells by decreasing score, class by class (Sartorius "
                        "dumps: per category), keeping cells as they are")
    p.add_argument("--nms-iou", metavar="SPEC", default="0.4",
                   help="nms: a cell is dropped when its IoU with a kept cell of its category is above this; "
                        "one number, or per category shsy5y=0.3,astro=0.4,cort=0.5 (default 0.4)")
    p.add_argument("--out", required=True, metavar="ENS.json", help="write the ensembled dump here (JSON)")
    p.add_argument("--submission", metavar="DIR",
                   help="also write the challenge submission: <id>_<k>.bmp per cell (nucleus 40, cytoplasm 20); "
                        "DIR must be new, empty or (with --overwrite) a previous submission")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a previous submission in DIR (a folder holding other files is never replaced)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from segpc.ensemble import ensemble_dumps, load_inputs
    from segpc.io import SUBMISSION_FILES, check_output_dir
    from segpc.structures import save_dump, write_submission

    if args.submission:  # refuse before any work
        check_output_dir(args.submission, SUBMISSION_FILES, args.overwrite)
    paths = [args.ref, *args.others]
    dumps = load_inputs(paths)
    if args.method == "nms":
        from segpc.datasets.sartorius import parse_per_class
        from segpc.ensemble import nms_dumps

        try:
            thr = float(args.nms_iou)
        except ValueError:
            thr = parse_per_class(args.nms_iou, "--nms-iou")
        ens = nms_dumps(dumps, thr, sources=paths)
    else:
        ens = ensemble_dumps(dumps, min_iou=args.min_iou, quorum=args.quorum, sources=paths, tie=args.tie)
    save_dump(ens, args.out)
    s = ens["ensemble"]
    n = sum(len(img["cells"]) for img in ens["images"])
    if args.method == "nms":
        print(f"{len(ens['images'])} images, {n} cells kept, {s['suppressed']} suppressed")
    else:
        print(f"{len(ens['images'])} images, {n} cells: {s['voted']} voted, {s['kept']} reference cells kept "
              f"as they are, {s['added']} added from the other dumps ({s['duplicates']} duplicates dropped)")
    print(f"dump: {args.out}")
    if args.submission:
        write_submission(ens, args.submission, overwrite=args.overwrite)
        print(f"submission: {args.submission}")


if __name__ == "__main__":
    sys.exit(run(main))
