"""DeepLabv3+ head with the two-level attention of the bmdeep cytoplasm network.

After mmseg's ``DepthwiseSeparableASPPHead`` (the five ASPP branches: image pooling, 1x1 and
the atrous convolutions), as in the published ``Deeplabv3pa`` (``src/models/model_cyt.py``,
lines 296-373 of bmdeep/SegPC2021):

1. optionally (``refine_branches``) each branch is refined: two 3x3 convolutions, dropout 0.5,
   concatenated with the branch, two 3x3 convolutions;
2. **channel attention** over every branch: squeeze-and-excitation with weights shared by the
   branches (global average pool → ``C → C → C/8 → C``, sigmoid);
3. **attention across the atrous scales**: the branches stacked on a scale axis and fused by a
   3-D convolution spanning all of them (``Conv3D(C, (1, 1, n))`` in the published code);

then two 3x3 convolutions and mmseg's DeepLabv3+ decoder (low-level features, separable
convolutions, classifier).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.sep_aspp_head import DepthwiseSeparableASPPHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS


class SharedChannelAttention(nn.Module):
    """Squeeze-and-excitation ``C → C → hidden → C`` (sigmoid), no biases."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels, bias=False), nn.ReLU(inplace=True),
            nn.Linear(channels, hidden, bias=False), nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=(2, 3)))[:, :, None, None]


class BranchRefine(nn.Module):
    """conv-conv-dropout, concatenated with the input, conv-conv (3x3, ReLU)."""

    def __init__(self, channels: int, dropout: float, conv_cfg=None):
        super().__init__()

        def conv(cin):
            return ConvModule(cin, channels, 3, padding=1, conv_cfg=conv_cfg, norm_cfg=None,
                              act_cfg=dict(type='ReLU'))

        self.inner = nn.Sequential(conv(channels), conv(channels), nn.Dropout(dropout))
        self.outer = nn.Sequential(conv(2 * channels), conv(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer(torch.cat([x, self.inner(x)], dim=1))


@MODELS.register_module()
class RegionalAttentionASPPHead(DepthwiseSeparableASPPHead):
    """DeepLabv3+ with channel attention over the ASPP branches and attention across them.

    Args:
        refine_branches: the published per-branch convolution block (step 1 of the module doc).
        branch_dropout: its dropout.
        attention_hidden: hidden width of the channel attention (default ``channels // 8``).
        Others: mmseg's ``DepthwiseSeparableASPPHead``.
    """

    def __init__(self, refine_branches: bool = True, branch_dropout: float = 0.5,
                 attention_hidden: int | None = None, **kwargs):
        super().__init__(**kwargs)
        n, c = len(self.dilations) + 1, self.channels
        self.branch_refine = nn.ModuleList(
            [BranchRefine(c, branch_dropout, self.conv_cfg) for _ in range(n)]) if refine_branches else None
        self.channel_attention = SharedChannelAttention(c, attention_hidden or max(c // 8, 1))
        self.scale_attention = nn.Sequential(nn.Conv3d(c, c, (n, 1, 1), bias=False), nn.ReLU(inplace=True))
        # replaces the ASPP head's concatenation bottleneck
        self.bottleneck = nn.Sequential(
            ConvModule(c, c, 3, padding=1, conv_cfg=self.conv_cfg, norm_cfg=None, act_cfg=dict(type='ReLU')),
            ConvModule(c, c, 3, padding=1, conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg,
                       act_cfg=self.act_cfg))

    def forward(self, inputs):
        x = self._transform_inputs(inputs)
        branches = [resize(self.image_pool(x), size=x.size()[2:], mode='bilinear',
                           align_corners=self.align_corners)]
        branches.extend(self.aspp_modules(x))
        if self.branch_refine is not None:
            branches = [refine(b) for refine, b in zip(self.branch_refine, branches)]
        stacked = torch.stack([self.channel_attention(b) for b in branches], dim=2)  # B, C, n, h, w
        output = self.bottleneck(self.scale_attention(stacked).squeeze(2))
        if self.c1_bottleneck is not None:
            c1_output = self.c1_bottleneck(inputs[0])
            output = resize(output, size=c1_output.shape[2:], mode='bilinear', align_corners=self.align_corners)
            output = torch.cat([output, c1_output], dim=1)
        return self.cls_seg(self.sep_bottleneck(output))
