# Mask R-CNN, ResNeSt-101-FPN, 1x schedule, multi-scale (1333, 640-800), ImageNet weights from open-mmlab.
_base_ = ['./_base_/models/mask_rcnn.py', './_base_/backbones.py']

model = dict(backbone=_base_.resnest101, data_preprocessor=_base_.resnest_preprocessor)
train_dataloader = dict(dataset=dict(pipeline=_base_.segpc_ms_train_pipeline))
