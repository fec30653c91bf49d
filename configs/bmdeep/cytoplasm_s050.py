# bmdeep cytoplasm network for crops at scale 0.5 (the nucleus box grown by 0.5*h/2, 0.5*w/2 per side).
_base_ = './cytoplasm_base.py'

train_dataloader = dict(dataset=dict(scale=0.5))
val_dataloader = dict(dataset=dict(scale=0.5))
test_dataloader = val_dataloader
