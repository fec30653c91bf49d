# HTC, ResNet-101-FPN, 20e schedule, single-scale (1333, 800), ImageNet weights from torchvision.
_base_ = ['./_base_/models/htc.py', './_base_/backbones.py']

model = dict(backbone=_base_.resnet101)
