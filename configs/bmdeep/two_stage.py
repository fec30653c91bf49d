# The bmdeep two-stage predictor (segpc/apis/bmdeep.py, tools/predict_bmdeep.py): the nucleus
# U-Net, one cytoplasm network per crop scale, the published thresholds and the scale filter.
# Config paths are relative to this file; checkpoints are given on the command line. An entry may
# set `select_threshold` (aggregate='select'; default: the upper bound of its range).
nucleus = dict(config='nucleus_unet.py', threshold=0.5, kernel=3, min_area=80)
cytoplasm = [
    dict(scale=0.5, config='cytoplasm_s050.py', range=(0.0, 0.8)),
    dict(scale=1.75, config='cytoplasm_s175.py', range=(0.4, 200.0)),
    dict(scale=2.6, config='cytoplasm_s260.py', range=(0.3, 200.0)),
    dict(scale=3.0, config='cytoplasm_s300.py', range=(0.4, 200.0)),
]
cytoplasm_threshold = 0.48
kernel = 3
aggregate = 'filter'  # 'filter' (published: every scale in its ratio range) | 'select' (paper)
