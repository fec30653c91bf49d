# The bmdeep two-stage predictor of the CPU recipe (benchmarks/real_segpc/run.py --bmdeep):
# the nucleus U-Net and two cytoplasm networks (scales 1.75 and 2.6, of the published four), the
# published thresholds and ratio ranges. Nuclei are kept from 80 px as published (a nucleus is
# about 1,500-3,000 px at 512x384).
_base_ = '../../bmdeep/two_stage.py'

nucleus = dict(config='nucleus_unet_real512.py')
cytoplasm = [
    dict(scale=1.75, config='cytoplasm_s175_real512.py', range=(0.4, 200.0)),
    dict(scale=2.6, config='cytoplasm_s260_real512.py', range=(0.3, 200.0)),
]
