"""Distributed launch that also works without CUDA (gloo on CPU).

mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device`` and wraps the model in DDP with
``device_ids=[LOCAL_RANK]``; both fail on a CPU-only torch. On such machines segpc initialises the
process group with gloo itself (mmengine then skips its own init) and gives the runner a
model wrapper without device ids. SyncBN, which needs CUDA, becomes plain BN.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from mmengine.config import Config

from segpc.io import SegPCError


def replace_norm_type(node: Any, old: str = "SyncBN", new: str = "BN") -> Any:
    """Recursively replace ``norm_cfg`` types ``old`` → ``new`` in a config tree (in place)."""
    if isinstance(node, dict):
        if node.get("type") == old and ("requires_grad" in node or len(node) == 1):
            node["type"] = new
        for v in node.values():
            replace_norm_type(v, old, new)
    elif isinstance(node, (list, tuple)):
        for v in node:
            replace_norm_type(v, old, new)
    return node


def setup_launcher(cfg: Config, launcher: str) -> None:
    """Prepare ``cfg`` (and the process group on CPU) for ``launcher`` in {'none', 'pytorch', ...}."""
    cfg.launcher = launcher
    if launcher == "none" or torch.cuda.is_available():
        return
    if launcher != "pytorch":
        raise SegPCError(None, f"--launcher {launcher} needs CUDA GPUs (mmengine's {launcher} launch uses "
                               "NCCL); on CPUs use tools/dist_train.sh (torchrun, --launcher pytorch, gloo)")
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    cfg.setdefault("env_cfg", {}).setdefault("dist_cfg", {})["backend"] = "gloo"
    cfg.model_wrapper_cfg = dict(
        type="MMDistributedDataParallel",
        device_ids=None,  # CPU modules: mmengine would otherwise pass [LOCAL_RANK]
        broadcast_buffers=False,
        find_unused_parameters=cfg.get("find_unused_parameters", False),
    )
    replace_norm_type(cfg.model)
