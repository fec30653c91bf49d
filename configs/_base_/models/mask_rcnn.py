# Mask R-CNN (mmdet's R-50-FPN, 1x schedule) on SegPC: three classes, the winning solution's defaults.
_base_ = ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', '../segpc_instance.py']
globals().update(_base_.segpc_overrides)  # SegPC data, metric and hooks over mmdet's COCO ones

model = dict(
    rpn_head=dict(anchor_generator=dict(scales=[4, 6, 8, 10, 12])),
    roi_head=dict(
        bbox_head=dict(num_classes=3, reg_class_agnostic=True),
        mask_head=dict(num_classes=3)))
