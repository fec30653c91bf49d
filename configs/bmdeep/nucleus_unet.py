# bmdeep stage 1: the nucleus U-Net (binary nucleus map of the whole image).
# Published inference: input resized to 800x800, x/255, sigmoid, threshold 0.5 (the
# post-processing, segpc/bmdeep/postprocess.py, runs in the two-stage predictor). Trained
# here from scratch with Adam 1e-4 and binary cross-entropy, as the published Keras models.
# Data: data/segpc/{train,validation}/x and annotations/{split}.json (tools/convert_segpc.py).
_base_ = [
    'mmseg::_base_/models/fcn_unet_s5-d16.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py',
]
custom_imports = dict(imports=['segpc.register'], allow_failed_imports=False)

data_root = 'data/segpc/'
input_size = (800, 800)  # (H, W), read by the two-stage predictor; a multiple of 16 (4 downsamplings)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0], size=input_size),
    backbone=dict(norm_cfg=norm_cfg),
    decode_head=dict(num_classes=2, out_channels=1, threshold=0.5, norm_cfg=norm_cfg, 
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    auxiliary_head=dict(num_classes=2, out_channels=1, threshold=0.5, norm_cfg=norm_cfg,
                        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=0.4)),
    test_cfg=dict(mode='whole'))

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
    dict(type='LoadSegPCNucleusMap'),  # scored at the image's own size
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=2, num_workers=2, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='SegPCNucleusDataset', data_root=data_root, ann_file='annotations/train.json',
                 data_prefix=dict(img_path='train/x/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SegPCNucleusDataset', data_root=data_root, ann_file='annotations/validation.json',
                 data_prefix=dict(img_path='validation/x/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(_delete_=True, type='Adam', lr=1e-4))
param_scheduler = [dict(type='PolyLR', eta_min=1e-6, power=0.9, begin=0, end=20000, by_epoch=False)]
