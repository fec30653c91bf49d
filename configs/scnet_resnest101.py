# SCNet, ResNeSt-101-FPN, 20e schedule, multi-scale (1333, 640-800), ImageNet weights from open-mmlab.
_base_ = './scnet_resnest50.py'

model = dict(backbone=dict(stem_channels=128, depth=101,
                           init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnest101')))
