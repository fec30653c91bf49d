# bmdeep cytoplasm network for crops at scale 3.0 (the nucleus box grown by 3.0*h/2, 3.0*w/2 per side).
_base_ = './cytoplasm_base.py'

train_dataloader = dict(dataset=dict(scale=3.0))
val_dataloader = dict(dataset=dict(scale=3.0))
test_dataloader = val_dataloader
