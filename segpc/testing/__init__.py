"""Test oracles: slow, straightforward implementations that the fast code must agree with.

* :mod:`segpc.testing.miou` — the SegPC-2021 mIoU on dense 1080x1440 frames;
* :mod:`segpc.testing.ensemble` — the dump ensemble on dense full frames;
* :mod:`segpc.testing.kaggle_ap` — the Kaggle cell AP (Sartorius) on dense full frames, a port
  of the public implementation's counting, and a perturbed-submission maker for its inputs.

Used by ``tests/`` and ``benchmarks/`` only; nothing in the package imports them.
"""
