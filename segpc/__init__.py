"""segpc: instance segmentation of multiple myeloma plasma cells (SegPC-2021) on MMDetection.

Importing ``segpc`` is light. The MMDetection components (dataset, metric, models, hooks) are
registered by importing :mod:`segpc.register`, which every config does through
``custom_imports``.
"""
__version__ = "0.1.0"

import warnings as _warnings

# mmengine imports pkg_resources at import time; the deprecation notice is noise for segpc's users.
_warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
