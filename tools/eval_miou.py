"""Score predictions with the SegPC-2021 mIoU: python tools/eval_miou.py GT_DIR PRED [--json OUT]."""
import argparse
import sys

from segpc.cli import run


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="SegPC-2021 challenge mIoU: every ground-truth cell takes its best IoU over the "
                    "predicted cells of its image (masks resized to 1080x1440, nearest neighbour).")
    p.add_argument("gt_dir", metavar="GT_DIR",
                   help="ground-truth masks <id>_<k>.bmp|png, or a split folder holding them in y/")
    p.add_argument("pred", metavar="PRED",
                   help="submission folder (<id>_<k>.bmp|png, nucleus 40, cytoplasm 20) "
                        "or a prediction dump (tools/test.py --out)")
    p.add_argument("--json", metavar="OUT", help="write {mIoU, num_gt, num_pred, per_image} here")
    p.add_argument("--per-image", action="store_true", help="also print every image's score")
    p.add_argument("--workers", type=int, default=None,
                   help="threads reading masks (default: CPU cores, at most 4)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from segpc.evaluation.miou import evaluate_dirs
    from segpc.io import write_json

    res = evaluate_dirs(args.gt_dir, args.pred, workers=args.workers)
    if args.per_image:
        for name, r in res.per_image.items():
            print(f"{name}\tmIoU {r['mIoU']:.6f}\tnum_gt {r['num_gt']}\tnum_pred {r['num_pred']}")
    print(f"mIoU: {res.mIoU:.6f}")
    print(f"num_gt: {res.num_gt}  num_pred: {res.num_pred}  images: {len(res.per_image)}")
    if res.unmatched_pred_images:
        names = res.unmatched_pred_images
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        print(f"warning: {len(names)} predicted image(s) have no ground truth and were ignored: {shown}",
              file=sys.stderr)
    if args.json:
        write_json(res.to_dict(), args.json)


if __name__ == "__main__":
    sys.exit(run(main))
