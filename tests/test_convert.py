"""SegPC raw layout → COCO: segpc.datasets.convert and tools/convert_segpc.py."""
from __future__ import annotations

import json
import logging
import os
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from helpers import load_script
from segpc.cli import run
from segpc.datasets.convert import (
    CATEGORIES,
    CELL_ID,
    CYTOPLASM_ID,
    NUCLEUS_ID,
    convert_split,
    header_size,
    mask_to_annotations,
    scan_split,
    summarize,
    write_coco,
)
from segpc.io import SegPCError, read_mask
from segpc.structures import decode

H, W = 24, 32


@pytest.fixture(scope="module")
def tool(repo_root: Path):
    """tools/convert_segpc.py loaded as a module (tools/ is not a package)."""
    return load_script("tools/convert_segpc.py")


def image(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def make_split(root: Path, images: dict[str, np.ndarray], masks: dict[str, np.ndarray] | None = None) -> Path:
    """``images``: file name → BGR array in x/; ``masks``: file name → array in y/ (no y/ if None)."""
    (root / "x").mkdir(parents=True)
    for name, img in images.items():
        assert cv2.imwrite(str(root / "x" / name), img)
    if masks is not None:
        (root / "y").mkdir()
        for name, m in masks.items():
            assert cv2.imwrite(str(root / "y" / name), m)
    return root


def blank() -> np.ndarray:
    return np.zeros((H, W), np.uint8)


def cell_mask(y0: int, y1: int, x0: int, x1: int, nucleus: tuple[int, ...] | None = None) -> np.ndarray:
    """Cytoplasm rectangle rows y0..y1-1, cols x0..x1-1, with an optional nucleus rectangle."""
    m = blank()
    m[y0:y1, x0:x1] = 20
    if nucleus is not None:
        a, b, c, d = nucleus
        m[a:b, c:d] = 40
    return m


def anns_of(coco: dict, mask_file: str) -> dict[int, dict]:
    out = {a["category_id"]: a for a in coco["annotations"] if a["mask_file"] == mask_file}
    assert len(out) == len([a for a in coco["annotations"] if a["mask_file"] == mask_file])
    return out


def reference(m: np.ndarray) -> dict[int, np.ndarray]:
    cell = m > 0
    return {CELL_ID: cell, NUCLEUS_ID: m == 40, CYTOPLASM_ID: cell & (m != 40)}


def assert_exact(ann_or_tuple, ref: np.ndarray) -> None:
    """RLE, area and box equal pycocotools' own encoding of ``ref``."""
    if isinstance(ann_or_tuple, dict):
        rle, area, bbox = ann_or_tuple["segmentation"], ann_or_tuple["area"], ann_or_tuple["bbox"]
    else:
        _, rle, area, bbox = ann_or_tuple
    enc = mask_utils.encode(np.asfortranarray(ref.astype(np.uint8)))
    assert isinstance(rle["counts"], str)
    assert rle == {"size": list(ref.shape), "counts": enc["counts"].decode()}
    np.testing.assert_array_equal(decode(rle), ref.astype(np.uint8))
    assert area == int(ref.sum()) and isinstance(area, int)
    assert bbox == [int(v) for v in mask_utils.toBbox(enc)]


# --------------------------------------------------------------------------- mask_to_annotations


def test_hand_built_box_and_area():
    m = blank()
    m[3:7, 5:10] = 20  # rows 3..6, cols 5..9
    m[4:6, 6:8] = 40
    m[10, 20] = 20  # a stray pixel of the same cell widens its box
    anns = mask_to_annotations(m)
    assert [a[0] for a in anns] == [CELL_ID, NUCLEUS_ID, CYTOPLASM_ID]
    cell, nucleus, cyto = anns
    assert cell[2] == 21 and cell[3] == [5, 3, 16, 8]
    assert nucleus[2] == 4 and nucleus[3] == [6, 4, 2, 2]
    assert cyto[2] == 17 and cyto[3] == [5, 3, 16, 8]


@pytest.mark.parametrize("seed", range(12))
def test_rle_equals_pycocotools_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 40, 2)
    m = rng.choice(np.array([0, 20, 40, 7, 255], np.uint8), size=(h, w), p=[0.4, 0.3, 0.2, 0.05, 0.05])
    if seed % 3 == 0:
        m[:, rng.integers(0, w)] = 40  # full-height column: runs continue across columns
    if seed % 4 == 1:
        m[:] = 20  # whole image
        m[0, 0] = 40
    anns = {a[0]: a for a in mask_to_annotations(m)}
    for cat, ref in reference(m).items():
        if ref.any():
            assert_exact(anns.pop(cat), ref)
    assert not anns  # no annotation for an empty part


def test_empty_mask_gives_nothing():
    assert mask_to_annotations(blank()) == []


def test_stray_values_are_cytoplasm():
    m = blank()
    m[2:5, 2:5] = 10
    m[2:5, 5:8] = 255
    m[2:5, 8:11] = 40
    anns = {a[0]: a for a in mask_to_annotations(m)}
    assert_exact(anns[CELL_ID], m > 0)
    assert_exact(anns[NUCLEUS_ID], m == 40)
    assert_exact(anns[CYTOPLASM_ID], np.isin(m, (10, 255)))
    assert anns[CYTOPLASM_ID][2] == 18


def test_non_uint8_arrays():
    m = np.zeros((H, W), np.int32)
    m[1:4, 1:4] = 300  # > 0, not 40: cytoplasm
    m[2, 2] = 40
    anns = {a[0]: a for a in mask_to_annotations(m)}
    assert anns[CELL_ID][2] == 9 and anns[NUCLEUS_ID][2] == 1 and anns[CYTOPLASM_ID][2] == 8


# --------------------------------------------------------------------------- convert_split


def test_donut_cell_keeps_its_hole(tmp_path):
    m = blank()
    m[4:20, 6:26] = 20
    m[8:16, 10:22] = 0  # the hole
    m[4:8, 6:10] = 40  # nucleus in the ring
    split = make_split(tmp_path / "s", {"1.png": image()}, {"1_1.png": m})
    coco = convert_split(split, progress=False)
    anns = anns_of(coco, "1_1.png")
    cell = decode(anns[CELL_ID]["segmentation"])
    assert cell[8:16, 10:22].sum() == 0 and cell[12, 15] == 0
    np.testing.assert_array_equal(cell, (m > 0).astype(np.uint8))
    assert_exact(anns[CELL_ID], m > 0)
    assert_exact(anns[CYTOPLASM_ID], m == 20)
    assert_exact(anns[NUCLEUS_ID], m == 40)
    assert anns[CELL_ID]["area"] == 16 * 20 - 8 * 12


def test_three_channel_mask_uses_first_channel(tmp_path):
    m = cell_mask(2, 10, 3, 12, nucleus=(4, 6, 5, 8))
    m3 = np.dstack([m, np.full_like(m, 40), np.full_like(m, 20)])  # other channels would mislead
    split = make_split(tmp_path / "s", {"3.bmp": image()}, {"3_1.bmp": m3})
    assert cv2.imread(str(split / "y" / "3_1.bmp"), cv2.IMREAD_UNCHANGED).ndim == 3
    anns = anns_of(convert_split(split, progress=False), "3_1.bmp")
    assert_exact(anns[CELL_ID], m > 0)
    assert_exact(anns[NUCLEUS_ID], m == 40)


def test_full_conversion(tmp_path, caplog):
    a = cell_mask(2, 10, 3, 12, nucleus=(4, 6, 5, 8))
    b = cell_mask(6, 20, 8, 30)  # no nucleus
    c = cell_mask(12, 22, 0, 6, nucleus=(14, 16, 1, 3))
    masks = {"10_1.png": a, "10_2.bmp": b, "10_10.png": blank(), "2_1.png": c}
    images = {"10.jpg": image(), "2.png": image(), "7.tif": image(h=12, w=9)}
    split = make_split(tmp_path / "s", images, masks)
    with caplog.at_level(logging.WARNING, logger="segpc.datasets.convert"):
        coco = convert_split(split, semantic_dir=tmp_path / "sem", progress=False)
    assert any("10_10.png" in r.getMessage() and "empty" in r.getMessage() for r in caplog.records)

    assert coco["categories"] == [
        {"id": 1, "name": "nucleus"}, {"id": 2, "name": "cytoplasm"}, {"id": 3, "name": "cell"}
    ]
    assert coco["categories"] == CATEGORIES
    assert coco["images"] == [
        {"id": 2, "file_name": "2.png", "height": H, "width": W},
        {"id": 7, "file_name": "7.tif", "height": 12, "width": 9},  # kept without masks
        {"id": 10, "file_name": "10.jpg", "height": H, "width": W, "empty_masks": ["10_10.png"]},
    ]
    anns = coco["annotations"]
    assert [a["id"] for a in anns] == list(range(1, len(anns) + 1))
    assert [(a["image_id"], a["cell_index"], a["category_id"]) for a in anns] == [
        (2, "1", CELL_ID), (2, "1", NUCLEUS_ID), (2, "1", CYTOPLASM_ID),
        (10, "1", CELL_ID), (10, "1", NUCLEUS_ID), (10, "1", CYTOPLASM_ID),
        (10, "2", CELL_ID), (10, "2", CYTOPLASM_ID),  # no nucleus annotation; empty 10_10 skipped
    ]
    assert all(a["iscrowd"] == 0 for a in anns)
    cell_files = [a["mask_file"] for a in anns if a["category_id"] == CELL_ID]
    assert cell_files == ["2_1.png", "10_1.png", "10_2.bmp"]
    for name, m in masks.items():
        for cat, ann in anns_of(coco, name).items():
            assert_exact(ann, reference(m)[cat])
    assert summarize(coco, "o.json") == "3 images (1 without cells), 3 cells, 2 nuclei -> o.json"

    # Semantic maps: exactly the union of the image's cells, 0/1, also for the image without cells.
    sem = {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in (tmp_path / "sem").iterdir()}
    assert sorted(sem) == ["10.png", "2.png", "7.png"]
    assert all(s.dtype == np.uint8 and s.ndim == 2 for s in sem.values())
    np.testing.assert_array_equal(sem["10.png"], ((a > 0) | (b > 0)).astype(np.uint8))
    np.testing.assert_array_equal(sem["2.png"], (c > 0).astype(np.uint8))
    np.testing.assert_array_equal(sem["7.png"], np.zeros((12, 9), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s", "sem"]  # no staging folder left


def test_workers_give_identical_output(tmp_path):
    masks = {
        f"{i}_{k}.png": cell_mask(k, k + 5, 2 * k, 2 * k + 6, nucleus=(k + 1, k + 3, 2 * k + 1, 2 * k + 3))
        for i in range(1, 6) for k in range(1, 4)
    }
    split = make_split(tmp_path / "s", {f"{i}.png": image(seed=i) for i in range(1, 6)}, masks)
    one = convert_split(split, progress=False, workers=1)
    assert len(one["annotations"]) == 45
    assert convert_split(split, progress=False, workers=3) == one


def test_split_without_y_keeps_images(tmp_path):
    split = make_split(tmp_path / "s", {"5.png": image(), "6.jpg": image()})
    coco = convert_split(split, progress=False)
    assert [i["id"] for i in coco["images"]] == [5, 6] and coco["annotations"] == []


@pytest.mark.parametrize(
    "stems, ids",
    [
        (["7", "100", "12"], {"7": 7, "12": 12, "100": 100}),  # numeric: the number, sorted by it
        (["b", "a10", "a2"], {"a10": 1, "a2": 2, "b": 3}),  # otherwise 1-based sorted-stem index
        (["7", "x"], {"7": 1, "x": 2}),
        (["007", "7"], {"007": 1, "7": 2}),  # same number twice: index
    ],
)
def test_image_ids(tmp_path, stems, ids):
    images = {f"{s}.png": image(h=4, w=4) for s in stems}
    split = make_split(tmp_path / "s", images, {f"{stems[0]}_1.png": np.full((4, 4), 20, np.uint8)})
    coco = convert_split(split, progress=False)
    got = {Path(i["file_name"]).stem: i["id"] for i in coco["images"]}
    assert got == ids
    assert [i["id"] for i in coco["images"]] == sorted(ids.values())
    assert coco["annotations"][0]["image_id"] == ids[stems[0]]
    assert [e.id for e in scan_split(split)] == sorted(ids.values())


def test_output_loads_with_pycocotools(tmp_path):
    m = cell_mask(2, 10, 3, 12, nucleus=(4, 6, 5, 8))
    split = make_split(tmp_path / "s", {"1.png": image()}, {"1_1.png": m})
    out = tmp_path / "out" / "ann.json"
    write_coco(split, out, progress=False)
    api = COCO(str(out))
    assert [c["name"] for c in api.loadCats(api.getCatIds())] == ["nucleus", "cytoplasm", "cell"]
    ann = api.loadAnns(api.getAnnIds(imgIds=[1], catIds=[CELL_ID]))[0]
    np.testing.assert_array_equal(api.annToMask(ann), (m > 0).astype(np.uint8))
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's owner-only 0600


# --------------------------------------------------------------------------- image size from headers


def _exif_jpeg(img: np.ndarray, orientation: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    ifd = struct.pack(">HHHIHH", 1, 0x0112, 3, 1, orientation, 0) + b"\x00" * 4  # one SHORT tag
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + ifd
    app1 = b"Exif\x00\x00" + tiff
    return buf.tobytes()[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + buf.tobytes()[2:]


@pytest.mark.parametrize("ext, shape", [
    (ext, shape) for ext in (".bmp", ".png", ".jpg", ".jpeg")
    for shape in ((7, 13, 3), (30, 17), (5, 6, 4))
    if not (ext in (".jpg", ".jpeg") and shape[-1] == 4)  # JPEG has no alpha channel
])
def test_header_size_matches_decoding(tmp_path, ext, shape):
    img = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path / f"a{ext}"
    assert cv2.imwrite(str(path), img)
    assert header_size(path) == cv2.imread(str(path), cv2.IMREAD_COLOR).shape[:2] == shape[:2]


def test_header_size_png16_tiff_garbage_and_topdown_bmp(tmp_path):
    assert cv2.imwrite(str(tmp_path / "a.png"), np.zeros((9, 4), np.uint16))
    assert header_size(tmp_path / "a.png") == (9, 4)
    assert cv2.imwrite(str(tmp_path / "a.tif"), np.zeros((9, 4, 3), np.uint8))
    assert header_size(tmp_path / "a.tif") is None  # decoded instead
    (tmp_path / "g.jpg").write_bytes(b"\xff\xd8\xff" + b"garbage" * 10)
    assert header_size(tmp_path / "g.jpg") is None
    (tmp_path / "td.bmp").write_bytes(b"BM" + bytes(12) + struct.pack("<Iii", 40, 21, -11) + bytes(30))
    assert header_size(tmp_path / "td.bmp") == (11, 21)  # top-down BMP: negative height


def test_exif_orientation_jpeg_size_as_opencv_decodes(tmp_path):
    path = tmp_path / "x" / "1.jpg"
    path.parent.mkdir()
    path.write_bytes(_exif_jpeg(image(h=10, w=20), orientation=6))  # rotated 90°
    assert cv2.imread(str(path)).shape[:2] == (20, 10)
    assert header_size(path) is None
    assert convert_split(tmp_path, progress=False)["images"][0]["height"] == 20


# --------------------------------------------------------------------------- bad input


def _bad_cases():
    ok_mask = cell_mask(2, 6, 2, 6)

    def mask_without_image(root):
        make_split(root, {"1.png": image()}, {"1_1.png": ok_mask, "5_1.bmp": ok_mask})
        return "5_1.bmp"

    def size_mismatch(root):
        wide = np.zeros((H, W + 1), np.uint8)
        make_split(root, {"1.png": image(), "2.png": image()}, {"1_1.png": ok_mask, "2_1.png": wide})
        return "2_1.png"

    def corrupt_mask(root):
        make_split(root, {"1.png": image(), "2.png": image()}, {"1_1.png": ok_mask, "2_1.png": ok_mask})
        (root / "y" / "2_1.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
        return "2_1.png"

    def corrupt_image(root):
        make_split(root, {"1.png": image()}, {"1_1.png": ok_mask})
        (root / "x" / "2.jpg").write_bytes(b"this is not a jpeg at all, not even its header")
        return "2.jpg"

    def empty_x(root):
        (root / "x").mkdir(parents=True)
        (root / "x" / "notes.txt").write_text("no images here")
        return "x"

    def missing_x(root):
        root.mkdir(parents=True)
        (root / "y").mkdir()
        return "x"

    def two_images_same_stem(root):
        make_split(root, {"4.png": image(), "4.jpg": image()})
        return "4.png"

    def jpeg_mask(root):
        make_split(root, {"1.png": image()}, {"1_1.jpg": ok_mask})
        return "1_1.jpg"

    def name_factory(name):
        def bad_name(root):
            make_split(root, {"1.png": image()}, {"1_1.png": ok_mask, name: ok_mask})
            return name
        bad_name.__name__ = f"mask_named_{name}"
        return bad_name

    cases = [mask_without_image, size_mismatch, corrupt_mask, corrupt_image, empty_x, missing_x,
             two_images_same_stem, jpeg_mask]
    cases += [name_factory(n) for n in ("1.png", "1_.png", "1_a.png", "_1.png")]
    return [pytest.param(c, id=c.__name__) for c in cases]


@pytest.mark.parametrize("build", _bad_cases())
def test_bad_input(tmp_path, build, tool, capsys):
    split = tmp_path / "split"
    culprit = build(split)
    out = tmp_path / "out" / "ann.json"
    sem = tmp_path / "out" / "sem"
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    with pytest.raises(SegPCError) as err:
        write_coco(split, out, sem, progress=False)
    message = str(err.value)
    assert "\n" not in message and culprit in message and Path(err.value.path).name == culprit

    assert run(tool.main, [str(split), str(out), "--semantic-dir", str(sem), "--no-progress"]) == 2
    stderr = capsys.readouterr().err.strip().splitlines()
    assert stderr[-1] == f"error: {message}"

    assert not out.exists() and not sem.exists()
    leftovers = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert [p for p in leftovers if p not in before] == []  # no staging, temp files or folders


@pytest.mark.slow
def test_cli_subprocess_exit_codes(tmp_path, repo_root):
    cell = cell_mask(2, 6, 2, 6)
    split = make_split(tmp_path / "s", {"1.png": image()}, {"1_1.png": cell, "9_1.png": cell})
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    tool_path = repo_root / "tools" / "convert_segpc.py"
    cmd = [sys.executable, str(tool_path), str(split), str(tmp_path / "a.json")]
    bad = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "9_1.png" in bad.stderr
    assert not (tmp_path / "a.json").exists()

    (split / "y" / "9_1.png").unlink()
    cmd += ["--semantic-dir", str(tmp_path / "sem")]
    good = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip() == f"1 images (0 without cells), 1 cells, 0 nuclei -> {tmp_path / 'a.json'}"
    assert good.stderr.strip()  # the progress bar goes to stderr, never into stdout
    quiet = subprocess.run([*cmd[:3], str(tmp_path / "b.json"), "--no-progress"], capture_output=True, text=True, env=env)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert json.loads((tmp_path / "b.json").read_text())["annotations"] == json.loads((tmp_path / "a.json").read_text())["annotations"]
    assert json.loads((tmp_path / "a.json").read_text())["images"][0]["file_name"] == "1.png"
    assert (tmp_path / "sem" / "1.png").is_file()


def test_semantic_dir_keeps_other_files(tmp_path):
    split = make_split(tmp_path / "s", {"1.png": image()}, {"1_1.png": cell_mask(2, 6, 2, 6)})
    sem = tmp_path / "sem"
    sem.mkdir()
    (sem / "other.png").write_bytes(b"x")
    (sem / "1.png").write_bytes(b"stale")
    convert_split(split, sem, progress=False)
    assert (sem / "other.png").read_bytes() == b"x"
    np.testing.assert_array_equal(read_mask(sem / "1.png"), (cell_mask(2, 6, 2, 6) > 0).astype(np.uint8))


# --------------------------------------------------------------------------- real data


@pytest.mark.slow
def test_real_train_fullres(real_data, tmp_path):
    split = real_data / "train_fullres"
    mask_files = sorted(p.name for p in (split / "y").iterdir())
    coco = write_coco(split, tmp_path / "ann.json", tmp_path / "sem", progress=False)
    assert json.loads((tmp_path / "ann.json").read_text()) == coco
    cells = [a for a in coco["annotations"] if a["category_id"] == CELL_ID]
    assert sorted(a["mask_file"] for a in cells) == mask_files
    assert len(coco["images"]) == len(list((split / "x").iterdir()))
    sizes = {(i["height"], i["width"]) for i in coco["images"]}
    assert sizes == {(1536, 2040)}
    for name in mask_files[:: max(1, len(mask_files) // 6)]:
        m = read_mask(split / "y" / name)
        for cat, ann in anns_of(coco, name).items():
            assert_exact(ann, reference(m)[cat])
    first = coco["images"][0]
    sem = read_mask(tmp_path / "sem" / f"{Path(first['file_name']).stem}.png")
    union = np.zeros_like(sem)
    for a in cells:
        if a["image_id"] == first["id"]:
            union |= decode(a["segmentation"])
    np.testing.assert_array_equal(sem, union)
    assert union.any()
