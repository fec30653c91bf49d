"""Two-stage bmdeep prediction: python tools/predict_bmdeep.py SPEC IMAGES_DIR OUT_DIR --nucleus CKPT
--cytoplasm SCALE=CKPT [SCALE=CKPT ...] [--aggregate filter|select] [--tta]."""
import argparse
import sys

from segpc.cli import run


def scale_checkpoint(text: str) -> tuple[float, str]:
    scale, sep, path = text.partition("=")
    try:
        if not sep or not path:
            raise ValueError
        return float(scale), path
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SCALE=CHECKPOINT, got {text!r}") from None


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Predict plasma cells with the second-place SegPC-2021 method: a nucleus U-Net, then one "
                    "cytoplasm network per crop scale on each nucleus, scales aggregated by the cytoplasm/"
                    "nucleus area ratio. OUT_DIR gets what tools/predict.py writes (predictions.json, "
                    "submission/, overlays/, summary.csv, cells.csv).")
    p.add_argument("spec", help="two-stage spec, e.g. configs/bmdeep/two_stage.py")
    p.add_argument("images_dir", metavar="IMAGES_DIR", help="folder of images")
    p.add_argument("out_dir", metavar="OUT_DIR", help="new or empty folder (or a previous output with --overwrite)")
    p.add_argument("--nucleus", required=True, metavar="CKPT", help="nucleus U-Net checkpoint")
    p.add_argument("--cytoplasm", required=True, nargs="+", type=scale_checkpoint, metavar="SCALE=CKPT",
                   help="one cytoplasm checkpoint per scale of the spec, e.g. 0.5=work_dirs/s050/iter_20000.pth")
    p.add_argument("--aggregate", choices=["filter", "select"],
                   help="filter: every scale within its ratio range (published code, the spec's default); "
                        "select: smallest scale within its threshold (paper)")
    p.add_argument("--candidates", metavar="FILE.json",
                   help="also save every scale's cell of every nucleus (for tools/bmdeep_scores.py)")
    p.add_argument("--tta", action="store_true",
                   help="flip test-time augmentation: the image and its 3 flips, cells matched and voted "
                        "as tools/test.py --tta does (not with --candidates)")
    p.add_argument("--overwrite", action="store_true", help="replace a previous output in OUT_DIR")
    p.add_argument("--device", help="cpu, cuda, ... (default: cuda if available)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from segpc.apis.bmdeep import predict_bmdeep

    dump = predict_bmdeep(args.spec, args.nucleus, dict(args.cytoplasm), args.images_dir, args.out_dir,
                          aggregate=args.aggregate, device=args.device, overwrite=args.overwrite,
                          candidates=args.candidates, tta=args.tta)
    n = sum(len(img["cells"]) for img in dump["images"])
    print(f"{len(dump['images'])} images, {n} cells → {args.out_dir}/")


if __name__ == "__main__":
    sys.exit(run(main))
