"""Predict cells on new slides: python tools/predict.py CONFIG CKPT IMAGES_DIR OUT_DIR [--tta]."""
import argparse
import sys

from segpc.apis.config import DictAction
from segpc.cli import run


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Predict plasma cells on images without ground truth. OUT_DIR gets predictions.json "
                    "(the dump), submission/<name>_<k>.bmp (nucleus 40, cytoplasm 20), overlays/<name>.png "
                    "(cell outline yellow, nucleus outline magenta), summary.csv (per image: cells, mean "
                    "nucleus and cytoplasm areas in pixels, mean nucleus/cell area ratio) and cells.csv "
                    "(per cell).")
    p.add_argument("config")
    p.add_argument("checkpoint")
    p.add_argument("images_dir", metavar="IMAGES_DIR", help="folder of images (.bmp .png .jpg .tif ...)")
    p.add_argument("out_dir", metavar="OUT_DIR",
                   help="new or empty folder (or, with --overwrite, a previous output, replaced whole)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a previous output in OUT_DIR (a folder holding other files is never replaced)")
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation (as tools/test.py --tta)")
    p.add_argument("--score-thr", type=float, help="minimum cell score (default: the config's, 0.5)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, metavar="KEY=VALUE",
                   help="override config settings")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from segpc.apis.predict import predict

    dump = predict(args.config, args.checkpoint, args.images_dir, args.out_dir, tta=args.tta,
                   score_thr=args.score_thr, device=args.device, cfg_options=args.cfg_options,
                   overwrite=args.overwrite)
    n = sum(len(img["cells"]) for img in dump["images"])
    print(f"{len(dump['images'])} images, {n} cells → {args.out_dir}/ "
          "(predictions.json, submission/, overlays/, summary.csv, cells.csv)")


if __name__ == "__main__":
    sys.exit(run(main))
