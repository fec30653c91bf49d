"""Augmentation policies: a YAML file that composes imgaug augmenters.

Format (see ``configs/augment/segpc_xlab.yaml``)::

    policy:                        # one augmenter (a list means Sequential)
      Sequential:
        children:
          - Fliplr: {p: 0.5}
          - SomeOf:
              n: [1, 3]            # a YAML list is an imgaug *range* (a, b) ...
              random_order: true
              children:
                - Affine: {rotate: [-30, 30], order: 1}
                - Rot90: {k: {choice: [1, 3]}}   # ... {choice: [...]} a random pick from a list
                - GaussianBlur: {sigma: [0.5, 1.5]}
                - Grayscale: ~                   # no parameters

An augmenter is a one-key mapping ``{ClassName: {parameter: value, ...}}`` (or ``ClassName:
null``); ``ClassName`` is any augmenter class of ``imgaug.augmenters``. Parameters that take
augmenters (``children``, ``then_list``, ``else_list``, ``foreground``, ``background``) take one
augmenter or a list of them. Values: numbers, strings and ``null`` as they are; a list becomes an
imgaug tuple (a uniform range ``(a, b)``, or e.g. ``{x: [0.8, 1.2], y: ...}`` inside a mapping);
``{choice: [a, b, ...]}`` becomes an imgaug list (one value picked at random per image); the
string ``ALL`` is ``imgaug.ALL``.

``PiecewiseAffine`` is built as :class:`~segpc.augment.piecewise.FastPiecewiseAffine` (same
draws and transform, ~20x faster) unless ``fast=False``.

Every error names the policy file: ``<file>: policy.children[2].Affine: bad parameter (...)``.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import imgaug as ia
import imgaug.augmenters as iaa
import numpy as np
import yaml
from imgaug.augmentables.segmaps import SegmentationMapsOnImage

from segpc.io import SegPCError

from .piecewise import FastPiecewiseAffine

AUGMENTER_ARGS = ("children", "then_list", "else_list", "foreground", "background")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _augmenter_class(name: str):
    obj = getattr(iaa, name, None)
    if isinstance(obj, type) and issubclass(obj, iaa.Augmenter):
        return obj
    return None


class _PolicyBuilder:
    def __init__(self, source: str, fast: bool):
        self.source, self.fast = source, fast

    def error(self, where: str, problem: str) -> SegPCError:
        return SegPCError(self.source, _one_line(f"{where}: {problem}"))

    def value(self, v: Any, where: str) -> Any:
        if isinstance(v, list):
            return tuple(self.value(x, f"{where}[{i}]") for i, x in enumerate(v))
        if isinstance(v, dict):
            if set(v) == {"choice"}:
                choices = v["choice"]
                if not isinstance(choices, list) or not choices:
                    raise self.error(where, "'choice' needs a non-empty list")
                return [self.value(x, f"{where}.choice[{i}]") for i, x in enumerate(choices)]
            return {k: self.value(x, f"{where}.{k}") for k, x in v.items()}
        if v == "ALL":
            return ia.ALL
        return v

    def augmenters(self, spec: Any, where: str):
        if isinstance(spec, list):
            return [self.augmenter(s, f"{where}[{i}]") for i, s in enumerate(spec)]
        return self.augmenter(spec, where)

    def augmenter(self, spec: Any, where: str):
        if isinstance(spec, list):
            return iaa.Sequential(self.augmenters(spec, where))
        if isinstance(spec, str):
            spec = {spec: None}
        if not isinstance(spec, dict) or len(spec) != 1:
            raise self.error(where, "an augmenter is a one-key mapping {ClassName: {parameters}}, "
                                    f"got {spec!r}")
        (name, params), = spec.items()
        cls = _augmenter_class(str(name))
        if cls is None:
            raise self.error(where, f"unknown augmenter {name!r} (not an imgaug.augmenters class)")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise self.error(f"{where}.{name}", f"parameters must be a mapping, got {params!r}")
        kwargs = {}
        for key, val in params.items():
            sub = f"{where}.{name}.{key}"
            if key in AUGMENTER_ARGS and val is not None:
                kwargs[key] = self.augmenters(val, sub)
            else:
                kwargs[key] = self.value(val, sub)
        if cls is iaa.PiecewiseAffine and self.fast:
            cls = FastPiecewiseAffine
        try:
            return cls(**kwargs)
        except Exception as e:  # noqa: BLE001 - imgaug raises assorted types for bad values
            msg = _one_line(str(e)) or type(e).__name__
            raise self.error(f"{where}.{name}", f"bad parameter ({msg})") from None


def build_policy(spec: Any, source: str = "<policy>", fast: bool = True) -> iaa.Augmenter:
    """Build the imgaug augmenter described by a parsed policy (the YAML's content)."""
    builder = _PolicyBuilder(source, fast)
    if not isinstance(spec, dict) or "policy" not in spec:
        raise SegPCError(source, "a policy file needs a top-level 'policy:' key")
    unknown = set(spec) - {"policy", "description"}
    if unknown:
        raise SegPCError(source, f"unknown top-level key(s) {sorted(unknown)} (allowed: policy, description)")
    aug = builder.augmenter(spec["policy"], "policy")
    _dry_run(aug, source)
    return aug


def _dry_run(aug: iaa.Augmenter, source: str) -> None:
    """Apply the policy to a small image with a segmentation map: catches values that only
    fail when used (imgaug checks many parameters lazily)."""
    aug = aug.deepcopy()
    img = np.zeros((48, 64, 3), np.uint8)
    img[10:30, 12:40] = (200, 120, 180)
    seg = np.zeros((48, 64, 1), np.int32)
    seg[12:28, 14:38] = 1
    try:
        for s in range(4):
            aug.seed_(s)
            aug(image=img, segmentation_maps=SegmentationMapsOnImage(seg, shape=img.shape))
    except Exception as e:  # noqa: BLE001
        raise SegPCError(source, _one_line(f"policy fails on a test image ({type(e).__name__}: {e})")) from None


def read_policy(path: str | os.PathLike) -> tuple[dict, str]:
    """Parse a policy file; returns ``(spec, sha256 of its bytes)``."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise SegPCError(path, "policy file not found") from None
    except OSError as e:
        raise SegPCError(path, f"cannot read policy file ({e.strerror})") from None
    try:
        spec = yaml.safe_load(data)
    except yaml.YAMLError as e:
        raise SegPCError(path, _one_line(f"not valid YAML ({e})")) from None
    return spec, hashlib.sha256(data).hexdigest()


def load_policy(path: str | os.PathLike, fast: bool = True) -> iaa.Augmenter:
    """Read and build a policy file (errors: :class:`SegPCError` naming the file)."""
    spec, _ = read_policy(path)
    return build_policy(spec, str(path), fast=fast)
