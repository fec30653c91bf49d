# mmdet's runtime for SegPC: segpc's registrations, the best checkpoint kept by the challenge's
# metric, a fixed seed (README.md, "Reproducibility"), and BatchNorm statistics averaged over the
# processes before each validation (BN layers that are not SyncBN, e.g. ResNeSt's on CPUs, would
# otherwise validate each rank's half with its own statistics and save rank 0's).
_base_ = 'mmdet::_base_/default_runtime.py'

custom_imports = dict(imports=['segpc.register'], allow_failed_imports=False)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2,
                    save_best='segpc/mIoU', rule='greater'))
randomness = dict(seed=0)
custom_hooks = [dict(type='SyncBuffersHook')]
