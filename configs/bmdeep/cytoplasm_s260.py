# bmdeep cytoplasm network for crops at scale 2.6 (the nucleus box grown by 2.6*h/2, 2.6*w/2 per side).
_base_ = './cytoplasm_base.py'

train_dataloader = dict(dataset=dict(scale=2.6))
val_dataloader = dict(dataset=dict(scale=2.6))
test_dataloader = val_dataloader
