"""The worst-matched ground-truth cells: python tools/worst_cells.py GT_SPLIT_DIR PRED OUT_DIR [--num 20]."""
import argparse
import math
import sys

from segpc.cli import run


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Rank the ground-truth cells by their challenge IoU (best prediction, masks at "
                    "1080x1440) and write crops of the worst ones, prediction next to ground truth, "
                    "with OUT_DIR/index.csv and OUT_DIR/index.md.")
    p.add_argument("gt_dir", metavar="GT_SPLIT_DIR",
                   help="split folder with x/ (images) and y/ (<id>_<k> masks), or a folder of masks")
    p.add_argument("pred", metavar="PRED", help="submission folder or prediction dump (tools/test.py --out)")
    p.add_argument("out_dir", metavar="OUT_DIR",
                   help="new or empty folder (or, with --overwrite, a previous report, replaced whole)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a previous report in OUT_DIR (a folder holding other files is never replaced)")
    p.add_argument("--num", type=int, default=20, help="how many cells to report (default 20)")
    p.add_argument("--workers", type=int, default=None, help="threads reading masks")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from segpc.evaluation.worst import REPORT_FILES, match_cells, write_report
    from segpc.io import SegPCError, check_output_dir

    if args.num < 1:
        raise SegPCError(None, f"--num must be at least 1, got {args.num}")
    check_output_dir(args.out_dir, REPORT_FILES, args.overwrite)  # refuse before any work
    matches = match_cells(args.gt_dir, args.pred, workers=args.workers)
    rows = write_report(matches, args.gt_dir, args.out_dir, num=args.num, overwrite=args.overwrite)
    mean = math.fsum(m.iou for m in matches) / len(matches)
    print(f"{len(matches)} ground-truth cells, mIoU {mean:.6f}; the {len(rows)} worst:")
    for r in rows:
        print(f"{r['rank']:>4}  {r['gt_mask']:<24} IoU {r['iou']:.4f}  best prediction: {r['pred'] or '(none)'}")
    print(f"report: {args.out_dir}/index.md")


if __name__ == "__main__":
    sys.exit(run(main))
