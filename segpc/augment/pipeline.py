"""Offline augmentation of a SegPC COCO dataset: ``num`` augmented copies of every image.

Layout of ``OUT_DIR``::

    annotations.json              COCO, written last (atomically): originals + copies
    x/<stem>.<ext>                the original (unless --no-originals)
    x/<stem>_aug001.<ext>         copy 1, ... (subfolders of file_name are kept)
    semantic/<stem>_aug001.png    its whole-cell map (0 background, 1 cell) for HTC/SCNet
    .segpc-augment/run.json       the settings the outputs were made with
    .segpc-augment/records/<image>.json   the annotations of one output image
    .segpc-augment/lock           held while a run works on OUT_DIR

Guarantees:

* **Deterministic**: copy ``k`` of image ``id`` is augmented with the seed derived from
  ``(seed, id, k)`` only (``numpy.random.SeedSequence``), so outputs are byte-identical for any
  number of workers and any order of work. Changing ``--num`` keeps the copies both runs share.
* **Resumable**: every output image is written atomically (temporary file + rename), then its
  record; an image counts as done when its record exists, names the image's size in bytes and
  the digest of its source (annotations, file name, file size: edited sources are redone).
  A run killed at any moment leaves only complete files (plus hidden temporaries, removed by
  the next run); started again it makes only the missing images, then assembles
  ``annotations.json`` from the records.
* **Exact masks**: see :mod:`segpc.augment.cells`.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
from imgaug.augmentables.segmaps import SegmentationMapsOnImage

from segpc.io import SegPCError, atomic_path, load_json, read_image, write_image, write_json
from segpc.structures import decode
from segpc.structures.rle import compressed, polygons_to_rle

from .cells import PackedCells, extract_cells, fit_size, pack_cells, resize_mask, resize_packed
from .policy import build_policy, read_policy

RUN_FORMAT = "segpc-augment/1"
WORK_DIR = ".segpc-augment"
IMAGES_DIR = "x"  # as in a SegPC split folder: OUT_DIR can serve as a split
SEMANTIC_DIR = "semantic"
ANNOTATIONS = "annotations.json"
CATEGORY_NAMES = ("nucleus", "cytoplasm", "cell")
FORMATS = {"jpg": ".jpg", "png": ".png"}
_SAME_FORMAT = {".jpg": (".jpg", ".jpeg"), ".png": (".png",)}


@dataclass
class Source:
    """One input image and its cells (RLEs as in the input JSON)."""

    image_id: int
    file_name: str
    path: str
    height: int
    width: int
    # per cell: (cell_index, mask_file, cell RLE or None, nucleus RLE or None, cytoplasm RLE or None)
    cells: list = field(default_factory=list)
    key: str = ""  # digest of everything above but the id + the image file's size: outputs of an
    #               image whose annotations or file changed are made again on resume


@dataclass
class Options:
    num: int = 50
    seed: int = 0
    max_size: tuple[int, int] | None = None
    image_format: str = "jpg"
    originals: bool = True
    min_area: int = 1

    def fingerprint(self) -> dict:
        """What the content of an output image depends on (``num`` and ``originals`` only
        choose *which* images exist)."""
        return {"seed": self.seed, "max_size": list(self.max_size) if self.max_size else None,
                "format": self.image_format, "min_area": self.min_area}


# --------------------------------------------------------------------------- input


def _rle(seg, h: int, w: int, where: str, ann_json) -> dict:
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        if list(seg["size"]) != [h, w]:
            raise SegPCError(ann_json, f"{where}: RLE size {seg['size']} != image size [{h}, {w}]")
        return compressed(seg) if isinstance(seg["counts"], list) else seg
    if isinstance(seg, list) and seg:  # polygons
        return polygons_to_rle(seg, (h, w))
    raise SegPCError(ann_json, f"{where}: segmentation must be an RLE or polygons")


def load_sources(ann_json: str | os.PathLike, img_dir: str | os.PathLike) -> tuple[dict, list[Source]]:
    """Read a SegPC COCO file; returns ``(coco, sources)``. Errors name the file."""
    coco = load_json(ann_json)
    if not isinstance(coco, dict) or not all(isinstance(coco.get(k), list)
                                             for k in ("images", "annotations", "categories")):
        raise SegPCError(ann_json, "not a COCO file (needs images, annotations and categories lists)")
    cat_name = {}
    for c in coco["categories"]:
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise SegPCError(ann_json, f"bad category {c!r}")
        cat_name[c["id"]] = c["name"]
    missing = set(CATEGORY_NAMES) - set(cat_name.values())
    if missing:
        raise SegPCError(ann_json, f"categories {sorted(missing)} missing (need {', '.join(CATEGORY_NAMES)})")
    img_dir = Path(img_dir)
    if not img_dir.is_dir():
        raise SegPCError(img_dir, "image directory not found")
    sources: dict = {}
    for im in coco["images"]:
        try:
            iid, fname, h, w = im["id"], im["file_name"], int(im["height"]), int(im["width"])
        except (KeyError, TypeError, ValueError):
            raise SegPCError(ann_json, f"image entry {im!r} needs id, file_name, height, width") from None
        if iid in sources:
            raise SegPCError(ann_json, f"duplicate image id {iid}")
        p = PurePosixPath(fname)
        if p.is_absolute() or ".." in p.parts or not p.name:
            raise SegPCError(ann_json, f"image {iid}: file_name {fname!r} must be a relative path inside the image directory")
        path = img_dir / fname
        if not path.is_file():
            raise SegPCError(path, f"image file not found (image id {iid} of {ann_json})")
        sources[iid] = Source(iid, fname, str(path), h, w)
    cells: dict = {}  # (image_id, cell_index) -> [mask_file, {name: rle}]
    order: dict = {iid: [] for iid in sources}
    for a in coco["annotations"]:
        aid = a.get("id") if isinstance(a, dict) else None
        where = f"annotation {aid}"
        if not isinstance(a, dict) or a.get("image_id") not in sources:
            raise SegPCError(ann_json, f"{where}: unknown image_id")
        if "cell_index" not in a:
            raise SegPCError(ann_json, f"{where}: no cell_index (needed to link nucleus, cytoplasm and cell)")
        name = cat_name.get(a.get("category_id"))
        if name not in CATEGORY_NAMES:
            raise SegPCError(ann_json, f"{where}: category_id {a.get('category_id')!r} is not nucleus/cytoplasm/cell")
        src = sources[a["image_id"]]
        key = (src.image_id, a["cell_index"])
        if key not in cells:
            cells[key] = [a.get("mask_file"), {}]
            order[src.image_id].append(a["cell_index"])
        entry = cells[key]
        if entry[0] is None:
            entry[0] = a.get("mask_file")
        if name in entry[1]:
            raise SegPCError(ann_json, f"{where}: second {name} for cell {a['cell_index']!r} of image {src.image_id}")
        entry[1][name] = _rle(a.get("segmentation"), src.height, src.width, where, ann_json)
    for iid, src in sources.items():
        for ci in order[iid]:
            mask_file, rles = cells[(iid, ci)]
            src.cells.append((ci, mask_file, rles.get("cell"), rles.get("nucleus"), rles.get("cytoplasm")))
        blob = json.dumps([src.file_name, src.height, src.width, src.cells, os.path.getsize(src.path)])
        src.key = hashlib.sha1(blob.encode()).hexdigest()
    return coco, list(sources.values())


# --------------------------------------------------------------------------- names and seeds


def output_name(file_name: str, k: int, ext: str) -> str:
    """``'a/106.bmp', 3, '.jpg'`` → ``'a/106_aug003.jpg'``; ``k = 0`` is the original."""
    p = PurePosixPath(file_name)
    return str(p.with_name(f"{p.stem}_aug{k:03d}{ext}" if k else f"{p.stem}{ext}"))


def copy_entropy(seed: int, image_id, k: int) -> int:
    """The seed of copy ``k`` of an image: a function of ``(seed, image id, k)`` only."""
    key = image_id if isinstance(image_id, int) and image_id >= 0 else zlib.crc32(str(image_id).encode())
    return int(np.random.SeedSequence([seed, key, k]).generate_state(1, np.uint64)[0])


# --------------------------------------------------------------------------- worker


@dataclass
class _Prepared:
    image_id: object
    rgb: np.ndarray
    packed: PackedCells
    resized: bool
    mask_files: dict


_STATE: dict = {}


def _init_worker(payload: dict, in_pool: bool = True) -> None:
    if in_pool:
        cv2.setNumThreads(1)  # one process per core already
    _STATE.clear()
    _STATE.update(payload)
    _STATE["policy"] = build_policy(payload["policy_spec"], payload["policy_name"], fast=payload["fast"])
    _STATE["cache"] = None


def _prepare(src: Source, opts: Options) -> _Prepared:
    bgr = read_image(src.path)
    if bgr.shape[:2] != (src.height, src.width):
        raise SegPCError(src.path, f"image is {bgr.shape[1]}x{bgr.shape[0]} but the annotations say "
                                   f"{src.width}x{src.height}")
    w, h = fit_size(src.width, src.height, opts.max_size)
    resized = (w, h) != (src.width, src.height)
    if resized:
        bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
    cells, mask_files = [], {}
    for ci, mask_file, cell, nucleus, cyto in src.cells:
        # the cell is the union of its parts (the cell annotation, or nucleus and cytoplasm)
        nuc_m = decode(nucleus) if nucleus is not None else None
        cell_m = decode(cell) if cell is not None else np.zeros((src.height, src.width), np.uint8)
        if cell is None and cyto is not None:
            cell_m |= decode(cyto)
        if nuc_m is not None:
            cell_m |= nuc_m
        if resized:
            cell_m = resize_mask(cell_m, w, h)
            nuc_m = resize_mask(nuc_m, w, h) if nuc_m is not None else None
        cells.append((ci, cell_m, nuc_m))
        mask_files[_key(ci)] = mask_file
    packed = pack_cells(cells, h, w)
    return _Prepared(src.image_id, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), packed, resized, mask_files)


def _key(ci):
    return json.dumps(ci)


def _augment_copy(prep: _Prepared, k: int, opts: Options, policy) -> tuple[np.ndarray, np.ndarray]:
    if k == 0:
        return prep.rgb, prep.packed.arr
    policy.seed_(copy_entropy(opts.seed, prep.image_id, k))
    seg = SegmentationMapsOnImage(prep.packed.arr, shape=prep.rgb.shape)
    img, seg = policy(image=prep.rgb, segmentation_maps=seg)  # imgaug copies its inputs
    arr = seg.arr
    h, w = img.shape[:2]
    if arr.shape[:2] != (h, w):
        arr = resize_packed(arr, w, h)
    fw, fh = fit_size(w, h, opts.max_size)  # size-changing augmenters (Rot90, ...)
    if (fw, fh) != (w, h):
        img = cv2.resize(img, (fw, fh), interpolation=cv2.INTER_AREA)
        arr = resize_packed(arr, fw, fh)
    return np.ascontiguousarray(img), arr


def _write_output(image_path: Path, record_path: Path, img_rgb: np.ndarray | None,
                  copy_from: str | None, record: dict, semantic_path: Path, semantic: np.ndarray) -> None:
    """Write one output's semantic map, its image, then its record (all atomically; the record
    marks it done, so an output interrupted anywhere is made again)."""
    write_image(semantic_path, semantic)
    if copy_from is not None:
        with atomic_path(image_path) as tmp:
            shutil.copyfile(copy_from, tmp)
    else:
        write_image(image_path, cv2.cvtColor(img_rgb, cv2.COLOR_RGB2BGR))
    record["bytes"] = os.path.getsize(image_path)
    write_json(record, record_path)


def make_output(src: Source, prep: _Prepared, k: int, state: dict) -> None:
    opts: Options = state["opts"]
    ext = FORMATS[opts.image_format]
    name = output_name(src.file_name, k, ext)
    img, arr = _augment_copy(prep, k, opts, state["policy"])
    cells = extract_cells(arr, prep.packed, opts.min_area)
    h, w = img.shape[:2]
    record = {
        "file_name": name, "height": int(h), "width": int(w),
        "source_image_id": src.image_id, "source_file_name": src.file_name, "source_key": src.key,
        "aug_index": k,
        "cells": [{"cell_index": c["key"],
                   "mask_file": prep.mask_files.get(_key(c["key"])) if k == 0 else None,
                   **{n: c[n] for n in CATEGORY_NAMES}} for c in cells],
    }
    copy_from = None
    if k == 0 and not prep.resized and Path(src.file_name).suffix.lower() in _SAME_FORMAT[ext]:
        copy_from = src.path  # the original, byte for byte
    semantic = (arr != 0).any(axis=2).astype(np.uint8)  # union of the cells: 1, background: 0
    semantic_path = Path(state["semantic_dir"]) / f"{PurePosixPath(name).with_suffix('')}.png"
    _write_output(Path(state["images_dir"]) / name, Path(state["records_dir"]) / f"{name}.json",
                  img, copy_from, record, semantic_path, semantic)


def _process(task: tuple[int, tuple[int, ...]]):
    """Make the copies ``task = (source index, copy indices)``; returns how many."""
    src_i, copies = task
    src: Source = _STATE["sources"][src_i]
    cache = _STATE["cache"]
    if cache is None or cache[0] != src_i:
        cache = (src_i, _prepare(src, _STATE["opts"]))
        _STATE["cache"] = cache
    for k in copies:
        make_output(src, cache[1], k, _STATE)
    return len(copies)


# --------------------------------------------------------------------------- run


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and ".tmp" in name  # segpc.io.atomic_path: .<stem>.XXXX.tmp<suffix>


def _clean_temporaries(out_dir: Path, *trees: Path) -> None:
    """Remove the hidden temporaries a killed run may have left (``OUT_DIR`` top level, and the
    trees ``x/`` and the work folder, which only this tool writes)."""
    if out_dir.is_dir():
        for f in out_dir.iterdir():
            if f.is_file() and _is_temporary(f.name):
                f.unlink(missing_ok=True)
    for d in trees:
        if d.is_dir():
            for root, _, files in os.walk(d):
                for f in files:
                    if _is_temporary(f):
                        Path(root, f).unlink(missing_ok=True)


def _load_record(path: Path, image_path: Path, source_key: str) -> dict | None:
    """A finished output's record, or ``None`` if the output must be (re)made."""
    try:
        with open(path) as f:
            rec = json.load(f)
        if rec["bytes"] == image_path.stat().st_size and rec["source_key"] == source_key:
            return rec
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _lock(work: Path):
    work.mkdir(parents=True, exist_ok=True)
    f = open(work / "lock", "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise SegPCError(work.parent, "another tools/augment.py run is working on this directory") from None
    return f


def augment_dataset(
    ann_json: str | os.PathLike,
    img_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    policy: str | os.PathLike,
    opts: Options | None = None,
    workers: int = 1,
    restart: bool = False,
    progress: bool = True,
    fast: bool = True,
    chunk: int | None = None,
) -> dict:
    """Write ``opts.num`` augmented copies of every image of ``ann_json`` to ``out_dir``.

    Returns counts: ``{"images", "annotations", "made", "reused", "seconds"}``.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    opts = opts or Options()
    if opts.num < 0:
        raise SegPCError(None, f"--num must be >= 0, got {opts.num}")
    if opts.image_format not in FORMATS:
        raise SegPCError(None, f"--format must be one of {sorted(FORMATS)}, got {opts.image_format!r}")
    if opts.max_size and min(opts.max_size) < 1:
        raise SegPCError(None, f"--max-size must be positive, got {opts.max_size}")
    spec, policy_sha = read_policy(policy)
    build_policy(spec, str(policy), fast=fast)  # validate before any work
    coco, sources = load_sources(ann_json, img_dir)
    ext = FORMATS[opts.image_format]

    out_dir = Path(out_dir)
    work, images_dir = out_dir / WORK_DIR, out_dir / IMAGES_DIR
    records_dir = work / "records"
    run_info = {"format": RUN_FORMAT, **opts.fingerprint(), "policy_sha256": policy_sha,
                "fast_piecewise_affine": fast}
    if not (work / "run.json").exists() and (images_dir.exists() or (out_dir / ANNOTATIONS).exists()):
        raise SegPCError(out_dir, f"has {IMAGES_DIR}/ or {ANNOTATIONS} not made by tools/augment.py; "
                                  "use an empty or new OUT_DIR")
    lock = _lock(work)
    try:
        if (work / "run.json").exists():
            old = load_json(work / "run.json")
            if old != run_info:
                if not restart:
                    diff = sorted(k for k in set(old) | set(run_info) if old.get(k) != run_info.get(k))
                    raise SegPCError(out_dir, f"was made with other settings ({', '.join(diff)} differ); "
                                              "use a new OUT_DIR or --restart to discard it")
        if restart:
            shutil.rmtree(images_dir, ignore_errors=True)
            shutil.rmtree(out_dir / SEMANTIC_DIR, ignore_errors=True)
            shutil.rmtree(records_dir, ignore_errors=True)
            (out_dir / ANNOTATIONS).unlink(missing_ok=True)
        write_json(run_info, work / "run.json")
        _clean_temporaries(out_dir, images_dir, out_dir / SEMANTIC_DIR, work)

        # every expected output, in final order; which are done already
        copies = ([0] if opts.originals else []) + list(range(1, opts.num + 1))
        expected, names = [], set()
        for si, src in enumerate(sources):
            for k in copies:
                name = output_name(src.file_name, k, ext)
                if name in names:
                    raise SegPCError(ann_json, f"two outputs would be named {name!r} (rename the input images)")
                names.add(name)
                expected.append((si, k, name))
        records: dict[str, dict] = {}
        pending: list[tuple[int, int]] = []
        for si, k, name in expected:
            rec = _load_record(records_dir / f"{name}.json", images_dir / name, sources[si].key)
            if rec is not None:
                records[name] = rec
            else:
                pending.append((si, k))
        reused = len(records)

        # tasks: runs of at most `chunk` copies of one source (a worker decodes a source once per
        # task); by default every source is one task unless that gives < 8 tasks per worker
        if chunk is None:
            n_sources = len({si for si, _ in pending}) or 1
            parts = -(-8 * max(1, int(workers)) // n_sources)
            chunk = max(1, -(-len(copies) // parts))
        tasks: list[tuple[int, tuple[int, ...]]] = []
        for si, k in pending:
            if tasks and tasks[-1][0] == si and len(tasks[-1][1]) < chunk:
                tasks[-1] = (si, tasks[-1][1] + (k,))
            else:
                tasks.append((si, (k,)))
        payload = {"policy_spec": spec, "policy_name": str(policy), "fast": fast, "opts": opts,
                   "sources": sources, "images_dir": str(images_dir), "records_dir": str(records_dir),
                   "semantic_dir": str(out_dir / SEMANTIC_DIR)}
        workers = max(1, min(int(workers), len(tasks) or 1))
        bar = tqdm(total=len(expected), initial=reused, unit="img", desc="augment",
                   dynamic_ncols=True, disable=not progress, smoothing=0.1)
        try:
            if workers == 1:
                _init_worker(payload, in_pool=False)
                results = map(_process, tasks)
                _consume(results, bar)
            elif tasks:
                ctx = mp.get_context("spawn")  # no fork: OpenCV's thread pool does not survive it
                with ctx.Pool(workers, initializer=_init_worker, initargs=(payload,)) as pool:
                    _consume(pool.imap_unordered(_process, tasks), bar)
        finally:
            bar.close()
            _STATE.clear()

        # assemble annotations.json from the records
        cat_id = {c["name"]: c["id"] for c in coco["categories"]}
        images, annotations = [], []
        for si, k, name in expected:
            rec = records.get(name)
            if rec is None:
                rec = _load_record(records_dir / f"{name}.json", images_dir / name, sources[si].key)
                if rec is None:
                    raise SegPCError(images_dir / name, "missing after the run (was it deleted meanwhile?)")
            img_id = len(images) + 1
            images.append({"id": img_id, "file_name": name, "height": rec["height"], "width": rec["width"],
                           "source_image_id": rec["source_image_id"],
                           "source_file_name": rec["source_file_name"], "aug_index": rec["aug_index"]})
            for cell in rec["cells"]:
                for cname in CATEGORY_NAMES:
                    m = cell[cname]
                    if m is None:
                        continue
                    annotations.append({
                        "id": len(annotations) + 1, "image_id": img_id, "category_id": cat_id[cname],
                        "segmentation": m["segmentation"], "area": m["area"], "bbox": m["bbox"],
                        "iscrowd": 0, "cell_index": cell["cell_index"], "mask_file": cell["mask_file"]})
        out = {
            "info": {"description": "SegPC-2021 offline augmentation (tools/augment.py)",
                     "source": Path(ann_json).name, "policy": Path(policy).name,
                     "policy_sha256": policy_sha, "num": opts.num, "originals": opts.originals,
                     **opts.fingerprint()},
            "images": images, "annotations": annotations, "categories": coco["categories"],
        }
        write_json(out, out_dir / ANNOTATIONS)
    finally:
        lock.close()
    return {"images": len(images), "annotations": len(annotations), "made": len(expected) - reused,
            "reused": reused, "seconds": time.perf_counter() - t0}


def _consume(results, bar) -> None:
    for n in results:  # a worker's SegPCError is re-raised here (it pickles)
        bar.update(n)
