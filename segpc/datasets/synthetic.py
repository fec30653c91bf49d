"""Synthetic SegPC data: Jenner-Giemsa-like bone-marrow smears with annotated plasma cells.

The project's embedded default data set and test fixture (pure numpy + OpenCV, no torch).
An image shows a textured lilac background, red blood cells, debris and small lymphocytes
(distractors, never annotated) and 0..``max_cells`` plasma cells: a blue/lilac cytoplasm with a
pale perinuclear zone around a dark purple, usually eccentric nucleus. Cells vary in size and
shape, touch or overlap (the cell drawn later is on top; each mask still covers its own cell's
whole shape, as SegPC annotates), are cut by the image border, and sometimes have a nucleus
that reaches the cell's edge.

Written layout (SegPC raw, the same as the challenge's)::

    <out_dir>/x/<id>.bmp        the image, 3-channel BMP (written by OpenCV, so BGR in memory)
    <out_dir>/y/<id>_<k>.bmp    one mask per plasma cell, k = 1..n: 0 background,
                                20 cytoplasm, 40 nucleus; an image without cells has none

Image ids are ``first_id, first_id + 1, ...`` as decimal strings (``"1"``, ``"2"``, ... by
default). Image ``i`` of a call is drawn from its own generator seeded by ``(seed, i)``, so it
does not depend on how many images come before it, and the same arguments always give
byte-identical files.
"""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from segpc.io import CYTOPLASM, NUCLEUS, SUBMISSION_FILES, SegPCError, atomic_dir, check_output_dir, write_image

DEFAULT_SIZE = (384, 512)  # (H, W): SegPC's 3:4 aspect, at the scale of the project's 512 data
MIN_SIDE = 32
# what write_dataset writes into x/ and y/ (segpc.io.check_output_dir): <id>.bmp, <id>_<k>.bmp
OWNS = {"x": (r"[0-9]+\.bmp",), "y": SUBMISSION_FILES}
_REF_SIDE = 384.0  # the short side the absolute sizes below are tuned for

# Fixed-point precision of the polygons handed to OpenCV (coordinates * 2**_SHIFT).
_SHIFT = 4
_ONE = 1 << _SHIFT

# Accepted placement of a plasma cell: at least this fraction of its area inside the frame.
_MIN_VISIBLE = 0.2


@dataclass(frozen=True)
class _Cell:
    """A plasma cell's geometry, in pixels (float)."""

    outline: np.ndarray  # (n, 2) x, y
    nucleus: np.ndarray  # (m, 2) x, y
    nucleus_center: np.ndarray  # (2,)
    nucleus_dir: np.ndarray  # unit vector from cell centre towards the nucleus
    radius: float
    nucleus_radius: float


# --------------------------------------------------------------------------- small helpers


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], scale: float, channels: int = 1
) -> np.ndarray:
    """Zero-mean, roughly unit-variance noise of feature size ``scale`` px, ``(h, w[, c])`` float32."""
    h, w = shape
    gh, gw = max(2, int(np.ceil(h / scale)) + 1), max(2, int(np.ceil(w / scale)) + 1)
    grid = rng.standard_normal((gh, gw, channels), dtype=np.float32)
    out = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return out.reshape(h, w, channels) if channels > 1 else out.reshape(h, w)


def _radial_shape(
    rng: np.random.Generator, center: np.ndarray, radius: float, aspect: float, wobble: float, n: int = 48
) -> tuple[np.ndarray, float]:
    """A rotated, irregular ellipse as an ``(n, 2)`` polygon; also its smallest radius."""
    theta = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    amps = rng.uniform(0.0, wobble, size=4)
    phases = rng.uniform(0.0, 2.0 * np.pi, size=4)
    r = 1.0 + sum(a * np.cos(k * theta + p) for k, a, p in zip(range(2, 6), amps, phases))
    pts = np.stack([r * np.cos(theta), aspect * r * np.sin(theta)], axis=1) * radius
    angle = rng.uniform(0.0, np.pi)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return pts @ rot.T + center, radius * aspect * (1.0 - amps.sum())


def _polygon_area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _fill(shape: tuple[int, int], pts: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
    """Rasterise a float polygon into a ``uint8`` 0/1 array whose (0, 0) is pixel ``origin`` (x, y)."""
    out = np.zeros(shape, np.uint8)
    fixed = np.rint((pts - np.asarray(origin, np.float64)) * _ONE).astype(np.int32)
    cv2.fillPoly(out, [fixed], 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return out


def _ellipse(
    img: np.ndarray, center: Sequence[float], axes: Sequence[float], angle: float, color: Sequence[float]
) -> None:
    """Filled sub-pixel ellipse on a float image (drawn in place)."""
    c = (int(round(center[0] * _ONE)), int(round(center[1] * _ONE)))
    a = (max(1, int(round(axes[0] * _ONE))), max(1, int(round(axes[1] * _ONE))))
    cv2.ellipse(img, c, a, float(angle), 0.0, 360.0, tuple(float(v) for v in color), -1, cv2.LINE_8, _SHIFT)


def _blend(roi: np.ndarray, alpha: np.ndarray, color: np.ndarray) -> None:
    """``roi = roi * (1 - alpha) + color * alpha`` in place; alpha ``(h, w)``, color ``(h, w, 3)``."""
    a = alpha[..., None]
    roi *= 1.0 - a
    roi += color * a


# --------------------------------------------------------------------------- scene parts


def _background(rng: np.random.Generator, h: int, w: int, s: float) -> np.ndarray:
    """Stained lilac background with blotchy and grainy texture, float32 BGR."""
    base = np.array([200.0, 184.0, 192.0]) + rng.uniform(-10.0, 10.0, 3)
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    img += (_smooth_noise(rng, (h, w), s / 5.0) * rng.uniform(3.0, 6.0))[..., None]  # uneven staining
    img += _smooth_noise(rng, (h, w), s / 4.0, 3) * rng.uniform(1.0, 2.5)  # slight hue drift
    img += (_smooth_noise(rng, (h, w), max(1.5, s / 90.0)) * rng.uniform(2.0, 4.0))[..., None]  # grain
    return img


def _red_cells(rng: np.random.Generator, img: np.ndarray, s: float) -> None:
    """Pale pink discs with a darker rim and a lighter centre (no masks)."""
    h, w = img.shape[:2]
    count = int(rng.integers(6, 45) * h * w / (_REF_SIDE * _REF_SIDE * 4 / 3))
    tint = np.array([180.0, 176.0, 214.0]) + rng.uniform(-10.0, 10.0, 3)
    for _ in range(count):
        r = rng.uniform(0.042, 0.058) * s
        cx, cy = rng.uniform(-r, w + r), rng.uniform(-r, h + r)
        axes = (r, r * rng.uniform(0.82, 1.0))
        angle = rng.uniform(0.0, 180.0)
        body = tint + rng.uniform(-6.0, 6.0, 3)
        _ellipse(img, (cx, cy), axes, angle, body - (22.0, 30.0, 14.0))
        _ellipse(img, (cx, cy), (axes[0] * 0.9, axes[1] * 0.9), angle, body)
        _ellipse(img, (cx, cy), (axes[0] * 0.45, axes[1] * 0.45), angle, body + (14.0, 16.0, 8.0))


def _debris(rng: np.random.Generator, img: np.ndarray, s: float) -> None:
    """Platelets, stain precipitate and small blobs (no masks)."""
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(0, 9))):
        r = rng.uniform(0.004, 0.018) * s
        dark = rng.uniform(0.0, 1.0)
        color = np.array([150.0, 95.0, 130.0]) * (1.0 - 0.6 * dark) + rng.uniform(-10.0, 10.0, 3)
        center = (rng.uniform(0, w), rng.uniform(0, h))
        _ellipse(img, center, (r, r * rng.uniform(0.5, 1.0)), rng.uniform(0, 180), color)


def _lymphocytes(rng: np.random.Generator, img: np.ndarray, s: float) -> None:
    """Small round cells: a dark, nearly filling nucleus with a thin pale rim (no masks)."""
    h, w = img.shape[:2]
    count = int(rng.choice([0, 0, 0, 1, 1, 2]))
    for _ in range(count):
        r = rng.uniform(0.045, 0.065) * s
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        x0, y0 = max(int(cx - r) - 2, 0), max(int(cy - r) - 2, 0)
        x1, y1 = min(int(cx + r) + 3, w), min(int(cy + r) + 3, h)
        if x1 <= x0 or y1 <= y0:
            continue
        roi = img[y0:y1, x0:x1]
        layer = roi.copy()
        angle = rng.uniform(0, 180)
        aspect = rng.uniform(0.85, 1.0)
        c = (cx - x0, cy - y0)
        _ellipse(layer, c, (r, r * aspect), angle, np.array([200.0, 165.0, 170.0]) + rng.uniform(-8, 8, 3))
        nuc = np.zeros(roi.shape[:2], np.float32)
        _ellipse(nuc, c, (r * 0.84, r * 0.84 * aspect), angle, (1.0,))
        color = np.empty_like(roi)
        color[:] = np.array([132.0, 50.0, 96.0]) + rng.uniform(-12, 12, 3)
        color -= (np.abs(_smooth_noise(rng, roi.shape[:2], max(1.5, r / 4.0))) * 14.0)[..., None]
        _blend(layer, nuc, color)
        roi[:] = layer


def _plasma_shape(rng: np.random.Generator, center: np.ndarray, radius: float) -> _Cell:
    """Cell outline and an (eccentric, sometimes edge-touching) nucleus outline."""
    outline, inner = _radial_shape(rng, center, radius, rng.uniform(0.75, 1.0), 0.05)
    rn = radius * rng.uniform(0.48, 0.72)
    direction = rng.standard_normal(2)
    direction /= np.linalg.norm(direction) + 1e-12
    wobble_n = 0.04
    room = inner - rn * (1.0 + 4 * wobble_n)  # farthest the nucleus centre may go and stay inside
    if rng.random() < 0.15:  # nucleus reaching the cell edge (clipped to the cell when rasterised)
        rel = outline - center
        dist = np.linalg.norm(rel, axis=1)
        edge = dist[int(np.argmax(rel @ direction / dist))]  # the cell's radius in that direction
        d = max(float(edge) - rn * rng.uniform(0.45, 0.62), 0.0)
    else:
        d = max(room, 0.0) * rng.uniform(0.3, 1.0)
    nc = center + direction * d
    nucleus, _ = _radial_shape(rng, nc, rn, rng.uniform(0.8, 1.0), wobble_n)
    return _Cell(outline, nucleus, nc, direction, radius, rn)


def _draw_plasma(
    rng: np.random.Generator, img: np.ndarray, cell: _Cell, cyt_tint: np.ndarray, nuc_tint: np.ndarray
) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray] | None:
    """Draw a plasma cell; return its ROI ``(x0, y0, x1, y1)`` and ROI masks, None if off-frame."""
    h, w = img.shape[:2]
    lo = np.floor(cell.outline.min(axis=0)).astype(int) - 2
    hi = np.ceil(cell.outline.max(axis=0)).astype(int) + 3
    x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    x1, y1 = min(int(hi[0]), w), min(int(hi[1]), h)
    if x1 <= x0 or y1 <= y0:
        return None
    shape = (y1 - y0, x1 - x0)
    cell_m = _fill(shape, cell.outline, (x0, y0))
    if cell_m.sum() < _MIN_VISIBLE * _polygon_area(cell.outline):
        return None
    nuc_m = _fill(shape, cell.nucleus, (x0, y0)) & cell_m

    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    r = cell.radius
    # Cytoplasm: tint, darker towards the membrane, a pale perinuclear zone (hof), mottling.
    dist = cv2.distanceTransform(cell_m, cv2.DIST_L2, 3)
    hof = cell.nucleus_center - cell.nucleus_dir * cell.nucleus_radius * 0.95
    hof_w = np.exp(-((xx - hof[0]) ** 2 + (yy - hof[1]) ** 2) / (2.0 * (0.28 * r) ** 2))
    rim_w = np.exp(-dist / (0.12 * r))
    cyt = np.empty(shape + (3,), np.float32)
    cyt[:] = cyt_tint + rng.uniform(-8.0, 8.0, 3)
    cyt += hof_w[..., None] * np.array([22.0, 34.0, 30.0], np.float32) * rng.uniform(0.4, 1.0)
    cyt -= rim_w[..., None] * np.array([14.0, 22.0, 16.0], np.float32)
    cyt += (_smooth_noise(rng, shape, max(1.5, r / 5.0)) * 5.0)[..., None]

    # Nucleus: purple with clumped chromatin and a darker border.
    nuc = np.empty(shape + (3,), np.float32)
    nuc[:] = nuc_tint + rng.uniform(-10.0, 10.0, 3)
    chromatin = _smooth_noise(rng, shape, max(1.5, cell.nucleus_radius / 4.0))
    nuc -= (np.abs(chromatin) * 16.0)[..., None]
    nuc += (_smooth_noise(rng, shape, max(1.2, r / 25.0)) * 5.0)[..., None]
    ndist = cv2.distanceTransform(nuc_m, cv2.DIST_L2, 3)
    nuc -= (np.exp(-ndist / (0.08 * r)) * 12.0)[..., None]

    roi = img[y0:y1, x0:x1]
    _blend(roi, cv2.GaussianBlur(cell_m.astype(np.float32), (0, 0), 0.7), cyt)
    _blend(roi, cv2.GaussianBlur(nuc_m.astype(np.float32), (0, 0), 0.7) * cell_m, nuc)
    return (x0, y0, x1, y1), cell_m, nuc_m


def _place(
    rng: np.random.Generator, radius: float, h: int, w: int, placed: list[tuple[np.ndarray, float]]
) -> np.ndarray:
    """A centre for a new cell: touching/overlapping a placed one, else apart from all."""
    if placed and rng.random() < 0.35:
        other, r_other = placed[int(rng.integers(len(placed)))]
        angle = rng.uniform(0.0, 2.0 * np.pi)
        return other + (radius + r_other) * rng.uniform(0.72, 1.0) * np.array([np.cos(angle), np.sin(angle)])
    margin = 0.4 * radius
    for _ in range(20):
        c = np.array([rng.uniform(-margin, w + margin), rng.uniform(-margin, h + margin)])
        if all(np.linalg.norm(c - o) > 1.05 * (radius + ro) for o, ro in placed):
            break
    return c


# --------------------------------------------------------------------------- public API


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise SegPCError(None, f"size must be two integers (H, W), got {size!r}") from None
    if h < MIN_SIDE or w < MIN_SIDE:
        raise SegPCError(None, f"size must be at least {MIN_SIDE}x{MIN_SIDE} (H x W), got {h}x{w}")
    return h, w


def _check_counts(max_cells: int, empty_prob: float) -> None:
    if max_cells < 0:
        raise SegPCError(None, f"max_cells must be >= 0, got {max_cells}")
    if not 0.0 <= empty_prob <= 1.0:
        raise SegPCError(None, f"empty_prob must be in [0, 1], got {empty_prob}")


def generate_sample(
    rng: np.random.Generator,
    size: Sequence[int] = DEFAULT_SIZE,
    *,
    max_cells: int = 6,
    empty_prob: float = 0.15,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Draw one synthetic smear.

    Returns the image (``(H, W, 3)`` uint8, BGR) and one ``(H, W)`` uint8 mask per plasma cell
    (0 background, 20 cytoplasm, 40 nucleus; nucleus inside the cell; never empty), in drawing
    order. With probability ``empty_prob`` the image has no plasma cell (and no mask);
    otherwise 1..``max_cells`` are attempted (a cell that would fall mostly outside the frame
    is dropped, so a few images get fewer).
    """
    h, w = _check_size(size)
    _check_counts(max_cells, empty_prob)
    s = float(min(h, w))

    img = _background(rng, h, w, s)
    _red_cells(rng, img, s)
    _debris(rng, img, s)
    _lymphocytes(rng, img, s)

    n = 0 if max_cells == 0 or rng.random() < empty_prob else int(rng.integers(1, max_cells + 1))
    cyt_tint = np.array([198.0, 124.0, 116.0]) + rng.uniform(-14.0, 14.0, 3)
    nuc_tint = np.array([146.0, 56.0, 106.0]) + rng.uniform(-12.0, 12.0, 3)
    placed: list[tuple[np.ndarray, float]] = []
    masks: list[np.ndarray] = []
    for _ in range(n):
        radius = rng.uniform(0.055, 0.125) * s
        for _attempt in range(5):
            center = _place(rng, radius, h, w, placed)
            drawn = _draw_plasma(rng, img, _plasma_shape(rng, center, radius), cyt_tint, nuc_tint)
            if drawn is not None:
                break
        else:
            continue
        (x0, y0, x1, y1), cell_m, nuc_m = drawn
        mask = np.zeros((h, w), np.uint8)
        mask[y0:y1, x0:x1] = cell_m * CYTOPLASM + nuc_m * (NUCLEUS - CYTOPLASM)
        masks.append(mask)
        placed.append((center, radius))

    # Optics and sensor: slight defocus, stain intensity, noise.
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.0) * max(s / _REF_SIDE, 0.5))
    img = img * rng.uniform(0.95, 1.05) + rng.uniform(-6.0, 6.0)
    img += rng.standard_normal((h, w, 3), dtype=np.float32) * rng.uniform(1.5, 3.5)
    np.clip(img, 0.0, 255.0, out=img)
    return np.rint(img).astype(np.uint8), masks


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index`` (0-based) of a data set with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(index,)))


def split_seed(seed: int, name: str) -> int:
    """A split's own seed, derived from the data set's seed and the split's name."""
    return int(np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(1)[0])


def write_dataset(
    out_dir: str | os.PathLike,
    num: int,
    seed: int = 0,
    size: Sequence[int] = DEFAULT_SIZE,
    *,
    first_id: int = 1,
    max_cells: int = 6,
    empty_prob: float = 0.15,
    overwrite: bool = False,
    progress: bool = False,
) -> list[str]:
    """Write ``num`` synthetic images in SegPC raw layout under ``out_dir``; return their ids.

    ``out_dir/x`` and ``out_dir/y`` are built in temporary folders and put in place only when
    every file is written (other content of ``out_dir`` is left alone). If either already
    holds files, :class:`SegPCError` is raised unless ``overwrite`` and they hold only the
    names this function writes (then both are replaced; :func:`segpc.io.check_output_dir`).
    """
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise SegPCError(None, f"num must be a positive integer, got {num!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SegPCError(None, f"seed must be a non-negative integer, got {seed!r}")
    if first_id < 0:
        raise SegPCError(None, f"first_id must be >= 0, got {first_id}")
    size = _check_size(size)
    _check_counts(max_cells, empty_prob)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SegPCError(out, "exists and is not a directory")
    for sub, owns in OWNS.items():  # both checked before anything is written
        check_output_dir(out / sub, owns, overwrite)

    ids = [str(first_id + i) for i in range(num)]
    with atomic_dir(out / "x", OWNS["x"], overwrite) as x_dir, \
            atomic_dir(out / "y", OWNS["y"], overwrite) as y_dir:
        for i, image_id in enumerate(tqdm(ids, desc="synthetic", unit="img", disable=not progress)):
            img, masks = generate_sample(image_rng(seed, i), size, max_cells=max_cells, empty_prob=empty_prob)
            write_image(x_dir / f"{image_id}.bmp", img)
            for k, mask in enumerate(masks, start=1):
                write_image(y_dir / f"{image_id}_{k}.bmp", mask)
    return ids


def write_splits(
    root: str | os.PathLike,
    counts: Mapping[str, int],
    seed: int = 0,
    size: Sequence[int] = DEFAULT_SIZE,
    **kwargs: Any,
) -> dict[str, list[str]]:
    """Write one data set per split, ``root/<name>/{x,y}``; return the ids per split.

    Each split gets its own seed (:func:`split_seed`) and ids continue across splits in the
    mapping's order (train 1..n1, validation n1+1..n1+n2, ...), so ids are unique under
    ``root``. ``kwargs`` go to :func:`write_dataset`.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SegPCError(None, f"seed must be a non-negative integer, got {seed!r}")
    first_id = int(kwargs.pop("first_id", 1))
    result: dict[str, list[str]] = {}
    for name, num in counts.items():
        result[name] = write_dataset(
            Path(root) / name, num, split_seed(seed, name), size, first_id=first_id, **kwargs
        )
        first_id += num
    return result
