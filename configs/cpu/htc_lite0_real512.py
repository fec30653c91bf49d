# HTC with the whole-cell semantic branch on the pretrained EfficientNet-Lite0, for the real SegPC
# images at 512x384 on a CPU: the Mask R-CNN CPU recipe (data, pipeline, schedule, backbone, FPN
# with GroupNorm) with mmdet's HTC head (htc/htc_r50_fpn_1x_coco.py: 3 interleaved cascade stages
# with mask information flow, IoU 0.5/0.6/0.7, losses weighted 1/0.5/0.25, fused semantic head
# on the stride-8 level) narrowed to the recipe's 64 channels. The semantic branch learns the
# binary whole-cell map (background, cell) that run.py writes to data/segpc_real512/semantic/.
_base_ = ['./mask_rcnn_lite0_real512.py']

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, with_seg=True),
    dict(type='RandomResize', scale=(512, 384), ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type='RandomFlip', prob=0.75, direction=['horizontal', 'vertical', 'diagonal']),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(data_prefix=dict(seg='semantic/train/'), pipeline=train_pipeline))


def _bbox_head(stds):
    return dict(
        type='Shared2FCBBoxHead', in_channels=64, fc_out_channels=256, roi_feat_size=7,
        num_classes=3, reg_class_agnostic=True,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=stds),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))


def _mask_head(first):
    return dict(
        type='HTCMaskHead', with_conv_res=not first, num_convs=4, in_channels=64,
        conv_out_channels=64, num_classes=3,
        loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))


def _rcnn(iou):
    return dict(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=iou, neg_iou_thr=iou, min_pos_iou=iou,
                      ignore_iof_thr=-1),
        sampler=dict(type='RandomSampler', num=128, pos_fraction=0.25, neg_pos_ub=-1,
                     add_gt_as_proposals=True),
        mask_size=28, pos_weight=-1, debug=False)


def _roi_extractor(size):
    return dict(type='SingleRoIExtractor', out_channels=64, featmap_strides=[4, 8, 16, 32],
                roi_layer=dict(type='RoIAlign', output_size=size, sampling_ratio=0))


model = dict(
    type='HybridTaskCascade',
    data_preprocessor=dict(pad_seg=True),  # semantic maps padded with the images (as mmdet's HTC)
    roi_head=dict(
        _delete_=True, type='HybridTaskCascadeRoIHead', interleaved=True, mask_info_flow=True,
        num_stages=3, stage_loss_weights=[1, 0.5, 0.25],
        bbox_roi_extractor=_roi_extractor(7),
        bbox_head=[_bbox_head(s) for s in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
                                           [0.033, 0.033, 0.067, 0.067])],
        mask_roi_extractor=_roi_extractor(14),
        mask_head=[_mask_head(i == 0) for i in range(3)],
        semantic_roi_extractor=dict(
            type='SingleRoIExtractor', out_channels=64, featmap_strides=[8],
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0)),
        semantic_head=dict(
            type='FusedSemanticHead', num_ins=5, fusion_level=1, num_convs=4, in_channels=64,
            conv_out_channels=64, num_classes=2, ignore_label=255, loss_weight=0.2)),
    train_cfg=dict(rcnn=[_rcnn(iou) for iou in (0.5, 0.6, 0.7)]),
    test_cfg=dict(rcnn=dict(score_thr=0.001, nms=dict(type='nms', iou_threshold=0.5),
                            max_per_img=100, mask_thr_binary=0.5)))

# About the training time of the Mask R-CNN recipe: an HTC step costs about twice a Mask R-CNN
# step here (7.7 s against 3.7 s on 2 free cores), so half the iterations: 200 at batch 4,
# validation every 100 (28 min; mIoU 0.166, benchmarks/real_segpc/README.md).
train_cfg = dict(max_iters=200, val_interval=100)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=25),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=200, milestones=[150, 180], gamma=0.1),
]
default_hooks = dict(checkpoint=dict(interval=100))
