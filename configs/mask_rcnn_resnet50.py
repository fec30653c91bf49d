# Mask R-CNN, ResNet-50-FPN, 1x schedule, single-scale (1333, 800), ImageNet weights from torchvision
# (mmdet's default backbone). Without network: README.md, "Pretrained backbones".
_base_ = './_base_/models/mask_rcnn.py'
