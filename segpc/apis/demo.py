"""``make demo``: synthetic data → COCO → train → test → submission → mIoU → overlays, on a CPU."""
from __future__ import annotations

import glob
import os.path as osp
import time
from pathlib import Path
from typing import Optional

from segpc.io import SegPCError

DEMO_CONFIG = "configs/fixture/mask_rcnn_tiny.py"


def _step(msg: str) -> None:
    print(f"\n==> {msg}", flush=True)


def prepare_synthetic(root: str, num_train: int, num_val: int, seed: int = 0) -> None:
    """Write the synthetic splits and their COCO files under ``root`` (skipped if already there)."""
    from segpc.datasets.convert import write_coco
    from segpc.datasets.synthetic import write_splits

    root_p = Path(root)
    splits = {"train": num_train, "validation": num_val}
    if not all((root_p / s / "x").is_dir() for s in splits):
        write_splits(root_p, splits, seed=seed)
    for split in splits:
        ann = root_p / "annotations" / f"{split}.json"
        if not ann.is_file():
            write_coco(root_p / split, ann, semantic_dir=root_p / "semantic" / split)


def best_checkpoint(work_dir: str) -> str:
    """The checkpoint saved as best by the validation metric (else the latest)."""
    best = sorted(glob.glob(osp.join(work_dir, "best_segpc_mIoU_*.pth")), key=osp.getmtime)
    if best:
        return best[-1]
    last = osp.join(work_dir, "last_checkpoint")
    if osp.isfile(last):
        return open(last).read().strip()
    raise SegPCError(work_dir, "no checkpoint found: did training run?")


def write_overlays(dump: dict, split_dir: str, out_dir: str, num: int = 4) -> list[str]:
    """Prediction-vs-ground-truth overlay PNGs for the first ``num`` images that have cells."""
    from segpc.io import read_image, read_mask, split_mask_stem
    from segpc.structures import cell_to_mask
    from segpc.visualization import write_comparison

    split = Path(split_dir)
    written = []
    for img in dump["images"]:
        name = glob.escape(img["name"])  # an image name may hold glob characters ([, *, ?)
        gt_files = sorted(p for p in (split / "y").glob(f"{name}_*.*")
                          if split_mask_stem(p.stem)[0] == img["name"])  # not those of image <name>_a
        if not gt_files:
            continue
        image_path = next((split / "x").glob(f"{name}.*"), None)
        if image_path is None:
            raise SegPCError(split / "x", f"no image {img['name']}.* for its masks ({gt_files[0].name}, ...)")
        path = osp.join(out_dir, f"overlay_{img['name']}.png")
        write_comparison(path, read_image(image_path), [cell_to_mask(c) for c in img["cells"]],
                         [read_mask(f) for f in gt_files], title=f"({len(img['cells'])} cells)")
        written.append(path)
        if len(written) == num:
            break
    return written


def run_demo(work_dir: str = "work_dirs/demo", data_root: str = "data/synthetic",
             config: str = DEMO_CONFIG, num_train: int = 160, num_val: int = 40, seed: int = 0,
             max_iters: Optional[int] = None) -> float:
    """Run the whole pipeline; returns the validation mIoU computed from the submission files."""
    from segpc.apis.test import test
    from segpc.apis.train import train
    from segpc.evaluation.miou import evaluate_dirs
    from segpc.io import write_json
    from segpc.structures import load_dump

    t0 = time.time()
    _step(f"synthetic SegPC data → {data_root} ({num_train} train / {num_val} validation images)")
    prepare_synthetic(data_root, num_train, num_val, seed)
    options = {"data_root": data_root, "randomness.seed": seed}  # the same seed, the same numbers
    if max_iters:
        options["train_cfg.max_iters"] = max_iters
    _step(f"training {config} on CPU → {work_dir}")
    t_train = time.time()
    train(config, work_dir=work_dir, cfg_options=dict(options))
    t_train = time.time() - t_train
    ckpt = best_checkpoint(work_dir)
    pred, sub = osp.join(work_dir, "predictions.json"), osp.join(work_dir, "submission")
    _step(f"testing {osp.basename(ckpt)} → {pred}, {sub}/")
    test(config, ckpt, out=pred, submission=sub, work_dir=work_dir, cfg_options=dict(options),
         overwrite=True)  # the demo's own work dir: a rerun replaces its submission
    _step("scoring the submission with the challenge's metric")
    val_dir = osp.join(data_root, "validation")
    result = evaluate_dirs(val_dir, sub)
    write_json(result.to_dict(), osp.join(work_dir, "miou.json"))
    overlays = write_overlays(load_dump(pred), val_dir, work_dir)
    print(f"\nmIoU: {result.mIoU:.6f}  ({result.num_gt} cells, {result.num_pred} predictions; "
          f"training {t_train / 60:.1f} min, total {(time.time() - t0) / 60:.1f} min)")
    print(f"checkpoint:  {ckpt}\npredictions: {pred}\nsubmission:  {sub}/\n"
          f"scores:      {osp.join(work_dir, 'miou.json')}\noverlays:    " + "\n             ".join(overlays))
    return result.mIoU
