"""Parameters and CPU seconds per training step of every model-zoo config.

    python benchmarks/bench_model_zoo.py [--size 320 256] [--batch 2] [--steps 3] [--configs ...]

Each config is built as configured (backbone from scratch: no download), at the stated image size
(long side, short side), and trained for --steps steps on synthetic SegPC images after one
warm-up step; the median step time is reported. Prints a markdown table for configs/README.md.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from segpc.apis.config import load_config, set_img_scale
from segpc.datasets.convert import write_coco
from segpc.datasets.synthetic import write_splits
from segpc.engine.launch import replace_norm_type

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [f"{m}_{b}" for m in ("mask_rcnn", "htc", "scnet")
           for b in ("resnet50", "resnet101", "resnest50", "resnest101")]


def measure(name: str, root: Path, size: tuple[int, int], batch: int, steps: int) -> tuple[float, float]:
    from mmdet.registry import DATASETS, MODELS
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.logging import MMLogger

    MMLogger.get_instance("bench_model_zoo", log_level="ERROR")  # quiet init_weights' report

    cfg = load_config(str(REPO / "configs" / f"{name}.py"), {"data_root": str(root)})
    set_img_scale(cfg, size)
    cfg.model.backbone.init_cfg = None
    replace_norm_type(cfg.model)  # one CPU process: SyncBN runs as BN, as in training
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    times = []
    for i in range(steps + 1):
        batch_data = pseudo_collate([dataset[(i * batch + j) % len(dataset)] for j in range(batch)])
        t = time.perf_counter()
        model.train_step(batch_data, optim)
        if i:  # the first step warms up allocators and caches
            times.append(time.perf_counter() - t)
    return params, statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, nargs=2, default=(320, 256), metavar=("LONG", "SHORT"))
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--configs", nargs="+", default=CONFIGS)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        h, w = args.size[1], args.size[0]
        write_splits(root, {"train": 8}, seed=0, size=(h, w), empty_prob=0.0)
        write_coco(root / "train", root / "annotations" / "train.json",
                   semantic_dir=root / "semantic" / "train", progress=False)
        print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
              f"torch {torch.__version__}; image {args.size[0]}x{args.size[1]}, batch {args.batch}")
        print("| config | parameters (M) | CPU s / training step |")
        print("|---|---:|---:|")
        for name in args.configs:
            params, step = measure(name, root, tuple(args.size), args.batch, args.steps)
            print(f"| {name} | {params:.1f} | {step:.2f} |", flush=True)


if __name__ == "__main__":
    main()
