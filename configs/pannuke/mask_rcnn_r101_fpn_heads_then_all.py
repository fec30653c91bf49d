# Mask R-CNN R-101-FPN on PanNuke (five nucleus classes), the published heads-then-all recipe:
# COCO-trained weights, 20 epochs with the backbone frozen (FPN, RPN, box and mask heads train;
# lr linear 1e-3 -> 9.9e-5), then 30 epochs of all layers (lr linear 1e-4 -> 3.33e-6), in one
# run: UnfreezeBackboneHook gives the backbone its gradients back at epoch 20 and the param
# schedulers below jump the lr to 1e-4 there. SGD momentum 0.9, weight decay 1e-4, gradient
# clipping at norm 5; horizontal and vertical flips, rotation up to 10 degrees.
#
# Data (README.md, "PanNuke"): tools/convert_pannuke.py writes data/pannuke/fold{1,2,3}/
# (images/ and annotations.json); train on fold 1, validate on fold 2 (best checkpoint by
# pannuke/bPQ), test on fold 3. Other splits: --cfg-options with the ann_file/data_prefix keys.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r101_fpn_1x_coco.py'
custom_imports = dict(imports=['segpc.register'], allow_failed_imports=False)

# COCO-trained Mask R-CNN R-101-FPN of mmdet's model zoo, as a local file (never downloaded):
# https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/mask_rcnn_r101_fpn_1x_coco/mask_rcnn_r101_fpn_1x_coco_20200204-1efe0ed5.pth
# Elsewhere: --cfg-options load_from=PATH. Its 80-class box and mask predictors do not fit the
# five classes and start from scratch (mmengine reports the skipped tensors).
load_from = 'checkpoints/mask_rcnn_r101_fpn_1x_coco_20200204-1efe0ed5.pth'

dataset_type = 'PanNukeDataset'
data_root = 'data/pannuke/'

# 256x256 tiles are upsampled 2x: nuclei of 10-40 px become 20-80 px, seen by the finest FPN
# levels (anchors 16-64 px on strides 4-16).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='Rotate', prob=1.0, min_mag=0.0, max_mag=10.0, img_border_value=255),
    dict(type='BoxesFromMasks'),  # Rotate turns box corners: recompute tight boxes
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), min_gt_mask_area=1, by_box=True, by_mask=True),
    dict(type='Resize', scale=(512, 512), keep_ratio=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 512), keep_ratio=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    _delete_=True, batch_size=2, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='fold1/annotations.json',
                 data_prefix=dict(img='fold1/images/'), filter_cfg=dict(filter_empty_gt=True, min_size=1),
                 pipeline=train_pipeline))
val_dataloader = dict(
    _delete_=True, batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='fold2/annotations.json',
                 data_prefix=dict(img='fold2/images/'), test_mode=True, pipeline=test_pipeline))
test_dataloader = dict(
    _delete_=True, batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='fold3/annotations.json',
                 data_prefix=dict(img='fold3/images/'), test_mode=True, pipeline=test_pipeline))
# bPQ, mPQ (official PanNuke definitions, per tissue then over tissues) and COCO mask mAP.
val_evaluator = dict(_delete_=True, type='PanNukeMetric', data_root=data_root,
                     ann_file='fold2/annotations.json', score_thr=0.5)
test_evaluator = dict(_delete_=True, type='PanNukeMetric', data_root=data_root,
                      ann_file='fold3/annotations.json', score_thr=0.5)

model = dict(
    # Phase 1 freezes the whole backbone (stem and the four stages); the weights come from
    # load_from, so no ImageNet initialisation (no download).
    backbone=dict(frozen_stages=4, init_cfg=None),
    rpn_head=dict(anchor_generator=dict(scales=[4], ratios=[0.5, 1.0, 2.0])),
    roi_head=dict(bbox_head=dict(num_classes=5), mask_head=dict(num_classes=5)),  # 28x28 masks
    # Up to a few hundred nuclei per tile: more proposals, samples and detections than COCO's.
    train_cfg=dict(rpn_proposal=dict(nms_pre=4000, max_per_img=2000), rcnn=dict(sampler=dict(num=1024))),
    test_cfg=dict(rpn=dict(nms_pre=4000, max_per_img=2000), rcnn=dict(max_per_img=500)))

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=5.0, norm_type=2))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=50, val_interval=1)
# Per epoch. mmengine's LinearLR reaches end_factor at its last epoch (end - 1) and multiplies
# the lr it finds, so: epochs 0-19 1e-3 -> 9.9e-5; at epoch 20 x (1e-4 / 9.9e-5) = 1e-4;
# epochs 20-49 1e-4 -> 3.33e-6.
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0, end_factor=0.099, by_epoch=True, begin=0, end=20),
    dict(type='MultiStepLR', milestones=[20], gamma=1e-4 / 9.9e-5, by_epoch=True, begin=0, end=50),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0333, by_epoch=True, begin=20, end=50),
]
custom_hooks = [dict(type='UnfreezeBackboneHook', epoch=20)]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2, save_best='pannuke/bPQ', rule='greater'))
