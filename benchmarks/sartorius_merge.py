"""Flip TTA and the two ways of merging models, measured on synthetic Sartorius data.

    OMP_NUM_THREADS=1 python benchmarks/sartorius_merge.py --work-dir work_dirs/sartorius_merge \\
        [--train 24] [--val 9] [--models 2] [--iters 300]

All with segpc's own functions (what the tools run):

1. synthetic Sartorius data (:func:`write_sartorius_synthetic`, 704x520): ``--train`` and
   ``--val`` images in ``<work dir>/data``, converted to COCO (``tools/convert_sartorius.py``);
2. ``--models`` fixture models (``configs/sartorius/mask_rcnn_fixture.py``), identical but for
   the random seed (0, 1, ...), ``--iters`` iterations each (``tools/train.py``);
3. every model tested on the validation images with and without flip TTA (``tools/test.py
   [--tta] --out``), the dumps merged by the IoU-matched majority vote (``tools/ensemble.py``,
   ``--min-iou``; each model as the reference, both ``--tie`` rules) and by mask NMS
   (``tools/ensemble.py --method nms``, one row per ``--nms-iou``);
4. every dump post-processed as a submission (default thresholds and sizes) and scored with the
   Kaggle AP against the validation COCO file; a table goes to ``<work dir>/results.md`` and
   the numbers to ``results.json``. Steps already done (data, checkpoints, dumps) are reused.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = "configs/sartorius/mask_rcnn_fixture.py"


def score(dump: dict, gt: dict) -> tuple[float, dict]:
    from segpc.datasets.sartorius import postprocess_dump
    from segpc.evaluation.kaggle_ap import evaluate

    kept = postprocess_dump(dump)
    res = evaluate(gt, {name: rles for name, (_, rles) in kept.items()})
    return res.score, {t: r["score"] for t, r in res.per_type.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work-dir", default="work_dirs/sartorius_merge")
    p.add_argument("--train", type=int, default=24)
    p.add_argument("--val", type=int, default=9)
    p.add_argument("--models", type=int, default=2)
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--min-iou", type=float, default=0.5, help="vote: minimum IoU to contribute")
    p.add_argument("--nms-iou", type=float, nargs="+", default=[0.3, 0.4, 0.5],
                   help="NMS: IoU above which a cell is dropped (one row each)")
    args = p.parse_args(argv)

    from segpc.apis.test import test
    from segpc.apis.train import train
    from segpc.datasets.sartorius import write_sartorius_coco
    from segpc.datasets.sartorius_synthetic import write_sartorius_synthetic
    from segpc.ensemble import ensemble_dumps, nms_dumps
    from segpc.evaluation.kaggle_ap import load_coco_truth
    from segpc.structures import load_dump

    work = Path(args.work_dir).resolve()
    root = work / "data"
    t0 = time.time()
    if not (root / "annotations" / "val.json").is_file():
        for split, num, seed in (("train", args.train, 0), ("val", args.val, 1)):
            write_sartorius_synthetic(root, num, seed=seed, split=split, overwrite=True)
            write_sartorius_coco(root / f"{split}.csv", root / split, root / "annotations" / f"{split}.json",
                                 progress=False)
    gt = load_coco_truth(root / "annotations" / "val.json")[0]
    opts = {"data_root": f"{root}/", "train_cfg.max_iters": args.iters, "train_cfg.val_interval": args.iters,
            "default_hooks.checkpoint.interval": args.iters}
    rows, plain, flipped, times = {}, [], [], {}
    for m in range(args.models):
        wd = work / f"model{m}"
        ckpt = wd / f"iter_{args.iters}.pth"
        if not ckpt.is_file():
            t = time.time()
            train(CONFIG, work_dir=str(wd), cfg_options={**opts, "randomness.seed": m})
            times[f"train model {m}"] = time.time() - t
        for tta, bucket in ((False, plain), (True, flipped)):
            out = wd / ("tta.json" if tta else "plain.json")
            if not out.is_file():
                t = time.time()
                test(CONFIG, str(ckpt), out=str(out), work_dir=str(wd), cfg_options=dict(opts), tta=tta)
                times[f"test model {m}{' TTA' if tta else ''}"] = time.time() - t
            bucket.append(load_dump(out))
            rows[f"model {m}" + (" + flip TTA" if tta else "")] = score(bucket[-1], gt)
    for name, dumps in (("", plain), (" (TTA models)", flipped)):
        if len(dumps) < 2:
            continue
        for ref in range(len(dumps)):  # the vote depends on which model is the reference
            order = [dumps[ref]] + dumps[:ref] + dumps[ref + 1:]
            for tie in ("out", "reference"):
                rows[f"vote, reference model {ref}, min IoU {args.min_iou}, tie {tie}{name}"] = score(
                    ensemble_dumps(order, min_iou=args.min_iou, tie=tie), gt)
        for thr in args.nms_iou:
            rows[f"mask NMS, IoU {thr}{name}"] = score(nms_dumps(dumps, thr), gt)

    types = sorted({t for _, per in rows.values() for t in per})
    lines = [f"Synthetic Sartorius, {args.train} train / {args.val} validation images (704x520), "
             f"{args.models} fixture models x {args.iters} iterations; Kaggle AP on the validation images "
             "after the default post-processing.", "",
             "| predictions | AP | " + " | ".join(types) + " |", "|---|---:|" + "---:|" * len(types)]
    for name, (s, per) in rows.items():
        lines.append(f"| {name} | {s:.4f} | " + " | ".join(f"{per.get(t, 0):.4f}" for t in types) + " |")
    lines += ["", f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
              f"total {time.time() - t0:.0f} s. " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())]
    text = "\n".join(lines)
    print(text)
    (work / "results.md").write_text(text + "\n")
    (work / "results.json").write_text(json.dumps({"args": vars(args), "rows": rows, "times": times}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
