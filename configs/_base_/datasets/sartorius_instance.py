# Kaggle's Sartorius cells (shsy5y, astro, cort) as COCO from tools/convert_sartorius.py:
#   data/sartorius/train/<id>.png, data/sartorius/annotations/{train,val}.json
# (python tools/convert_sartorius.py data/sartorius/train.csv data/sartorius/train \
#      data/sartorius/annotations/train.json --val-json data/sartorius/annotations/val.json --num-val 60)
# Validation with the Kaggle AP (SartoriusMetric: the submission's post-processing, then the metric).
custom_imports = dict(imports=['segpc.register'], allow_failed_imports=False)

dataset_type = 'SartoriusDataset'
data_root = 'data/sartorius/'
backend_args = None

# Multi-scale training on the shorter side (the images are 704x520), all flips.
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomChoiceResize', scales=[(1333, s) for s in range(640, 961, 32)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.75, direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=2),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/val.json',
        data_prefix=dict(img='train/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(type='SartoriusMetric', data_root=data_root, ann_file='annotations/val.json')
test_evaluator = val_evaluator
