"""The second-place SegPC-2021 method (bmdeep, "Multi-scale Regional Attention Deeplab3+").

A nucleus U-Net finds the nuclei; for every nucleus, one DeepLabv3+ with two-level attention per
crop scale segments its cell from a 4-channel crop (image + this nucleus); the scales are
aggregated by the cytoplasm/nucleus area ratio. Plain post-processing in
:mod:`segpc.bmdeep.postprocess`, crop geometry in :mod:`segpc.datasets.crops`, the two-stage
predictor in :mod:`segpc.apis.bmdeep`.
"""
