"""``UnfreezeBackboneHook``: heads-only training first, then all layers, in one run."""
from __future__ import annotations

import gc

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmdet.registry import HOOKS
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn import GroupNorm, LayerNorm


@HOOKS.register_module()
class UnfreezeBackboneHook(Hook):
    """From epoch ``epoch`` on (0-based), train the backbone too.

    The config freezes the backbone for the first phase (ResNet ``frozen_stages=4``: stem and
    all stages without gradients, in eval mode). At the start of epoch ``epoch`` (also after a
    resume past it) this hook sets ``frozen_stages`` to ``frozen_stages`` (default -1: nothing
    frozen), gives the parameters their gradients back (normalisation layers as their
    ``norm_cfg.requires_grad`` says) and, in distributed training, wraps the model again so that
    DistributedDataParallel synchronises the new gradients. The optimizer already holds every
    parameter (mmengine builds it over all of them), so nothing else changes; the learning rate
    is the param schedulers' business.
    """

    priority = "NORMAL"

    def __init__(self, epoch: int, frozen_stages: int = -1) -> None:
        self.epoch = epoch
        self.frozen_stages = frozen_stages
        self.unfrozen = False

    def before_train_epoch(self, runner) -> None:
        if self.unfrozen or runner.epoch < self.epoch:
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        backbone = model.backbone
        norm_grad = getattr(backbone, "norm_cfg", {}).get("requires_grad", True)
        for m in backbone.modules():
            is_norm = isinstance(m, (_BatchNorm, GroupNorm, LayerNorm))
            for p in m.parameters(recurse=False):
                p.requires_grad_(norm_grad if is_norm else True)
        backbone.frozen_stages = self.frozen_stages
        if hasattr(backbone, "_freeze_stages"):
            backbone._freeze_stages()
        model.train()
        if is_model_wrapper(runner.model):
            stale = runner.model
            runner.model = runner.wrap_model(runner.cfg.get("model_wrapper_cfg"), model)
            del stale
            gc.collect()  # free the stale DDP reducer now, not at exit after its process group is gone
        self.unfrozen = True
        trainable = sum(p.numel() for p in backbone.parameters() if p.requires_grad)
        runner.logger.info(f"UnfreezeBackboneHook: epoch {runner.epoch}: backbone trainable "
                           f"({trainable} parameters, frozen_stages={self.frozen_stages})")
