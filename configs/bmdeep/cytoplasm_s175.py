# bmdeep cytoplasm network for crops at scale 1.75 (the nucleus box grown by 1.75*h/2, 1.75*w/2 per side).
_base_ = './cytoplasm_base.py'

train_dataloader = dict(dataset=dict(scale=1.75))
val_dataloader = dict(dataset=dict(scale=1.75))
test_dataloader = val_dataloader
