"""Test a checkpoint: python tools/test.py CONFIG CKPT [--out PRED.json] [--submission DIR]."""
import argparse
import sys

from segpc.apis.config import DictAction
from segpc.cli import run


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Score a checkpoint with the SegPC mIoU; write predictions.")
    p.add_argument("config")
    p.add_argument("checkpoint")
    p.add_argument("--out", metavar="PRED.json", help="write the prediction dump (cells as RLE); with PanNukeMetric "
                   "PRED.npy, PanNuke's (N, H, W, 6) layout for tools/eval_pq.py")
    p.add_argument("--submission", metavar="DIR",
                   help="write the challenge submission: <id>_<k>.bmp per cell (nucleus 40, cytoplasm 20); "
                        "DIR must be new, empty or (with --overwrite) a previous submission; for a "
                        "Sartorius config the submission CSV file (id,predicted)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a previous submission in DIR (a folder holding other files is never replaced)")
    p.add_argument("--score-thr", type=float,
                   help="minimum cell score (default: the config's, 0.5; Sartorius: per image class)")
    p.add_argument("--format-only", action="store_true",
                   help="only write --out/--submission, no scoring (a split without ground truth)")
    p.add_argument("--tta", action="store_true",
                   help="flip test-time augmentation: original + flips, merged by mask IoU and pixel vote "
                        "(the config's tta_model/tta_pipeline, else the test pipeline with the flips of tta_flips)")
    p.add_argument("--work-dir", help="where logs go (default work_dirs/<config name>)")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, metavar="KEY=VALUE",
                   help="override config settings, e.g. data_root=/data/segpc")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from segpc.apis.test import test

    result = test(args.config, args.checkpoint, out=args.out, submission=args.submission,
                   score_thr=args.score_thr, work_dir=args.work_dir, cfg_options=args.cfg_options,
                   format_only=args.format_only, tta=args.tta,
                   overwrite=args.overwrite)
    from segpc.evaluation.pq import PQResult

    if isinstance(result, PQResult):  # PanNukeMetric
        print(result.format())
    elif hasattr(result, "mIoU"):
        print(f"mIoU: {result.mIoU:.6f}\nnum_gt: {result.num_gt}  num_pred: {result.num_pred}")
    elif result is not None:  # a Sartorius config: the Kaggle AP
        from segpc.evaluation.kaggle_ap import format_result

        print(format_result(result))


if __name__ == "__main__":
    sys.exit(run(main))
