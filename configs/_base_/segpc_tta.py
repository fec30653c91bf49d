# Flip test-time augmentation (`tools/test.py CONFIG CKPT --tta`, `tools/predict.py ... --tta`).
#
# The detector runs on every view TestTimeAug makes of an image: the original and its flips.
# SegPCTTAModel (segpc/models/tta.py) maps each view's boxes and masks back to the original
# frame exactly and merges them: instances of the same class matched across views by mask IoU
# (>= match_iou, at most one per view), masks voted pixel by pixel over the views that found the
# instance (more than half; a tie goes to the highest-scoring of them), boxes averaged, scores
# averaged over all views (a view that missed the instance counts 0).
#
# Use: add this file to a config's `_base_`. A config without `tta_model`/`tta_pipeline` gets the
# same with --tta anyway: SegPCTTAModel's defaults and its own test pipeline with the flips of
# `tta_flips` (all three unless set, e.g. `--cfg-options "tta_flips=[horizontal]"`).
tta_model = dict(
    type='SegPCTTAModel',
    match_iou=0.5,      # mask IoU for two views' instances (same class) to be one
    min_views=1,        # keep instances found by a single view
    max_per_img=100)    # merged instances kept per image, by score

# One RandomFlip per view: delete a line to switch that flip off (prob=0. is the original image).
# The Resize must be the config's test scale (segpc_instance.py: (1333, 800)); a config that
# tests at another scale overrides it, or sets `tta_pipeline = None` to derive the pipeline from
# its test pipeline and `tta_flips`. This is exactly what that derivation gives for the
# segpc_instance.py test pipeline with all three flips.
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='RandomFlip', prob=0.),
                dict(type='RandomFlip', prob=1., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='vertical'),
                dict(type='RandomFlip', prob=1., direction='diagonal'),
            ],
            [
                dict(type='PackDetInputs',
                     meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                                'flip', 'flip_direction')),
            ],
        ]),
]
