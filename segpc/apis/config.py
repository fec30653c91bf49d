"""Loading a segpc config the way every tool does: options, data root, work dir, environment."""
from __future__ import annotations

import os
import os.path as osp
from typing import Any, Optional

from mmengine.config import Config, DictAction  # noqa: F401  (DictAction re-exported for tools)

from segpc.io import SegPCError


def replace_values(node: Any, key: str, old: Any, new: Any) -> int:
    """Set every ``key`` whose value is ``old`` to ``new`` in a config tree; returns the count."""
    n = 0
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key and v == old:
                node[k] = new
                n += 1
            else:
                n += replace_values(v, key, old, new)
    elif isinstance(node, (list, tuple)):
        for v in node:
            n += replace_values(v, key, old, new)
    return n


def load_config(path: str, cfg_options: Optional[dict] = None, work_dir: Optional[str] = None) -> Config:
    """Load ``path``, merge ``--cfg-options`` and set ``work_dir`` (default ``work_dirs/<name>``).

    ``data_root=DIR`` in the options moves every dataset and metric that used the config's
    data root to ``DIR``. mmengine evaluates a config file when it reads it, so
    ``data_root=data_root`` in a dataset (or ``{{_base_.data_root}}``) is a copy of the string,
    not a reference; merging ``data_root=DIR`` changes only the top-level key. Hence the walk:
    every ``data_root`` equal to the config's own is replaced.
    """
    if not osp.isfile(path):
        raise SegPCError(path, "config not found")
    cfg = Config.fromfile(path)
    old_root = cfg.get("data_root")
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    new_root = cfg.get("data_root")
    if old_root is not None and new_root != old_root:
        if not new_root.endswith("/"):
            new_root = cfg.data_root = new_root + "/"
        replace_values(cfg._cfg_dict, "data_root", old_root, new_root)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("work_dirs", osp.splitext(osp.basename(path))[0])
    return cfg


def check_data(cfg: Config, keys: tuple = ("train_dataloader", "val_dataloader")) -> None:
    """Fail early, in one line, when a split's annotation file is missing."""
    from segpc.datasets import pannuke
    from segpc.datasets.segpc_dataset import HOW_TO_GET_DATA

    for key in keys:
        loader = cfg.get(key)
        ds = loader.get("dataset") if loader else None
        if ds and ds.get("ann_file"):
            path = osp.join(ds.get("data_root") or "", ds["ann_file"])
            if ds.get("type") == "PanNukeDataset":
                how = pannuke.HOW_TO_GET_DATA
            elif ds.get("type") == "SartoriusDataset":
                from segpc.datasets.sartorius_dataset import HOW_TO_GET_DATA as how
            else:
                how = HOW_TO_GET_DATA
            if not osp.isfile(path):
                raise SegPCError(path, f"annotation file not found: {how}")


def cpu_threads() -> None:
    """Leave torch's intra-op threads at the core count of this process's share (torchrun)."""
    import torch

    world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if world > 1 and not torch.cuda.is_available():
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))


def set_img_scale(cfg: Config, scale: tuple[int, int]) -> None:
    """Train and test at ``scale`` = (long side, short side): rewrites every Resize in the pipelines.

    Multi-scale training keeps its spread: ``RandomChoiceResize`` scales are scaled by the same
    factor as the nominal (longest) scale.
    """
    def visit(node: Any) -> None:
        if isinstance(node, dict):
            t = node.get("type")
            if t == "Resize" and "scale" in node:
                node["scale"] = tuple(scale)
            elif t == "RandomChoiceResize" and "scales" in node:
                ref = max(s[1] for s in node["scales"])
                node["scales"] = [(scale[0], max(1, round(scale[1] * s[1] / ref))) for s in node["scales"]]
            for v in node.values():
                visit(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                visit(v)

    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if cfg.get(key):
            visit(cfg[key])
