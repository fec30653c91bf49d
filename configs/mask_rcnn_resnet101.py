# Mask R-CNN, ResNet-101-FPN, 1x schedule, single-scale (1333, 800), ImageNet weights from torchvision.
_base_ = './mask_rcnn_resnet50.py'

model = dict(backbone=dict(depth=101, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
