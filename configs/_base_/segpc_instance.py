# SegPC-2021 data, evaluation and runtime settings shared by every segpc config.
#
# mmdet's model configs already define `train_dataloader`, `val_evaluator`, ... for COCO, and
# mmengine forbids the same key in two bases, so everything that replaces mmdet's settings is
# collected in `segpc_overrides` (`segpc_semantic_overrides` for HTC/SCNet, whose semantic head
# also reads the whole-cell maps); each model family file (configs/_base_/models/*.py) applies
# it over mmdet's config with `globals().update(...)`.
#
# Data layout (README.md, "Data"): data/segpc/{train,validation}/x|y, COCO files written by
# tools/convert_segpc.py into data/segpc/annotations/, semantic maps into data/segpc/semantic/.
# Point elsewhere with `--cfg-options data_root=DIR` (propagated to every dataset and metric).
custom_imports = dict(imports=['segpc.register'], allow_failed_imports=False)

segpc_data_root = 'data/segpc/'
segpc_img_scale = (1333, 800)
segpc_resize = dict(type='Resize', scale=segpc_img_scale, keep_ratio=True)
# Multi-scale training (ResNeSt configs): shorter side drawn from 640..800.
segpc_ms_resize = dict(type='RandomChoiceResize', keep_ratio=True,
                       scales=[(1333, s) for s in range(640, 801, 32)])


def _train_pipeline(resize, semantic):
    return [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True, with_seg=semantic),
        resize,
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackDetInputs'),
    ]


segpc_train_pipeline = _train_pipeline(segpc_resize, False)
segpc_ms_train_pipeline = _train_pipeline(segpc_ms_resize, False)
segpc_sem_train_pipeline = _train_pipeline(segpc_resize, True)
segpc_sem_ms_train_pipeline = _train_pipeline(segpc_ms_resize, True)
segpc_test_pipeline = [
    dict(type='LoadImageFromFile'),
    segpc_resize,
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]


def _dataset(split, pipeline, test_mode, semantic=False):
    return dict(
        type='SegPCDataset',
        data_root=segpc_data_root,
        ann_file=f'annotations/{split}.json',
        data_prefix=dict(img=f'{split}/x/', seg=f'semantic/{split}/') if semantic
        else dict(img=f'{split}/x/'),
        test_mode=test_mode,
        filter_cfg=None if test_mode else dict(filter_empty_gt=True, min_size=4),
        pipeline=pipeline)


def _overrides(semantic):
    val_dataloader = dict(
        _delete_=True, batch_size=1, num_workers=2, persistent_workers=True, drop_last=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=_dataset('validation', segpc_test_pipeline, True))
    # The challenge's metric: whole-cell IoU at 1080x1440, best prediction per ground-truth cell.
    evaluator = dict(_delete_=True, type='SegPCMetric', data_root=segpc_data_root,
                     ann_file='annotations/validation.json', score_thr=0.5)
    return dict(
        data_root=segpc_data_root,
        train_dataloader=dict(
            _delete_=True, batch_size=2, num_workers=2, persistent_workers=True,
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_sampler=dict(type='AspectRatioBatchSampler'),
            dataset=_dataset('train', segpc_sem_train_pipeline if semantic else segpc_train_pipeline,
                             False, semantic)),
        val_dataloader=val_dataloader,
        test_dataloader=val_dataloader,
        val_evaluator=evaluator,
        test_evaluator=evaluator,
        # Keep the best checkpoint by the challenge's metric.
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2,
                            save_best='segpc/mIoU', rule='greater')),
        # SGD lr 0.02 for a total batch of 16, scaled linearly to the real total batch.
        auto_scale_lr=dict(enable=True, base_batch_size=16),
    )


segpc_overrides = _overrides(semantic=False)
segpc_semantic_overrides = _overrides(semantic=True)
