# Mask R-CNN with ResNet-50-FPN on Kaggle's Sartorius cells: three classes (shsy5y, astro, cort),
# up to 1000 cells per image, multi-scale training (shorter side 640..960) with all flips,
# validation with the Kaggle AP after the submission's post-processing; best checkpoint by it.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../_base_/datasets/sartorius_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]

model = dict(
    # cells are 15-80 px at the training scale: anchors of 16 px (scale 4 at stride 4) too
    rpn_head=dict(anchor_generator=dict(scales=[4, 8])),
    roi_head=dict(
        bbox_head=dict(num_classes=3),
        mask_head=dict(num_classes=3)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=4000, max_per_img=2000),
        rcnn=dict(sampler=dict(num=512))),
    test_cfg=dict(
        rpn=dict(nms_pre=4000, max_per_img=2000),
        rcnn=dict(score_thr=0.05, max_per_img=1000)))

# Flip test-time augmentation (tools/test.py --tta): original + horizontal, vertical and diagonal
# flips merged by mask IoU and pixel vote, as many cells as the model keeps.
tta_model = dict(type='SegPCTTAModel', match_iou=0.5, min_views=1, max_per_img=1000)

default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=2, save_best='sartorius/AP', rule='greater'))
auto_scale_lr = dict(enable=True, base_batch_size=16)
