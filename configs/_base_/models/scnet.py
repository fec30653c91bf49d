# SCNet (mmdet's R-50-FPN, 20e schedule) on SegPC: three classes; the semantic branch learns the
# binary whole-cell map (background, cell) written by tools/convert_segpc.py --semantic-dir.
_base_ = ['mmdet::scnet/scnet_r50_fpn_20e_coco.py', '../segpc_instance.py']
globals().update(_base_.segpc_semantic_overrides)  # SegPC data, metric and hooks over mmdet's

model = dict(
    rpn_head=dict(anchor_generator=dict(scales=[4, 6, 8, 10, 12])),
    roi_head=dict(
        bbox_head=[dict(h, num_classes=3, reg_class_agnostic=True)
                   for h in _base_.model.roi_head.bbox_head],
        mask_head=dict(num_classes=3),
        glbctx_head=dict(num_classes=3),
        semantic_head=dict(num_classes=2)))
