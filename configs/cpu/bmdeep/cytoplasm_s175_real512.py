# bmdeep stage 2 at crop scale 1.75 sized for 2 CPU cores on the real SegPC images at 512x384
# (benchmarks/real_segpc/run.py --bmdeep configs/cpu/bmdeep/two_stage_real512.py).
# At 512x384 the nucleus windows at this scale are about 110-165 px: crops at 128x128 (resized)
# instead of 256 (mostly padding here). The network of configs/bmdeep/cytoplasm_base.py narrowed:
# ResNetV1c-18 at 16..128 channels, output stride 8 (a 16x16 map, the published 256 px input at
# output stride 16 gives the same), so the published atrous rates 6/12/18; Adam 1e-3.
_base_ = '../../bmdeep/cytoplasm_s175.py'

data_root = 'data/segpc_real512/'
crop_size = 128
model = dict(
    data_preprocessor=dict(size=(crop_size, crop_size)),
    backbone=dict(depth=18, stem_channels=16, base_channels=16),
    decode_head=dict(in_channels=128, c1_in_channels=16, c1_channels=8, channels=32, dilations=(1, 6, 12, 18)),
    auxiliary_head=dict(in_channels=64, channels=16))
train_dataloader = dict(dataset=dict(data_root=data_root, crop_size=crop_size))
val_dataloader = dict(dataset=dict(data_root=data_root, crop_size=crop_size))
test_dataloader = val_dataloader

# 800 iterations at batch 8 (5 epochs of the 1,281 training cells), validated (mmseg's IoU
# of the cell in the crops) once at the end; a pilot beside another training ran 0.63 s/iteration.
train_cfg = dict(max_iters=800, val_interval=800)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [dict(type='PolyLR', eta_min=1e-6, power=0.9, begin=0, end=800, by_epoch=False)]
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=800),
                     visualization=dict(type='SegVisualizationHook', draw=False))
randomness = dict(seed=0)
