# Mask R-CNN, ResNet-50-FPN, 1x schedule, single-scale (1333, 800), ImageNet weights from torchvision.
_base_ = ['./_base_/models/mask_rcnn.py', './_base_/backbones.py']

model = dict(backbone=_base_.resnet50)
