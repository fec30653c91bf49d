# Mask R-CNN (mmdet's R-50-FPN, 1x schedule) on SegPC: three classes, the winning solution's
# defaults. Composed like mmdet's own mask-rcnn_r50_fpn_1x_coco.py, with SegPC data for COCO's.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py', '../datasets/segpc_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py', '../default_runtime.py',
]

model = dict(
    rpn_head=dict(anchor_generator=dict(scales=[4, 6, 8, 10, 12])),
    roi_head=dict(
        bbox_head=dict(num_classes=3, reg_class_agnostic=True),
        mask_head=dict(num_classes=3)))
# SGD lr 0.02 for a total batch of 16, scaled linearly to the real total batch.
auto_scale_lr = dict(enable=True)
