"""Per-scale and aggregated mIoU of a bmdeep candidates file: python tools/bmdeep_scores.py GT_DIR CANDIDATES.json."""
import argparse
import sys

from segpc.cli import run


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Score the candidates of tools/predict_bmdeep.py --candidates: every crop scale alone, "
                    "then the scales aggregated by 'filter' (published) and 'select' (paper).")
    p.add_argument("gt_dir", metavar="GT_DIR", help="ground-truth masks, or a split folder holding them in y/")
    p.add_argument("candidates", metavar="CANDIDATES.json")
    p.add_argument("--json", metavar="OUT", help="write {label: {mIoU, num_gt, num_pred}} here")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from segpc.apis.bmdeep import compare_aggregations
    from segpc.io import write_json

    rows = compare_aggregations(args.gt_dir, args.candidates)
    for label, res in rows:
        print(f"{label:>12}  mIoU {res.mIoU:.6f}  num_pred {res.num_pred}")
    if args.json:
        write_json({label: {"mIoU": r.mIoU, "num_gt": r.num_gt, "num_pred": r.num_pred} for label, r in rows},
                   args.json)


if __name__ == "__main__":
    sys.exit(run(main))
