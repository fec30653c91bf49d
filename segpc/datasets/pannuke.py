"""PanNuke (Gamper et al.): read its folds, convert them to COCO, write synthetic folds.

A fold ships as three NumPy arrays (``Fold k/images/foldk/images.npy``, ``.../types.npy``,
``Fold k/masks/foldk/masks.npy``):

- ``images``: ``(N, 256, 256, 3)`` RGB, float64 with values 0-255;
- ``types``: ``(N,)`` tissue name per image (19 distinct);
- ``masks``: ``(N, 256, 256, 6)``; channels 0-4 (Neoplastic, Inflammatory, Connective/Soft
  tissue, Dead, Epithelial) hold instance ids (0 = none; ids are not contiguous, and one id
  belongs to one channel), channel 5 is background.

A fold is ~4 GB as float64, so images and masks are memory-mapped and read one image at a time.
The conversion writes ``OUT_DIR/images/<index>.png`` and ``OUT_DIR/annotations.json`` (COCO,
exact compressed RLE, the tissue and the fold index per image; categories: the five classes or
Neoplastic only). Bad input raises :class:`~segpc.io.SegPCError` and writes nothing.

Licence of the data: CC BY-NC-SA 4.0; it is never part of this repository.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from tqdm import tqdm

from segpc.evaluation.pq import CLASSES, TISSUES, load_npy
from segpc.io import SegPCError, atomic_dir, atomic_path, write_json
from segpc.structures import area, bbox_xyxy, encode_many

CLASS_SETS = {"all": (0, 1, 2, 3, 4), "neoplastic": (0,)}  # --classes → PanNuke channels
ANN_FILE = "annotations.json"
IMG_DIR = "images"
HOW_TO_GET_DATA = (
    "download PanNuke (https://warwick.ac.uk/fac/sci/dcs/research/tia/data/pannuke) and convert "
    "each fold with tools/convert_pannuke.py (README.md, 'PanNuke'), or point the config elsewhere "
    "with --cfg-options data_root=DIR"
)


@dataclass
class Fold:
    """A PanNuke fold's arrays (images and masks memory-mapped) and their files."""

    images: np.ndarray
    types: np.ndarray
    masks: np.ndarray
    images_path: Path
    types_path: Path
    masks_path: Path

    def __len__(self) -> int:
        return len(self.images)


def fold_files(fold_dir: str | os.PathLike) -> tuple[Path, Path, Path]:
    """``(images.npy, types.npy, masks.npy)`` of a fold folder.

    ``fold_dir`` is PanNuke's ``Fold k`` (holding ``images/foldk/`` and ``masks/foldk/``) or a
    folder holding the three files side by side.
    """
    root = Path(fold_dir)
    if not root.is_dir():
        raise SegPCError(root, "fold folder not found")
    flat = [root / n for n in ("images.npy", "types.npy", "masks.npy")]
    if all(p.is_file() for p in flat):
        return flat[0], flat[1], flat[2]
    found = []
    for pattern in ("images/*/images.npy", "images/*/types.npy", "masks/*/masks.npy"):
        hits = sorted(root.glob(pattern))
        if len(hits) != 1:
            what = "no" if not hits else f"{len(hits)}"
            raise SegPCError(root, f"{what} {pattern} in this folder: expected PanNuke's 'Fold k' layout "
                                   "(images/foldk/images.npy, images/foldk/types.npy, masks/foldk/masks.npy)")
        found.append(hits[0])
    return found[0], found[1], found[2]


def load_fold(fold_dir: str | os.PathLike) -> Fold:
    """Open a fold (memory-mapped) and check shapes, dtypes and lengths."""
    ip, tp, mp = fold_files(fold_dir)
    images, masks = load_npy(ip), load_npy(mp)
    types = load_npy(tp, mmap=False)
    if images.ndim != 4 or images.shape[3] != 3:
        raise SegPCError(ip, f"images must have shape (N, H, W, 3), got {images.shape}")
    if images.dtype.kind not in "uif":
        raise SegPCError(ip, f"images must be numeric (float64 0-255 or uint8), got dtype {images.dtype}")
    if masks.ndim != 4 or masks.shape[3] != 6:
        raise SegPCError(mp, f"masks must have shape (N, H, W, 6), got {masks.shape}")
    if masks.dtype.kind not in "uif":
        raise SegPCError(mp, f"masks must hold numeric instance ids, got dtype {masks.dtype}")
    if types.ndim != 1 or types.dtype.kind not in "US":
        raise SegPCError(tp, f"types must be a 1-D array of tissue names, got dtype {types.dtype} shape {types.shape}")
    if masks.shape[:3] != images.shape[:3]:
        raise SegPCError(mp, f"masks {masks.shape[:3]} do not match images {images.shape[:3]} "
                             "(number of images, height, width)")
    if len(types) != len(images):
        raise SegPCError(tp, f"{len(types)} tissue types for {len(images)} images")
    return Fold(images, types.astype(str), masks, ip, tp, mp)


def image_uint8(img: np.ndarray, path: Path, index: int) -> np.ndarray:
    """A fold image (RGB, 0-255, any numeric dtype) → uint8 BGR for OpenCV."""
    if img.dtype != np.uint8:
        lo, hi = float(img.min()), float(img.max())
        if lo < 0 or hi > 255 or not np.isfinite(lo + hi):
            raise SegPCError(path, f"image {index}: values must lie in 0-255, got {lo:g}..{hi:g}")
        img = np.rint(img).astype(np.uint8)
    return np.ascontiguousarray(img[..., ::-1])


def instance_maps(mask: np.ndarray, path: Path, index: int, channels: Sequence[int] = range(5)) -> list[np.ndarray]:
    """Channels of one ``(H, W, 6)`` mask as int64 instance maps, checked.

    Ids must be non-negative integers and an id may appear in one channel only.
    """
    maps = []
    for c in range(5):
        ch = mask[..., c]
        lab = ch.astype(np.int64)
        if lab.min() < 0 or (ch.dtype.kind == "f" and (lab != ch).any()):
            raise SegPCError(path, f"image {index}, channel {c} ({CLASSES[c]}): instance ids must be "
                                   "non-negative integers")
        maps.append(lab)
    seen: dict[int, int] = {}
    for c, lab in enumerate(maps):
        for i in np.unique(lab):
            if i == 0:
                continue
            if int(i) in seen:
                raise SegPCError(path, f"image {index}: instance id {int(i)} is in channels {seen[int(i)]} "
                                       f"({CLASSES[seen[int(i)]]}) and {c} ({CLASSES[c]})")
            seen[int(i)] = c
    return [maps[c] for c in channels]


def image_annotations(maps: Sequence[np.ndarray], channels: Sequence[int]) -> list[dict]:
    """COCO annotations (without ids) of one image's instance maps: exact RLE, box, area."""
    anns = []
    for cat, (c, lab) in enumerate(zip(channels, maps), start=1):
        ids = np.unique(lab)
        ids = ids[ids > 0]
        if not len(ids):
            continue
        rles = encode_many(lab[None] == ids[:, None, None])
        for inst, rle in zip(ids, rles):
            x1, y1, x2, y2 = bbox_xyxy(rle)
            anns.append({"category_id": cat, "segmentation": rle, "area": area(rle),
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0, "instance_id": int(inst)})
    return anns


# What convert_fold writes into OUT_DIR (segpc.io.check_output_dir: only these may be replaced).
OUTPUT_FILES = (r"annotations\.json", r"images/[^/]+\.png")


def convert_fold(fold_dir: str | os.PathLike, out_dir: str | os.PathLike, classes: str = "all",
                 progress: bool = True, overwrite: bool = False) -> dict:
    """Write ``out_dir/images/<index>.png`` and ``out_dir/annotations.json``; returns the COCO dict.

    ``classes``: ``"all"`` (five categories) or ``"neoplastic"`` (Neoplastic nuclei only, as in the
    Mask R-CNN study). Every image is kept, with or without nuclei (the fold's order and length
    are the prediction layout's). Image ``id`` = fold index + 1; ``tissue`` and ``pannuke_index``
    are kept per image, ``instance_id`` (PanNuke's id) per annotation. ``out_dir`` must be new or
    empty, or (``overwrite``) hold a previous conversion; any other file there makes it refuse.
    """
    if classes not in CLASS_SETS:
        raise SegPCError(None, f"--classes must be one of {', '.join(CLASS_SETS)}, got {classes!r}")
    channels = CLASS_SETS[classes]
    fold = load_fold(fold_dir)
    out_dir = Path(out_dir)
    width = max(5, len(str(len(fold) - 1)))
    coco = {
        "info": {"description": f"PanNuke fold {Path(fold_dir).name}, converted by segpc",
                 "classes": classes, "pannuke_channels": list(channels)},
        "images": [], "annotations": [],
        "categories": [{"id": k, "name": CLASSES[c], "pannuke_channel": c} for k, c in enumerate(channels, 1)],
    }
    with atomic_dir(out_dir, OUTPUT_FILES, overwrite) as tmp:
        (tmp / IMG_DIR).mkdir()
        for i in tqdm(range(len(fold)), desc="convert", unit="img", disable=not progress):
            img = image_uint8(np.asarray(fold.images[i]), fold.images_path, i)
            maps = instance_maps(np.asarray(fold.masks[i]), fold.masks_path, i, channels)
            name = f"{i:0{width}d}.png"
            if not cv2.imwrite(str(tmp / IMG_DIR / name), img):
                raise SegPCError(out_dir / IMG_DIR / name, "cannot write image")
            h, w = img.shape[:2]
            coco["images"].append({"id": i + 1, "file_name": name, "height": h, "width": w,
                                   "tissue": str(fold.types[i]), "pannuke_index": i})
            for ann in image_annotations(maps, channels):
                coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": i + 1, **ann})
        write_json(coco, tmp / ANN_FILE)
    return coco


def summarize(coco: dict, out_dir: str | os.PathLike) -> str:
    counts = np.bincount([a["category_id"] for a in coco["annotations"]], minlength=len(coco["categories"]) + 1)
    per_class = ", ".join(f"{c['name']} {counts[c['id']]}" for c in coco["categories"])
    tissues = len({img["tissue"] for img in coco["images"]})
    return (f"{len(coco['images'])} images ({tissues} tissues), {len(coco['annotations'])} nuclei "
            f"({per_class}) -> {out_dir}")


# --------------------------------------------------------------------------- synthetic folds

# Per class: (semi-axis range in px, elongation range, RGB colour). Diameters 10-40 px.
_LOOK = {
    0: ((8.0, 18.0), (1.0, 1.6), (70, 30, 110)),    # Neoplastic: large, dark, irregular
    1: ((5.0, 7.0), (1.0, 1.2), (40, 15, 80)),      # Inflammatory: small, round, very dark
    2: ((7.0, 14.0), (2.5, 4.0), (110, 60, 150)),   # Connective: spindle-shaped
    3: ((5.0, 6.0), (1.0, 1.5), (150, 90, 160)),    # Dead: small, pale
    4: ((7.0, 11.0), (1.1, 1.5), (100, 50, 140)),   # Epithelial: medium, oval
}


def synthetic_image(rng: np.random.Generator, size: int = 256, max_nuclei: int = 40,
                    empty_prob: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """One H&E-like tile and its PanNuke ``(H, W, 6)`` mask (float64, ids random, unique)."""
    h = w = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.array([235, 190, 215], np.float64) + rng.normal(0, 6, 3)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w)), (0, 0), 6)
    img = base[None, None, :] + 12 * noise[..., None] / (noise.std() + 1e-9) + rng.normal(0, 4, (h, w, 3))
    label = np.zeros((h, w), np.int64)  # instance index (1..) on a shared canvas: no overlaps
    classes = []
    n = 0 if rng.random() < empty_prob else int(rng.integers(1, max_nuclei + 1))
    dominant = int(rng.integers(0, 5))
    for _ in range(n * 3):  # attempts
        if len(classes) == n:
            break
        c = dominant if rng.random() < 0.5 else int(rng.integers(0, 5))
        (r0, r1), (e0, e1), colour = _LOOK[c]
        a = rng.uniform(r0, r1)
        b = a / rng.uniform(e0, e1)
        cy, cx = rng.uniform(-a / 2, h + a / 2), rng.uniform(-a / 2, w + a / 2)
        t = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)
        v = -(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)
        wobble = 1 + 0.12 * np.sin(3 * np.arctan2(v, u) + rng.uniform(0, 6.3)) if c == 0 else 1.0
        inside = (u / a) ** 2 + (v / b) ** 2 <= wobble
        free = inside & (label == 0)
        if free.sum() < 12 or free.sum() < 0.7 * inside.sum():
            continue
        classes.append(c)
        label[free] = len(classes)
        shade = np.array(colour, np.float64) + rng.normal(0, 8, 3)
        img[free] = 0.25 * img[free] + 0.75 * shade
    img = np.clip(np.rint(cv2.GaussianBlur(img, (3, 3), 0.8)), 0, 255)
    mask = np.zeros((h, w, 6), np.float64)
    ids = np.sort(rng.choice(np.arange(1, 5000), size=len(classes), replace=False))
    rng.shuffle(ids)
    for k, c in enumerate(classes, start=1):
        mask[..., c][label == k] = ids[k - 1]
    mask[..., 5] = (label == 0).astype(np.float64)
    return img, mask


def write_synthetic_folds(root: str | os.PathLike, num: int = 8, folds: int = 3, seed: int = 0,
                          size: int = 256, max_nuclei: int = 40, overwrite: bool = False,
                          progress: bool = True) -> list[Path]:
    """Write PanNuke-format folds ``root/Fold k/{images,masks}/foldk/*.npy``; returns the fold folders.

    Images are float64 RGB 0-255 like PanNuke's, masks float64 with non-contiguous ids unique
    across channels, tissues drawn from PanNuke's 19. Same arguments → same arrays. Existing
    fold files are an error unless ``overwrite``.
    """
    root = Path(root)
    out = []
    for k in range(1, folds + 1):
        fold = root / f"Fold {k}"
        files = (fold / "images" / f"fold{k}" / "images.npy", fold / "images" / f"fold{k}" / "types.npy",
                 fold / "masks" / f"fold{k}" / "masks.npy")
        if not overwrite:
            for p in files:
                if p.exists():
                    raise SegPCError(p, "exists (pass --overwrite to replace the synthetic folds)")
        rng = np.random.default_rng([seed, k])
        images = np.empty((num, size, size, 3), np.float64)
        masks = np.empty((num, size, size, 6), np.float64)
        for i in tqdm(range(num), desc=f"Fold {k}", unit="img", disable=not progress):
            images[i], masks[i] = synthetic_image(rng, size, max_nuclei)
        types = np.array([TISSUES[j] for j in rng.integers(0, len(TISSUES), num)])
        for p, arr in zip(files, (images, types, masks)):
            with atomic_path(p) as tmp:
                np.save(tmp, arr)
        out.append(fold)
    return out
