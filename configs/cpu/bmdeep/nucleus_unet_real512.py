# bmdeep stage 1 sized for 2 CPU cores on the real SegPC images at 512x384
# (benchmarks/real_segpc/run.py --bmdeep configs/cpu/bmdeep/two_stage_real512.py): the U-Net of
# configs/bmdeep/nucleus_unet.py at 16..256 channels (5 stages, as published), whole images at
# their own size (no resize: input_size is what the predictor feeds it), nuclei (about 6 % of the
# pixels) weighted 2x in the loss, Adam 1e-3.
_base_ = '../../bmdeep/nucleus_unet.py'

data_root = 'data/segpc_real512/'
input_size = (384, 512)  # (H, W): the images' own size
model = dict(
    data_preprocessor=dict(size=input_size),
    backbone=dict(base_channels=16),
    decode_head=dict(in_channels=16, channels=16, loss_decode=dict(class_weight=[2.0])),
    auxiliary_head=dict(in_channels=32, channels=16, loss_decode=dict(class_weight=[2.0])))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSegPCNucleusMap'),
    dict(type='Resize', scale=input_size[::-1], keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=input_size[::-1], keep_ratio=False),
    dict(type='LoadSegPCNucleusMap'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

# 400 iterations at batch 2 (3.4 epochs of 238 images), validated (mmseg's IoU of the nucleus map)
# once at the end; a pilot beside another training ran 3.2 s/iteration.
train_cfg = dict(max_iters=400, val_interval=400)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [dict(type='PolyLR', eta_min=1e-6, power=0.9, begin=0, end=400, by_epoch=False)]
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=400),
                     visualization=dict(type='SegVisualizationHook', draw=False))
randomness = dict(seed=0)
