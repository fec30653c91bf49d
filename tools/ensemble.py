"""Ensemble prediction dumps: python tools/ensemble.py REF.pkl OTHER.pkl ... --out ENS.pkl."""
import argparse
import sys

from segpc.cli import run


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="IoU-matched majority vote of prediction dumps (tools/test.py --out), the SegPC-2021 "
                    "winners' scheme. Every reference cell takes from each other dump its best-IoU cell "
                    "if IoU >= --min-iou; when all (or --quorum K) of them do, cell and nucleus are "
                    "voted pixel by pixel (more than half of the voters; ties go to the reference), "
                    "else the reference cell is kept. Cells no reference cell matched are added "
                    "(a cell matching one already added from an earlier dump is dropped).")
    p.add_argument("ref", metavar="REF.pkl", help="the reference dump: its cells drive the vote")
    p.add_argument("others", nargs="+", metavar="OTHER.pkl", help="the other models' dumps")
    p.add_argument("--min-iou", type=float, default=0.85,
                   help="minimum whole-cell IoU for a cell to contribute (default 0.85)")
    p.add_argument("--quorum", type=int, metavar="K",
                   help="vote when at least K other dumps contribute (default: all of them)")
    p.add_argument("--out", required=True, metavar="ENS.pkl", help="write the ensembled dump here")
    p.add_argument("--submission", metavar="DIR",
                   help="also write the challenge submission: <id>_<k>.bmp per cell (nucleus 40, cytoplasm 20)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from segpc.ensemble import ensemble_dumps
    from segpc.structures import load_dump, save_dump, write_submission

    paths = [args.ref, *args.others]
    dumps = [load_dump(p) for p in paths]
    ens = ensemble_dumps(dumps, min_iou=args.min_iou, quorum=args.quorum, sources=paths)
    save_dump(ens, args.out)
    s = ens["ensemble"]
    n = sum(len(img["cells"]) for img in ens["images"])
    print(f"{len(ens['images'])} images, {n} cells: {s['voted']} voted, {s['kept']} reference cells kept "
          f"as they are, {s['added']} added from the other dumps ({s['duplicates']} duplicates dropped)")
    print(f"dump: {args.out}")
    if args.submission:
        write_submission(ens, args.submission)
        print(f"submission: {args.submission}")


if __name__ == "__main__":
    sys.exit(run(main))
