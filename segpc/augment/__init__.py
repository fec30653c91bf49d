"""Offline augmentation of a SegPC COCO dataset with an imgaug policy (``tools/augment.py``).

* :mod:`segpc.augment.policy` — YAML policy → imgaug augmenter
* :mod:`segpc.augment.piecewise` — :class:`FastPiecewiseAffine` (imgaug's, ~20x faster)
* :mod:`segpc.augment.cells` — cells packed into one segmentation map; back to COCO RLE
* :mod:`segpc.augment.pipeline` — the deterministic, resumable, parallel run
"""
from . import _compat  # noqa: F401  (first: numpy aliases imgaug 0.4 still uses)
from .pipeline import Options, augment_dataset, load_sources  # noqa: E402
from .piecewise import FastPiecewiseAffine  # noqa: E402
from .policy import build_policy, load_policy  # noqa: E402

__all__ = ["Options", "augment_dataset", "load_sources", "FastPiecewiseAffine", "build_policy", "load_policy"]
