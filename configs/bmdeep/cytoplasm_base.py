# bmdeep stage 2, the base of the per-scale cytoplasm networks (cytoplasm_s*.py set the scale):
# DeepLabv3+ (mmseg's ResNetV1c-50, output stride 8) with the two-level attention head
# (RegionalAttentionASPPHead, segpc/models/bmdeep_head.py) on the 4-channel crop of one nucleus
# (equalised image + that nucleus, 256x256; SegPCCropDataset, segpc/datasets/crop_dataset.py),
# sigmoid output of the cell region, threshold 0.48. From scratch (no 4-channel pretrained
# weights), Adam 1e-4, binary cross-entropy.
_base_ = [
    'mmseg::_base_/models/deeplabv3plus_r50-d8.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py',
]
custom_imports = dict(imports=['segpc.register'], allow_failed_imports=False)

data_root = 'data/segpc/'
crop_size = 256
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    pretrained=None,
    data_preprocessor=dict(mean=[0.0] * 4, std=[255.0] * 4, bgr_to_rgb=False, size=(crop_size, crop_size)),
    backbone=dict(in_channels=4, norm_cfg=norm_cfg),
    decode_head=dict(type='RegionalAttentionASPPHead', num_classes=2, out_channels=1, threshold=0.48,
                     norm_cfg=norm_cfg,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    auxiliary_head=dict(num_classes=2, out_channels=1, threshold=0.48, norm_cfg=norm_cfg,
                        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=0.4)))

train_pipeline = [
    dict(type='LoadSegPCCrop'),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PackSegInputs'),
]
test_pipeline = [dict(type='LoadSegPCCrop'), dict(type='PackSegInputs')]
train_dataloader = dict(
    batch_size=8, num_workers=2, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='SegPCCropDataset', data_root=data_root, ann_file='annotations/train.json',
                 data_prefix=dict(img_path='train/x/'), crop_size=crop_size, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SegPCCropDataset', data_root=data_root, ann_file='annotations/validation.json',
                 data_prefix=dict(img_path='validation/x/'), crop_size=crop_size, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(_delete_=True, type='Adam', lr=1e-4))
param_scheduler = [dict(type='PolyLR', eta_min=1e-6, power=0.9, begin=0, end=20000, by_epoch=False)]
