# bmdeep stage 2 at crop scale 2.6: configs/cpu/bmdeep/cytoplasm_s175_real512.py at scale 2.6.
_base_ = './cytoplasm_s175_real512.py'

train_dataloader = dict(dataset=dict(scale=2.6))
val_dataloader = dict(dataset=dict(scale=2.6))
test_dataloader = val_dataloader
