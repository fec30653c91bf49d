# U-Net (mmseg's UNet backbone, 5 stages, output stride 16, FCN head) for background /
# cytoplasm / nucleus maps of SegPC slides; cells recovered from its maps are scored with the
# challenge's mIoU (SegPCSemanticMetric) beside mmseg's per-class IoU and Dice.
#   python tools/export_semantic.py data/segpc/train data/segpc/semantic3/train
#   python tools/export_semantic.py data/segpc/validation data/segpc/semantic3/validation
#   python tools/train.py configs/semantic/unet_s5-d16_segpc.py
_base_ = [
    'mmseg::_base_/models/fcn_unet_s5-d16.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py',
    './_base_/segpc_semantic.py',
]
model = dict(
    # pad training crops to 512x512, test images to a multiple of 16 (UNet's 4 downsamplings)
    data_preprocessor=dict(size=(512, 512), test_cfg=dict(size_divisor=16)),
    # class-weighted cross-entropy: background is ~87% of the pixels of SegPC slides
    # (cytoplasm ~8%, nucleus ~6%); mmseg's CE + Dice (weight 3) variant learned no foreground
    # in the pilots (configs/README.md)
    decode_head=dict(num_classes=3, loss_decode=dict(class_weight=[0.25, 1.0, 1.0])),
    auxiliary_head=dict(num_classes=3, loss_decode=dict(class_weight=[0.25, 1.0, 1.0])),
    test_cfg=dict(_delete_=True, mode='whole'))
# mmseg's 40k schedule (SGD lr 0.01, poly); keep the best checkpoint by the challenge's metric.
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=4000, max_keep_ckpts=2,
                                     save_best='segpc/mIoU', rule='greater'))
