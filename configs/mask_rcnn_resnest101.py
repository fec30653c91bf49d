# Mask R-CNN, ResNeSt-101-FPN, 1x schedule, multi-scale (1333, 640-800), ImageNet weights from open-mmlab.
_base_ = './mask_rcnn_resnest50.py'

model = dict(backbone=dict(stem_channels=128, depth=101,
                           init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnest101')))
