# CPU recipe for the real SegPC-2021 images at their 512x384 copy (benchmarks/real_segpc/):
# the demo's narrow ResNet-18 Mask R-CNN, from scratch (no pretrained weights), trained by
# iterations with a validation of the challenge's mIoU every `val_interval` iterations and the
# best checkpoint kept by segpc/mIoU. Sized to fit an hour on 2 shared CPU cores (36 min of
# training measured, validation mIoU 0.63); see
# benchmarks/real_segpc/README.md for why this model, size and schedule.
#
# Data: benchmarks/real_segpc/run.py writes data/segpc_real512/{train,validation} and
# annotations/ (238 / 60 images, fixed seed). Run it (or tools/train.py) from the repo root.
_base_ = '../fixture/mask_rcnn_tiny.py'

data_root = 'data/segpc_real512/'
# The images' own size (512, 384): no resampling at test time.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    # Mild scale jitter around the native size (cells of the 2040x1536 originals vary ~2x).
    dict(type='RandomResize', scale=(512, 384), ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type='RandomFlip', prob=0.75, direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackDetInputs'),
]
test_pipeline = _base_.test_pipeline
train_dataloader = dict(
    batch_size=4, num_workers=1,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=1, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(data_root=data_root)
test_evaluator = val_evaluator

# Width 48 (pilot: 48 beat 32, mIoU 0.35 vs 0.00 after 200 iterations, for 1.2x the step time).
model = dict(
    backbone=dict(base_channels=48),
    neck=dict(in_channels=[48, 96, 192, 384]),
    test_cfg=dict(rcnn=dict(max_per_img=100)))

# ~1.5 s/iteration at batch 4 on 2 free cores (pilot), 2-3x more when the cores are shared:
# 1200 iterations (≈ 20 epochs of 238) fit the hour with validation every 300.
train_cfg = dict(max_iters=1200, val_interval=300)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=1200, milestones=[900, 1080], gamma=0.1),
]
default_hooks = dict(
    logger=dict(interval=50, log_metric_by_epoch=False),
    checkpoint=dict(interval=300, max_keep_ckpts=1))
