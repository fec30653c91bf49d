"""Training: what ``tools/train.py`` and ``tools/dist_train.sh`` run."""
from __future__ import annotations

import itertools
from typing import Optional, Union

from segpc.apis.config import check_data, cpu_threads, load_config

_RUNS = itertools.count()  # trainings started in this process


def train(config: str, work_dir: Optional[str] = None, resume: Union[bool, str] = False,
          amp: bool = False, cfg_options: Optional[dict] = None, launcher: str = "none"):
    """Train ``config``; returns the mmengine ``Runner`` after training.

    ``resume=True`` continues from the latest checkpoint in the work dir, a path resumes from
    that checkpoint. ``launcher='pytorch'`` is set by ``tools/dist_train.sh`` (torchrun): on
    GPUs it is mmengine's NCCL launch, on CPUs gloo.
    """
    import torch
    from mmengine.runner import Runner

    from segpc.engine.launch import setup_launcher
    from segpc.engine.pretrained import resolve_backbone_init

    cfg = load_config(config, cfg_options, work_dir)
    check_data(cfg)
    resolve_backbone_init(cfg)
    if amp:
        if not torch.cuda.is_available():
            from segpc.io import SegPCError
            raise SegPCError(None, "--amp needs a CUDA GPU (mixed precision is not used on CPU)")
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.loss_scale = "dynamic"
    if resume:
        from mmengine.runner import find_latest_checkpoint

        from segpc.engine.checkpoint import check_checkpoint

        cfg.resume = True
        cfg.load_from = resume if isinstance(resume, str) else None
        latest = resume if isinstance(resume, str) else find_latest_checkpoint(cfg.work_dir)
        if latest is not None:  # none in the work dir: mmengine starts from scratch
            check_checkpoint(latest, "checkpoint to resume from")
    check_load_from(cfg)
    own_visualizer(cfg, next(_RUNS))
    cpu_threads()
    setup_launcher(cfg, launcher)
    runner = Runner.from_cfg(cfg)
    runner.train()
    shutdown_distributed()
    return runner


def own_visualizer(cfg, run: int) -> None:
    """Give the ``run``-th training of this process (from 0) a visualizer of its own.

    mmengine builds the visualizer by name (``get_instance``) and mmdet's and mmseg's configs all
    name it ``visualizer``: a second training in one process (``run.py --bmdeep`` trains three)
    would get the first one's, and write its scalars into the first run's folder."""
    vis = cfg.get("visualizer")
    if run and isinstance(vis, dict):
        vis["name"] = f"{vis.get('name', 'visualizer')}_{run}"


def check_load_from(cfg) -> None:
    """A local ``load_from`` (weights to start from, e.g. COCO-trained) missing or corrupt: one line."""
    import os.path as osp

    from segpc.engine.checkpoint import check_checkpoint
    from segpc.io import SegPCError

    path = cfg.get("load_from")
    if not path or "://" in path:
        return
    if not osp.isfile(path):
        raise SegPCError(path, "checkpoint to start from (load_from) not found: download the file named in "
                               "the config, or pass --cfg-options load_from=PATH (load_from=None: no weights)")
    check_checkpoint(path, "checkpoint to start from (load_from)")


def shutdown_distributed() -> None:
    """Wait for every process, then close the process group: exiting with a live gloo group can
    abort a rank (``terminate called without an active exception``) while others still save."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
