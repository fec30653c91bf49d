# SegPC data for semantic models (MMSegmentation): images of a split and their 3-class maps
# (0 background, 1 cytoplasm, 2 nucleus) written by tools/export_semantic.py, with mmseg's
# IoUMetric (per-class IoU and Dice) and the challenge's mIoU of the cells recovered from the
# predicted maps (SegPCSemanticMetric: its cells, dump and <id>_<k>.bmp submission).
#
# Layout (README.md, "Own annotations"): data/segpc/{train,validation}/x|y and
# data/segpc/semantic3/{train,validation}/<id>.png. Point elsewhere with
# `--cfg-options data_root=DIR` (propagated to every dataset and metric).
# Model, runtime and schedule come from mmseg's own bases (see configs/semantic/*.py); the
# training schedule and best-checkpoint hook live there too (mmengine forbids one key in two bases).
custom_imports = dict(imports=['segpc.register'], allow_failed_imports=False)

data_root = 'data/segpc/'
__scale = (1024, 768)   # SegPC's 2040x1536 / 2560x1920 slides at about half size
__crop = (512, 512)


def __dataset(split, pipeline):
    return dict(type='SegPCSemanticDataset', data_root=data_root,
                data_prefix=dict(img_path=f'{split}/x', seg_map_path=f'semantic3/{split}'),
                pipeline=pipeline)


train_dataloader = dict(
    batch_size=4, num_workers=2, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=__dataset('train', [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='RandomResize', scale=__scale, ratio_range=(0.8, 1.25), keep_ratio=True),
        dict(type='RandomCrop', crop_size=__crop, cat_max_ratio=0.9),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='RandomFlip', prob=0.5, direction='vertical'),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackSegInputs'),
    ]))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=__dataset('validation', [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=__scale, keep_ratio=True),
        dict(type='LoadAnnotations'),  # after Resize: scored on the original maps
        dict(type='PackSegInputs'),
    ]))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='SegPCIoUMetric', iou_metrics=['mIoU', 'mDice']),
    dict(type='SegPCSemanticMetric', data_root=data_root, split_dir='validation'),
]
test_evaluator = val_evaluator
