# SCNet (mmdet's R-50-FPN, 20e schedule) on SegPC: three classes; the semantic branch learns the
# binary whole-cell map (background, cell) written by tools/convert_segpc.py --semantic-dir.
#
# As for HTC (htc.py), mmdet has SCNet only as a complete COCO config, so the SegPC data, metric
# and runtime are written over COCO's here (tests/test_configs.py checks that they agree).
_base_ = 'mmdet::scnet/scnet_r50_fpn_20e_coco.py'

model = dict(
    rpn_head=dict(anchor_generator=dict(scales=[4, 6, 8, 10, 12])),
    roi_head=dict(
        bbox_head=[dict(h, num_classes=3, reg_class_agnostic=True)
                   for h in _base_.model.roi_head.bbox_head],
        mask_head=dict(num_classes=3),
        glbctx_head=dict(num_classes=3),
        semantic_head=dict(num_classes=2)))

dataset_type = 'SegPCDataset'
data_root = 'data/segpc/'
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root, ann_file='annotations/train.json',
    data_prefix=dict(img='train/x/', seg='semantic/train/'), filter_cfg=dict(min_size=4)))
val_dataloader = dict(dataset=dict(
    type=dataset_type, data_root=data_root, ann_file='annotations/validation.json',
    data_prefix=dict(img='validation/x/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='SegPCMetric', data_root=data_root,
                     ann_file='annotations/validation.json', score_thr=0.5)
test_evaluator = val_evaluator

custom_imports = dict(imports=['segpc.register'], allow_failed_imports=False)
default_hooks = dict(checkpoint=dict(max_keep_ckpts=2, save_best='segpc/mIoU', rule='greater'))
randomness = dict(seed=0)
custom_hooks = [dict(type='SyncBuffersHook')]
auto_scale_lr = dict(enable=True)
