# HTC, ResNeSt-50-FPN, 20e schedule, multi-scale (1333, 640-800), ImageNet weights from open-mmlab
# (with their normalisation). SyncBN across GPUs; one process or no GPU: plain BN.
_base_ = './htc_resnet50.py'

model = dict(
    data_preprocessor=dict(mean=[123.68, 116.779, 103.939], std=[58.393, 57.12, 57.375]),
    backbone=dict(type='ResNeSt', stem_channels=64, radix=2, reduction_factor=4, avg_down_stride=True,
                  norm_cfg=dict(type='SyncBN'), norm_eval=False, init_cfg=dict(checkpoint='open-mmlab://resnest50')))
train_pipeline = [dict(type='RandomChoiceResize', scales=[(1333, s) for s in range(640, 801, 32)], keep_ratio=True)
                  if t.type == 'Resize' else t for t in _base_.train_pipeline]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
