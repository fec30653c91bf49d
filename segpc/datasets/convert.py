"""SegPC-2021 raw layout → COCO instances with three classes (nucleus, cytoplasm, cell).

A split folder holds ``x/<id>.<ext>`` (images) and ``y/<id>_<k>.<ext>`` (one mask per cell:
0 background, 20 cytoplasm, 40 nucleus; ``y/`` may be absent for a test split). Every mask
file gives a *cell* annotation (mask > 0), a *nucleus* annotation (mask == 40) and a *cytoplasm*
annotation (cell − nucleus), the last two only when non-empty; any value > 0 other than 40
counts as cytoplasm. Masks are RLE-encoded exactly (holes kept). An all-zero mask gives no
annotation; its file name is listed in the image's ``empty_masks``, so that the metric counts it as
the challenge's scorer does (a cell no prediction matches, IoU 0). Optionally a semantic map
(0 background, 1 cell) is written per image for HTC/SCNet's semantic head.

Bad input raises :class:`~segpc.io.SegPCError` and leaves no output (JSON or semantic maps) behind.
"""
from __future__ import annotations

import logging
import os
import shutil
import struct
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import cv2
import numpy as np
from tqdm import tqdm

from segpc.io import (
    IMAGE_EXTS, MASK_EXTS, NUCLEUS, SegPCError, image_size, read_mask, split_mask_stem, write_json,
)
from segpc.structures import CLASSES, CropMask, mask_box, xyxy_to_xywh

logger = logging.getLogger(__name__)

CATEGORIES = [{"id": i, "name": name} for i, name in enumerate(CLASSES, start=1)]
NUCLEUS_ID, CYTOPLASM_ID, CELL_ID = (CLASSES.index(n) + 1 for n in ("nucleus", "cytoplasm", "cell"))

Annotation = tuple[int, dict, int, list[int]]  # (category_id, rle, area, [x, y, w, h])


@dataclass
class ImageEntry:
    """One image of a split and its mask files ``(cell index, path)``, in cell-index order."""

    stem: str
    path: Path
    masks: list[tuple[str, Path]] = field(default_factory=list)
    id: int = 0


@dataclass
class _ImageResult:
    height: int
    width: int
    cells: list[tuple[str, str, list[Annotation]]]  # (cell index, mask file name, annotations)
    empty_masks: list[Path]


# --------------------------------------------------------------------------- image size from header

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _png_size(f: BinaryIO, head: bytes) -> tuple[int, int] | None:
    if head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    # OpenCV rotates images that carry an EXIF orientation: let it decide when there is one.
    f.seek(8)
    for _ in range(10_000):
        chunk = f.read(8)
        if len(chunk) < 8:
            return None
        length, kind = struct.unpack(">I4s", chunk)
        if kind in (b"IDAT", b"IEND"):
            return height, width
        if kind == b"eXIf":
            return None
        f.seek(length + 4, os.SEEK_CUR)
    return None


def _bmp_size(head: bytes) -> tuple[int, int] | None:
    (dib,) = struct.unpack("<I", head[14:18])
    if dib == 12:
        width, height = struct.unpack("<HH", head[18:22])
    elif dib >= 40:
        width, height = struct.unpack("<ii", head[18:26])
    else:
        return None
    return abs(height), width


def _jpeg_size(f: BinaryIO) -> tuple[int, int] | None:
    f.seek(2)
    while True:
        byte = f.read(1)
        if byte != b"\xff":
            return None
        while byte == b"\xff":  # fill bytes
            byte = f.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        raw = f.read(2)
        if len(raw) < 2 or struct.unpack(">H", raw)[0] < 2:
            return None
        length = struct.unpack(">H", raw)[0] - 2
        end = f.tell() + length
        if marker in _JPEG_SOF:
            data = f.read(5)
            if len(data) < 5:
                return None
            height, width = struct.unpack(">HH", data[1:5])
            return height, width
        if marker == 0xE1 and f.read(min(length, 6)).startswith(b"Exif"):
            return None  # may carry an orientation that OpenCV applies
        f.seek(end)


def header_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(height, width)`` read from a BMP, PNG or JPEG header, as OpenCV would decode it.

    Returns ``None`` when the header cannot tell (other formats, EXIF orientation, unusual
    structure); callers then decode the image. Only the header is checked, not the pixel data.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            if len(head) < 26:
                return None
            if head.startswith(b"\x89PNG\r\n\x1a\n"):
                size = _png_size(f, head)
            elif head.startswith(b"BM"):
                size = _bmp_size(head)
            elif head.startswith(b"\xff\xd8\xff"):
                size = _jpeg_size(f)
            else:
                return None
    except OSError:
        return None
    if size is None or size[0] <= 0 or size[1] <= 0:
        return None
    return size


# --------------------------------------------------------------------------- masks → RLE


def _mask_annotations(mask: np.ndarray) -> tuple[list[Annotation], tuple[int, int, np.ndarray] | None]:
    """Annotations of one cell mask, and its cell pixels as ``(x0, y0, crop)`` (``None`` if empty)."""
    if mask.ndim != 2:
        raise ValueError(f"expected an (H, W) mask, got shape {mask.shape}")
    box = mask_box(mask)
    if box is None:
        return [], None
    x0, y0, x1, y1 = box
    sub = mask[y0:y1, x0:x1]
    cell = sub > 0
    nucleus = sub == NUCLEUS
    anns = []
    for cat, crop in ((CELL_ID, cell), (NUCLEUS_ID, nucleus), (CYTOPLASM_ID, cell & ~nucleus)):
        m = CropMask(y0, x0, crop, mask.shape)
        if m.area:
            anns.append((cat, m.to_rle(), m.area, xyxy_to_xywh(m.box)))
    return anns, (x0, y0, cell)


def mask_to_annotations(mask: np.ndarray) -> list[Annotation]:
    """One SegPC cell mask ``(H, W)`` → ``[(category_id, rle, area, [x, y, w, h]), ...]``.

    Cell (mask > 0) first, then nucleus (== 40) and cytoplasm (cell − nucleus) when non-empty;
    an all-zero mask gives ``[]``. RLE counts are ``str``; boxes are pycocotools' ``toBbox``.
    """
    return _mask_annotations(np.asarray(mask))[0]


# --------------------------------------------------------------------------- scanning a split


def _is_listed(entry: os.DirEntry) -> bool:
    return not entry.name.startswith(".") and entry.is_file()


def _warn_ignored(folder: Path, names: list[str]) -> None:
    if names:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        logger.warning("%s: ignoring %d file(s) that are not images: %s", folder, len(names), shown)


def scan_split(split_dir: str | os.PathLike) -> list[ImageEntry]:
    """List a split's images and their masks, checking names; sorted by image id.

    Ids: ``int(stem)`` when every image stem is a distinct decimal integer, otherwise the
    1-based position in sorted stem order.
    """
    split_dir = Path(split_dir)
    x_dir, y_dir = split_dir / "x", split_dir / "y"
    layout = "expected SPLIT_DIR/x/<id>.<ext> and SPLIT_DIR/y/<id>_<k>.<ext>"
    if not split_dir.is_dir():
        raise SegPCError(split_dir, f"split folder not found ({layout})")
    if not x_dir.is_dir():
        raise SegPCError(x_dir, f"image folder not found ({layout})")

    images: dict[str, ImageEntry] = {}
    ignored = []
    for entry in sorted(os.scandir(x_dir), key=lambda e: e.name):
        if not _is_listed(entry):
            continue
        path = Path(entry.path)
        if path.suffix.lower() not in IMAGE_EXTS:
            ignored.append(entry.name)
            continue
        if path.stem in images:
            other = images[path.stem].path.name
            raise SegPCError(path, f"two images with id {path.stem!r}: {other} and {path.name}")
        images[path.stem] = ImageEntry(path.stem, path)
    _warn_ignored(x_dir, ignored)
    if not images:
        raise SegPCError(x_dir, f"no images ({', '.join(IMAGE_EXTS)}) in the image folder")

    if y_dir.exists():
        if not y_dir.is_dir():
            raise SegPCError(y_dir, "not a folder")
        seen: dict[tuple[str, str], Path] = {}
        ignored = []
        for entry in sorted(os.scandir(y_dir), key=lambda e: e.name):
            if not _is_listed(entry):
                continue
            path = Path(entry.path)
            ext = path.suffix.lower()
            if ext not in IMAGE_EXTS:
                ignored.append(entry.name)
                continue
            if ext not in MASK_EXTS:
                exts = " or ".join(MASK_EXTS)
                raise SegPCError(path, f"masks must be {exts} (lossy formats change label values)")
            try:
                image_id, k = split_mask_stem(path.stem)
            except ValueError:
                image_id, k = "", ""
            if not (k.isascii() and k.isdigit()):
                raise SegPCError(path, "mask name must be <image id>_<cell index>.<ext>, e.g. 106_3.bmp")
            if image_id not in images:
                raise SegPCError(path, f"mask without image: no {image_id}.* in {x_dir}")
            if (image_id, k) in seen:
                other = seen[image_id, k].name
                raise SegPCError(path, f"two masks for cell {k} of image {image_id}: {other} and {path.name}")
            seen[image_id, k] = path
            images[image_id].masks.append((k, path))
        _warn_ignored(y_dir, ignored)

    stems = sorted(images)
    numeric = all(s.isascii() and s.isdigit() for s in stems) and len({int(s) for s in stems}) == len(stems)
    for i, stem in enumerate(stems, start=1):
        entry = images[stem]
        entry.id = int(stem) if numeric else i
        entry.masks.sort(key=lambda m: (int(m[0]), m[0]))
    return sorted(images.values(), key=lambda e: e.id)


# --------------------------------------------------------------------------- conversion


def _convert_image(entry: ImageEntry, semantic_tmp: Path | None, verify_images: bool) -> _ImageResult:
    size = None if verify_images else header_size(entry.path)
    height, width = size if size is not None else image_size(entry.path)
    semantic = np.zeros((height, width), np.uint8) if semantic_tmp is not None else None
    cells, empty = [], []
    for k, path in entry.masks:
        mask = read_mask(path)
        if mask.shape != (height, width):
            mh, mw = mask.shape
            raise SegPCError(path, f"mask is {mw}x{mh} but its image {entry.path.name} is {width}x{height}")
        anns, cell = _mask_annotations(mask)
        if not anns:
            empty.append(path)
            continue
        cells.append((k, path.name, anns))
        if semantic is not None:
            x0, y0, crop = cell
            semantic[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] |= crop
    if semantic is not None:
        out = semantic_tmp / f"{entry.stem}.png"
        if not cv2.imwrite(str(out), semantic):
            raise SegPCError(out, "cannot write semantic map")
    return _ImageResult(height, width, cells, empty)


def _results(
    entries: list[ImageEntry], semantic_tmp: Path | None, verify_images: bool, workers: int, progress: bool
) -> Iterator[_ImageResult]:
    """Yield each image's result in order; decoding runs on ``workers`` threads (cv2 frees the GIL)."""
    bar = tqdm(total=len(entries), desc="convert", unit="img", disable=not progress)
    try:
        if workers <= 1:
            for entry in entries:
                yield _convert_image(entry, semantic_tmp, verify_images)
                bar.update()
            return
        with ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(_convert_image, e, semantic_tmp, verify_images) for e in entries]
            try:
                for fut in futures:
                    yield fut.result()
                    bar.update()
            finally:
                for fut in futures:
                    fut.cancel()
    finally:
        bar.close()


def _semantic_staging(semantic_dir: Path) -> tuple[Path, Path]:
    """A temporary folder beside ``semantic_dir``, and what to remove if the conversion fails
    (the staging folder, or the topmost parent folder created for it)."""
    if semantic_dir.exists() and not semantic_dir.is_dir():
        raise SegPCError(semantic_dir, "semantic map folder is not a folder")
    parent = semantic_dir.absolute().parent
    created = None
    for p in (parent, *parent.parents):
        if p.exists():
            break
        created = p
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{semantic_dir.name}.", suffix=".tmp", dir=parent))
    return staging, created or staging


def convert_split(
    split_dir: str | os.PathLike,
    semantic_dir: str | os.PathLike | None = None,
    *,
    progress: bool = True,
    workers: int | None = None,
    verify_images: bool = False,
) -> dict:
    """Convert a SegPC split folder to a COCO dict (see the module docstring).

    With ``semantic_dir``, ``<semantic_dir>/<image stem>.png`` (uint8, 1 = cell) is written per
    image; maps are staged in a temporary folder and moved in only when the whole split
    converted, so bad input leaves nothing behind. Image sizes come from file headers unless
    ``verify_images`` (then every image is decoded). ``workers`` threads decode masks
    (default: up to 4, one per CPU).
    """
    split_dir = Path(split_dir)
    entries = scan_split(split_dir)
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    semantic_dir = None if semantic_dir is None else Path(semantic_dir)
    staging, cleanup = _semantic_staging(semantic_dir) if semantic_dir is not None else (None, None)
    images, annotations, empty_masks = [], [], []
    results = _results(entries, staging, verify_images, workers, progress)
    done = False
    try:
        for entry, res in zip(entries, results):
            images.append(
                {"id": entry.id, "file_name": entry.path.name, "height": res.height, "width": res.width}
            )
            if res.empty_masks:  # cells the challenge scores (IoU 0) but nothing can learn from
                images[-1]["empty_masks"] = [p.name for p in res.empty_masks]
            empty_masks += res.empty_masks
            for k, mask_file, anns in res.cells:
                for cat, rle, area, bbox in anns:
                    annotations.append({
                        "id": len(annotations) + 1, "image_id": entry.id, "category_id": cat,
                        "segmentation": rle, "area": area, "bbox": bbox, "iscrowd": 0,
                        "cell_index": k, "mask_file": mask_file,
                    })
        if staging is not None:
            semantic_dir.mkdir(exist_ok=True)
            for entry in entries:
                name = f"{entry.stem}.png"
                os.replace(staging / name, semantic_dir / name)
        done = True
    finally:
        results.close()  # stop the worker threads before removing their output folder
        if staging is not None:
            shutil.rmtree(staging if done else cleanup, ignore_errors=True)
    for path in empty_masks:
        logger.warning("%s: empty mask (no pixel > 0): no annotation; listed in its image's "
                       "empty_masks, scored as a missed cell (IoU 0) as by the challenge", path)
    return {
        "info": {"description": f"SegPC-2021 {split_dir.resolve().name}, converted by segpc"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [dict(c) for c in CATEGORIES],
    }


def write_coco(
    split_dir: str | os.PathLike,
    out_json: str | os.PathLike,
    semantic_dir: str | os.PathLike | None = None,
    **kwargs,
) -> dict:
    """:func:`convert_split` then write the COCO JSON atomically; returns the COCO dict."""
    out_json = Path(out_json)
    if out_json.is_dir():
        raise SegPCError(out_json, "output is a folder, expected a .json file path")
    coco = convert_split(split_dir, semantic_dir, **kwargs)
    write_json(coco, out_json)
    return coco


def summarize(coco: dict, out_json: str | os.PathLike | None = None) -> str:
    """One line: images, images without cells, cells, nuclei (and where it was written)."""
    cats = [a["category_id"] for a in coco["annotations"]]
    with_cells = {a["image_id"] for a in coco["annotations"] if a["category_id"] == CELL_ID}
    line = (
        f"{len(coco['images'])} images ({len(coco['images']) - len(with_cells)} without cells), "
        f"{cats.count(CELL_ID)} cells, {cats.count(NUCLEUS_ID)} nuclei"
    )
    return line if out_json is None else f"{line} -> {out_json}"
