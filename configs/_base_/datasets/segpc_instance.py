# SegPC-2021 data and metric (mmdet's `_base_/datasets/coco_instance.py` for SegPC): the three
# instance classes (nucleus, cytoplasm, cell) from the COCO files of tools/convert_segpc.py, and
# the challenge's mIoU (SegPCMetric: whole-cell IoU at full resolution, cells scoring >= 0.5).
#
# Layout (README.md, "Data"): data/segpc/{train,validation}/x/ images, data/segpc/annotations/
# {train,validation}.json. Point elsewhere with `--cfg-options data_root=DIR`: segpc's tools
# move every dataset and metric that uses this data_root (segpc.apis.config.load_config).
dataset_type = 'SegPCDataset'
data_root = 'data/segpc/'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
# No LoadAnnotations: SegPCMetric reads the ground truth from the COCO file itself.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type, data_root=data_root, ann_file='annotations/train.json',
        data_prefix=dict(img='train/x/'), filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, ann_file='annotations/validation.json',
        data_prefix=dict(img='validation/x/'), test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='SegPCMetric', data_root=data_root, ann_file='annotations/validation.json',
                     score_thr=0.5)
test_evaluator = val_evaluator
