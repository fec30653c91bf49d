# The same recipe on Neoplastic nuclei only, as the published Mask R-CNN study (mAP 0.756,
# binary PQ 0.675): folds converted with `tools/convert_pannuke.py ... --classes neoplastic`
# into data/pannuke_neoplastic/fold{1,2,3}/.
_base_ = './mask_rcnn_r101_fpn_heads_then_all.py'

data_root = 'data/pannuke_neoplastic/'
train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=dict(classes=('Neoplastic', ))))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=dict(classes=('Neoplastic', ))))
test_dataloader = dict(dataset=dict(data_root=data_root, metainfo=dict(classes=('Neoplastic', ))))
val_evaluator = dict(data_root=data_root)
test_evaluator = dict(data_root=data_root)
model = dict(roi_head=dict(bbox_head=dict(num_classes=1), mask_head=dict(num_classes=1)))
