"""Run by tests/test_pannuke_recipe.py under torchrun (2 CPU processes, gloo): after
UnfreezeBackboneHook, the backbone's gradients are averaged across the processes.

Prints ``synced <bool>`` (rank 0) for the hook's model and, as the control, for the model
wrapped before unfreezing.
"""
import faulthandler
import gc
import sys
from types import SimpleNamespace

import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel
from mmengine.runner import Runner

import segpc.register  # noqa: F401
from mmdet.models.backbones import ResNet
from segpc.engine.hooks import UnfreezeBackboneHook


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = ResNet(depth=18, base_channels=4, frozen_stages=4, norm_eval=True)
        self.head = torch.nn.Linear(32, 1)

    def forward(self, x):
        return self.head(self.backbone(x)[-1].mean((2, 3))).sum()


def backbone_grads_synced(wrapper, rank):
    wrapper.zero_grad()
    torch.manual_seed(100 + rank)  # different data on each process
    wrapper(torch.randn(2, 3, 32, 32)).backward()
    g = wrapper.module.backbone.conv1.weight.grad.flatten()
    gathered = [torch.zeros_like(g) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, g)
    return all(torch.allclose(gathered[0], x) for x in gathered[1:])


def main():
    faulthandler.dump_traceback_later(240, exit=True)  # never hang a test run
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = Net()
    cfg = {"model_wrapper_cfg": dict(type="MMDistributedDataParallel", device_ids=None, broadcast_buffers=False)}
    fake = SimpleNamespace(distributed=True, cfg=cfg, logger=SimpleNamespace(info=lambda m: None))

    def wrap(wrapper_cfg, module):
        return Runner.wrap_model(fake, dict(wrapper_cfg), module)

    old = MMDistributedDataParallel(module=model, device_ids=None, broadcast_buffers=False)
    runner = SimpleNamespace(model=old, epoch=2, cfg=cfg, wrap_model=wrap, logger=fake.logger)
    UnfreezeBackboneHook(epoch=2).before_train_epoch(runner)
    synced = backbone_grads_synced(runner.model, rank)
    control = backbone_grads_synced(old, rank)  # the wrapper built while the backbone was frozen
    if rank == 0:
        print(f"synced {synced}\ncontrol {control}", flush=True)
    del runner, old, model  # the DDP reducers go before the process group they use
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
