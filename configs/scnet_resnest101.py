# SCNet, ResNeSt-101-FPN, 20e schedule, multi-scale (1333, 640-800), ImageNet weights from open-mmlab.
_base_ = ['./_base_/models/scnet.py', './_base_/backbones.py']

model = dict(backbone=_base_.resnest101, data_preprocessor=_base_.resnest_preprocessor)
train_dataloader = dict(dataset=dict(pipeline=_base_.segpc_sem_ms_train_pipeline))
