# CPU recipe for the U-Net on the real SegPC-2021 images at their 512x384 copy
# (benchmarks/real_segpc/run.py lays out data/segpc_real512 with the 3-class maps): the
# U-Net of unet_s5-d16_segpc.py narrowed to base width 8 and trained from scratch on
# 256x256 crops with AdamW, by iterations, validating every 150 iterations and keeping the best
# checkpoint by the challenge's mIoU. Sized for 30 minutes on 2 shared CPU cores (pilots: 8 s
# per iteration at base width 16, 4 s at width 8; validation 0.7 s per image at width 8);
# see benchmarks/real_segpc/README.md.
_base_ = './unet_s5-d16_segpc.py'

data_root = 'data/segpc_real512/'
train_dataloader = dict(
    batch_size=4, num_workers=1,
    dataset=dict(data_root=data_root, pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='RandomResize', scale=(512, 384), ratio_range=(0.8, 1.25), keep_ratio=True),
        dict(type='RandomCrop', crop_size=(256, 256), cat_max_ratio=0.9),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='RandomFlip', prob=0.5, direction='vertical'),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackSegInputs'),
    ]))
val_dataloader = dict(
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=[
        dict(type='LoadImageFromFile'),  # 512x384: the images' own size, no resampling
        dict(type='LoadAnnotations'),
        dict(type='PackSegInputs'),
    ]))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='SegPCIoUMetric', iou_metrics=['mIoU', 'mDice']),
    dict(type='SegPCSemanticMetric', data_root=data_root, split_dir='validation'),
]
test_evaluator = val_evaluator
model = dict(
    data_preprocessor=dict(size=(256, 256)),
    backbone=dict(base_channels=8),
    decode_head=dict(in_channels=8, channels=8),
    auxiliary_head=dict(in_channels=16, channels=8))
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=2e-3, weight_decay=1e-4))
train_cfg = dict(max_iters=450, val_interval=150)
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=450, by_epoch=False)]
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=150, max_keep_ckpts=1))
