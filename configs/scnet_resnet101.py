# SCNet, ResNet-101-FPN, 20e schedule, single-scale (1333, 800), ImageNet weights from torchvision.
_base_ = './scnet_resnet50.py'

model = dict(backbone=dict(depth=101, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101')))
