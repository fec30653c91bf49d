"""Score PanNuke predictions: python tools/eval_pq.py TRUE.npy PRED.npy TYPES.npy [--json OUT]."""
import argparse
import sys

from segpc.cli import run


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="PanNuke's bPQ and mPQ as the official PanNuke-metrics code computes them: PQ per "
                    "image (match IoU > 0.5), averaged per tissue, then over tissues; plus per-class PQ.")
    p.add_argument("true", metavar="TRUE.npy", help="ground truth, (N, H, W, 6): a fold's masks.npy")
    p.add_argument("pred", metavar="PRED.npy", help="predictions in the same layout (tools/test.py --out PRED.npy)")
    p.add_argument("types", metavar="TYPES.npy", help="tissue name per image: the fold's types.npy")
    p.add_argument("--classes", choices=("all", "neoplastic"), default="all",
                   help="score the five classes (default) or Neoplastic nuclei only (bPQ over them)")
    p.add_argument("--json", metavar="OUT", help="write {bPQ, mPQ, per_class, per_tissue, num_images} here")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from segpc.datasets.pannuke import CLASS_SETS
    from segpc.evaluation.pq import evaluate_files
    from segpc.io import write_json

    res = evaluate_files(args.true, args.pred, args.types, channels=CLASS_SETS[args.classes])
    print(res.format())
    if args.json:
        write_json(res.to_dict(), args.json)


if __name__ == "__main__":
    sys.exit(run(main))
