# The Sartorius Mask R-CNN shrunk for tests and CPU demos: a narrow ResNet-18 from scratch, half-size
# images, a handful of iterations, on synthetic data (tools/make_synthetic.py --format sartorius):
#   data/sartorius_synthetic/{train,val}/<id>.png, annotations/{train,val}.json
_base_ = './mask_rcnn_r50_fpn.py'

data_root = 'data/sartorius_synthetic/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomChoiceResize', scales=[(704, 240), (704, 260), (704, 280)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.75, direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(704, 260), keep_ratio=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, data_prefix=dict(img='val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(data_root=data_root)
test_evaluator = val_evaluator

model = dict(
    backbone=dict(depth=18, base_channels=16, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=128),
        mask_roi_extractor=dict(out_channels=32),
        mask_head=dict(in_channels=32, conv_out_channels=32, num_convs=2)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300), rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=300), rcnn=dict(max_per_img=150)))

# Longer runs: --cfg-options train_cfg.max_iters=N (the learning rate stays constant after warm-up).
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4, val_interval=2)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20)]
optim_wrapper = dict(optimizer=dict(lr=0.02), clip_grad=dict(max_norm=10.0))
auto_scale_lr = dict(enable=False)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(by_epoch=False, interval=2))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
