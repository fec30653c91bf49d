"""segpc's MMDetection models: the flip test-time augmentation (:mod:`segpc.models.tta`).

Registered by importing :mod:`segpc.register`.
"""
