"""Score a Kaggle cell submission: python tools/eval_kaggle_ap.py TRUTH.csv SUBMISSION.csv [--json OUT]."""
import argparse
import sys

from segpc.cli import run


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="The Sartorius / Data Science Bowl metric: per image, the mean over IoU thresholds "
                    "0.50..0.95 of TP/(TP+FP+FN) (a match: IoU > threshold, one-to-one); the score is the "
                    "mean over the truth's images, also per cell type.")
    p.add_argument("truth", metavar="TRUTH.csv",
                   help="annotations in train.csv layout (id, annotation, width, height[, cell_type])")
    p.add_argument("submission", metavar="SUBMISSION.csv", help="id,predicted; one row per cell")
    p.add_argument("--json", metavar="OUT", help="write {score, per_type, per_image, ...} here")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from segpc.evaluation.kaggle_ap import evaluate_csv, format_result, warn_unmatched
    from segpc.io import write_json

    res = evaluate_csv(args.truth, args.submission, progress=True)
    print(format_result(res))
    warn_unmatched(res)
    if args.json:
        write_json(res.to_dict(), args.json)


if __name__ == "__main__":
    sys.exit(run(main))
