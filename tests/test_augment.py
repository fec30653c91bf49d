"""Offline augmentation (segpc.augment, tools/augment.py): exact masks, determinism, resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import load_script
from segpc.augment import Options, augment_dataset, build_policy
from segpc.augment import pipeline
from segpc.augment.cells import extract_cells, pack_cells
from segpc.augment.policy import load_policy
from segpc.cli import run as cli_run
from segpc.io import SegPCError
from segpc.structures import decode, encode

REPO = Path(__file__).resolve().parents[1]
H, W = 64, 80
CATS = [{"id": 1, "name": "nucleus"}, {"id": 2, "name": "cytoplasm"}, {"id": 3, "name": "cell"}]


def _disk(cy, cx, r, h=H, w=W):
    yy, xx = np.ogrid[:h, :w]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8)


def _image(seed, h=H, w=W):
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8), (w, h))
    return np.clip(base.astype(int) + rng.integers(-20, 21, (h, w, 3)), 0, 255).astype(np.uint8)


def make_dataset(root: Path, cells_per_image: dict, ext=".png") -> tuple[Path, Path]:
    """Images ``x/<id><ext>`` and a SegPC COCO file; ``cells_per_image[id] = [(cell, nucleus)]``."""
    img_dir = root / "x"
    img_dir.mkdir(parents=True)
    images, anns = [], []
    for iid, cells in cells_per_image.items():
        cv2.imwrite(str(img_dir / f"{iid}{ext}"), _image(iid))
        images.append({"id": iid, "file_name": f"{iid}{ext}", "height": H, "width": W})
        for k, (cell, nuc) in enumerate(cells, start=1):
            for cat, m in ((1, nuc), (2, cell & (1 - nuc)), (3, cell | nuc)):
                if m.any():
                    rle = encode(m)
                    x, y, w, h = cv2.boundingRect(m)
                    anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": cat,
                                 "segmentation": rle, "area": int(m.sum()), "bbox": [x, y, w, h],
                                 "iscrowd": 0, "cell_index": str(k), "mask_file": f"{iid}_{k}.png"})
    ann = root / "train.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": CATS}))
    return ann, img_dir


def default_cells():
    return {
        7: [(_disk(20, 20, 12), _disk(20, 22, 5)), (_disk(40, 55, 14), _disk(42, 55, 6)),
            (_disk(30, 35, 10), _disk(30, 35, 4))],  # overlaps both others
        12: [(_disk(32, 40, 18), _disk(30, 40, 7))],
        31: [(_disk(10, 70, 9), _disk(10, 70, 3)), (_disk(50, 15, 11), _disk(50, 15, 5))],
    }


@pytest.fixture(scope="module")
def tool_main():
    """tools/augment.py's main (tools/ is not a package)."""
    return load_script("tools/augment.py").main


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "data", default_cells())


def write_policy(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def tree_bytes(out: Path) -> dict:
    """Every output file (not the work folder) → bytes."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and ".segpc-augment" not in p.parts}


def load_out(out: Path):
    coco = json.loads((out / "annotations.json").read_text())
    by_img = {im["id"]: [] for im in coco["images"]}
    for a in coco["annotations"]:
        by_img[a["image_id"]].append(a)
    return coco, by_img


def masks_of(anns, cat):
    return {a["cell_index"]: decode(a["segmentation"]) for a in anns if a["category_id"] == cat}


def input_masks(ann_json: Path, image_id: int, cat: int):
    coco = json.loads(ann_json.read_text())
    return masks_of([a for a in coco["annotations"] if a["image_id"] == image_id], cat)


def check_annotation_consistency(coco, by_img):
    """Areas, boxes, nucleus inside cell, cytoplasm = cell − nucleus, sizes."""
    n = 0
    for im in coco["images"]:
        anns = by_img[im["id"]]
        for a in anns:
            m = decode(a["segmentation"])
            assert m.shape == (im["height"], im["width"])
            assert a["area"] == int(m.sum()) > 0
            ys, xs = np.nonzero(m)
            assert a["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        cells, nucs, cytos = masks_of(anns, 3), masks_of(anns, 1), masks_of(anns, 2)
        assert set(nucs) <= set(cells) and set(cytos) <= set(cells)
        for ci, cell in cells.items():
            nuc = nucs.get(ci, np.zeros_like(cell))
            cyto = cytos.get(ci, np.zeros_like(cell))
            assert not np.any(nuc & ~cell.astype(bool)), "nucleus outside its cell"
            assert not np.any(nuc & cyto)
            assert np.array_equal(nuc | cyto, cell)
            n += 1
    return n


# --------------------------------------------------------------------------- exact transforms


def test_flip_policy_gives_exactly_flipped_image_and_masks(tmp_path, dataset):
    ann, img_dir = dataset
    pol = write_policy(tmp_path / "flip.yaml", "policy:\n  Fliplr: {p: 1.0}\n")
    out = tmp_path / "out"
    augment_dataset(ann, img_dir, out, pol, Options(num=2, image_format="png"), workers=1, progress=False)
    coco, by_img = load_out(out)
    assert len(coco["images"]) == 3 * 3
    for im in coco["images"]:
        src = cv2.imread(str(img_dir / im["source_file_name"]))
        got = cv2.imread(str(out / "x" / im["file_name"]))
        flip = im["aug_index"] > 0
        assert np.array_equal(got, src[:, ::-1] if flip else src)
        for cat in (1, 2, 3):
            want = input_masks(ann, im["source_image_id"], cat)
            have = masks_of(by_img[im["id"]], cat)
            assert set(have) == set(want)
            for ci, m in want.items():
                assert np.array_equal(have[ci], m[:, ::-1] if flip else m), (im["file_name"], cat, ci)
    # the original is a byte copy, its annotations keep their mask files; copies have none
    assert (out / "x" / "7.png").read_bytes() == (img_dir / "7.png").read_bytes()
    assert {a["mask_file"] for a in by_img[1]} == {"7_1.png", "7_2.png", "7_3.png"}
    assert {a["mask_file"] for a in by_img[2]} == {None}


def test_rot90_policy_rotates_image_and_masks_and_swaps_size(tmp_path, dataset):
    ann, img_dir = dataset
    pol = write_policy(tmp_path / "rot.yaml", "policy:\n  Rot90: {k: 1, keep_size: false}\n")
    out = tmp_path / "out"
    augment_dataset(ann, img_dir, out, pol, Options(num=1, image_format="png", originals=False),
                    workers=1, progress=False)
    coco, by_img = load_out(out)
    assert len(coco["images"]) == 3
    for im in coco["images"]:
        assert (im["height"], im["width"]) == (W, H)
        src = cv2.imread(str(img_dir / im["source_file_name"]))
        got = cv2.imread(str(out / "x" / im["file_name"]))
        assert np.array_equal(got, np.rot90(src, -1))  # imgaug's k=1 is clockwise
        for cat in (1, 2, 3):
            want = input_masks(ann, im["source_image_id"], cat)
            have = masks_of(by_img[im["id"]], cat)
            assert set(have) == set(want)
            for ci, m in want.items():
                assert np.array_equal(have[ci], np.rot90(m, -1))


def test_cells_pushed_out_are_dropped_and_cut_cells_keep_visible_part(tmp_path):
    cells = {1: [(_disk(20, 12, 8), _disk(20, 12, 3)),    # -> x 52: fully inside
                 (_disk(40, 60, 8), _disk(40, 60, 3)),    # -> x 100: out of the frame
                 (_disk(45, 36, 8), _disk(45, 32, 3))]}   # -> x 76: cut by the border, nucleus kept
    ann, img_dir = make_dataset(tmp_path / "data", cells)
    pol = write_policy(tmp_path / "shift.yaml",
                       "policy:\n  Affine: {translate_px: {x: 40, y: 0}, order: 0}\n")
    out = tmp_path / "out"
    augment_dataset(ann, img_dir, out, pol, Options(num=1, image_format="png", originals=False),
                    workers=1, progress=False)
    coco, by_img = load_out(out)
    anns = by_img[coco["images"][0]["id"]]
    cell_masks, nuc_masks = masks_of(anns, 3), masks_of(anns, 1)
    assert set(cell_masks) == {"1", "3"}  # cell 2 dropped, with its nucleus and cytoplasm
    assert all(a["cell_index"] != "2" for a in anns)
    for ci, (cell, nuc) in zip(("1", "3"), (cells[1][0], cells[1][2])):
        want_cell = np.zeros_like(cell)
        want_cell[:, 40:] = cell[:, :-40]
        want_nuc = np.zeros_like(nuc)
        want_nuc[:, 40:] = nuc[:, :-40]
        assert np.array_equal(cell_masks[ci], want_cell)
        assert np.array_equal(nuc_masks[ci], want_nuc)
    cut = [a for a in anns if a["cell_index"] == "3" and a["category_id"] == 3][0]
    assert 0 < cut["area"] < cells[1][2][0].sum()
    x, y, w, h = cut["bbox"]
    assert x + w == W and (x, y, w, h) == (68, 37, 12, 17)
    check_annotation_consistency(coco, by_img)


def test_nucleus_is_clipped_to_cell_and_boxes_areas_recomputed(tmp_path):
    # nucleus sticks out of its cell in the input
    cells = {3: [(_disk(30, 40, 10), _disk(30, 48, 6)), (_disk(30, 20, 12), _disk(30, 20, 5))]}
    ann, img_dir = make_dataset(tmp_path / "data", cells)
    out = tmp_path / "out"
    augment_dataset(ann, img_dir, out, REPO / "configs/augment/segpc_xlab.yaml",
                    Options(num=6, image_format="png"), workers=1, progress=False)
    coco, by_img = load_out(out)
    assert check_annotation_consistency(coco, by_img) >= 2 * 7 - 2
    # the original's nucleus is the input nucleus clipped to the cell; the cell is the union
    orig = by_img[1]
    cell = cells[3][0][0] | cells[3][0][1]
    assert np.array_equal(masks_of(orig, 3)["1"], cell)
    assert np.array_equal(masks_of(orig, 1)["1"], cells[3][0][1] & cell)
    # every output's semantic map (HTC/SCNet) is exactly the union of its cells
    for img in coco["images"]:
        sem = cv2.imread(str(out / "semantic" / f"{Path(img['file_name']).stem}.png"), cv2.IMREAD_UNCHANGED)
        union = np.zeros((img["height"], img["width"]), bool)
        for m in masks_of(by_img[img["id"]], 3).values():
            union |= m.astype(bool)
        assert sem.dtype == np.uint8 and sem.max() <= 1 and np.array_equal(sem.astype(bool), union)


def test_packed_cells_round_trip_matches_pycocotools():
    rng = np.random.default_rng(0)
    for _ in range(30):
        cells = []
        for i in range(int(rng.integers(1, 9))):
            c = _disk(rng.integers(0, H), rng.integers(0, W), rng.integers(2, 20))
            n = _disk(rng.integers(0, H), rng.integers(0, W), rng.integers(1, 10)) if rng.random() < .8 else None
            cells.append((i, c, n))
        packed = pack_cells(cells, H, W)
        out = extract_cells(packed.arr, packed)
        assert [o["key"] for o in out] == [k for k, c, _ in cells if c.any()]
        for o in out:
            _, c, n = cells[o["key"]]
            nn = (n & c) if n is not None else np.zeros_like(c)
            assert o["cell"]["segmentation"] == encode(c)
            assert (o["nucleus"] is None) == (not nn.any())
            if nn.any():
                assert o["nucleus"]["segmentation"] == encode(nn)
            cy = c & (1 - nn)
            if cy.any():
                assert o["cytoplasm"]["segmentation"] == encode(cy) and o["cytoplasm"]["area"] == cy.sum()
    # overlapping cells went to different layers
    c = _disk(30, 40, 15)
    packed = pack_cells([(0, c, None), (1, c, None), (2, c, None), (3, c, None)], H, W)
    assert packed.arr.shape[2] == 2 and len({s[0] for s in packed.slots}) == 4


# --------------------------------------------------------------------------- fast PiecewiseAffine


def test_fast_piecewise_affine_matches_imgaug():
    import imgaug.augmenters as iaa
    from imgaug.augmentables.segmaps import SegmentationMapsOnImage

    from segpc.augment import FastPiecewiseAffine

    h, w = 96, 128
    img = _image(5, h, w)
    rng = np.random.default_rng(1)
    seg = cv2.resize(rng.integers(0, 2 ** 24, (12, 16)).astype(np.float64), (w, h),
                     interpolation=cv2.INTER_NEAREST).astype(np.int32)[..., None]
    kw = dict(scale=(0.02, 0.05), nb_rows=(2, 6), nb_cols=(2, 6))
    changed = 0
    for s in range(5):
        segs = SegmentationMapsOnImage(seg, shape=img.shape)
        ref_img, ref_seg = iaa.PiecewiseAffine(**kw, seed=s)(image=img, segmentation_maps=segs)
        fast_img, fast_seg = FastPiecewiseAffine(**kw, seed=s)(image=img, segmentation_maps=segs)
        # stated tolerance, segmentation maps: identical except where the source coordinate is a
        # .5 tie (e.g. 63.5 = 127/128 * 64 when corners are clipped) that float evaluation order
        # rounds either way (whole tie lines can flip); at most 1 % of the pixels
        aug = FastPiecewiseAffine(**kw, seed=s)
        samples = aug._draw_samples(1, aug.random_state)
        identity, (map_x, map_y) = aug._maps(seg.shape, img.shape, samples, 0)
        assert not identity
        ys, xs = np.nonzero(ref_seg.arr[..., 0] != fast_seg.arr[..., 0])
        frac_x, frac_y = map_x[ys, xs] % 1, map_y[ys, xs] % 1
        assert np.all((np.abs(frac_x - 0.5) < 1e-9) | (np.abs(frac_y - 0.5) < 1e-9))
        assert len(ys) <= 0.01 * h * w
        # images: cv2 samples at 1/32 px -> at most 4 grey levels off, 99.9 % of values within 1,
        # mean < 0.25 on this noisy image (about 0.03 on real SegPC images)
        diff = np.abs(ref_img.astype(int) - fast_img.astype(int))
        assert diff.max() <= 4 and (diff <= 1).mean() >= 0.999 and diff.mean() < 0.25
        changed += (fast_seg.arr != seg).mean()
    assert changed / 5 > 0.05  # the transform really moved things
    # other interpolation orders use imgaug's own path: identical
    a = iaa.PiecewiseAffine(scale=0.04, order=3, seed=3)(image=img)
    b = FastPiecewiseAffine(scale=0.04, order=3, seed=3)(image=img)
    assert np.array_equal(a, b)


def test_policy_builds_fast_piecewise_affine(tmp_path):
    from segpc.augment import FastPiecewiseAffine

    pol = load_policy(REPO / "configs/augment/segpc_xlab.yaml")
    found = pol.find_augmenters(lambda aug, parents: isinstance(aug, FastPiecewiseAffine))
    assert len(found) == 1
    stock = load_policy(REPO / "configs/augment/segpc_xlab.yaml", fast=False)
    assert not stock.find_augmenters(lambda aug, parents: isinstance(aug, FastPiecewiseAffine))


# --------------------------------------------------------------------------- bad policies


@pytest.mark.parametrize("text, words", [
    ("policy:\n  SomeOf:\n    n: [1, 2]\n    children:\n      - Fliplr: {p: 0.5}\n      - Blurr: {sigma: 1}\n",
     ["unknown augmenter", "'Blurr'", "policy.SomeOf.children[1]"]),
    ("policy:\n  Affine: {scal: [0.8, 1.2]}\n", ["policy.Affine", "bad parameter", "scal"]),
    ("policy:\n  GaussianBlur: {sigma: -3}\n", ["policy.GaussianBlur", "bad parameter"]),
    ("policy:\n  MedianBlur: {k: 4}\n", ["MedianBlur", "bad parameter"]),
    ("policy: [\n", ["not valid YAML"]),
    ("augmenters: []\n", ["top-level 'policy:'"]),
])
def test_bad_policy_is_a_one_line_error_naming_file_and_augmenter(tmp_path, dataset, capsys, tool_main,
                                                                   text, words):
    ann, img_dir = dataset
    pol = write_policy(tmp_path / "bad.yaml", text)
    with pytest.raises(SegPCError) as e:
        load_policy(pol)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{pol}: ")
    for word in words:
        assert word in msg
    # through the tool: exit status 2, one line on stderr, nothing written
    out = tmp_path / "out"
    rc = cli_run(tool_main, [str(ann), str(out), "--img-dir", str(img_dir), "--policy", str(pol),
                        "--num", "1", "--workers", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith(f"error: {pol}: ")
    assert not out.exists()


def test_policy_values_lists_are_ranges_and_choice_is_a_list():
    import imgaug.parameters as iap

    aug = build_policy({"policy": {"Affine": {"rotate": [-10, 10], "scale": {"choice": [0.5, 2.0]}}}})
    assert isinstance(aug.rotate, iap.Uniform)
    assert isinstance(aug.scale, iap.Choice) and list(aug.scale.a) == [0.5, 2.0]


# --------------------------------------------------------------------------- determinism & resume


@pytest.mark.slow
def test_same_seed_byte_identical_for_1_and_2_workers(tmp_path, dataset):
    ann, img_dir = dataset
    pol = REPO / "configs/augment/segpc_xlab.yaml"
    runs = {}
    for workers, seed in ((1, 0), (2, 0), (1, 1)):
        out = tmp_path / f"out_w{workers}_s{seed}"
        augment_dataset(ann, img_dir, out, pol, Options(num=4, seed=seed), workers=workers,
                        progress=False, chunk=2)
        runs[workers, seed] = tree_bytes(out)
    assert runs[1, 0] == runs[2, 0]
    assert len(runs[1, 0]) == 1 + 3 * 5 * 2  # the JSON, then per image: image + semantic map
    # the seed matters: copies differ, originals do not
    other = runs[1, 1]
    assert other["x/7.jpg"] == runs[1, 0]["x/7.jpg"]
    assert other["x/7_aug001.jpg"] != runs[1, 0]["x/7_aug001.jpg"]


class _Boom(Exception):
    pass


@pytest.mark.slow
def test_resume_after_failure_redoes_only_missing_and_matches_clean_run(tmp_path, dataset, monkeypatch):
    ann, img_dir = dataset
    pol = REPO / "configs/augment/segpc_xlab.yaml"
    opts = Options(num=5, image_format="jpg")
    clean = tmp_path / "clean"
    augment_dataset(ann, img_dir, clean, pol, opts, workers=1, progress=False)

    out = tmp_path / "out"
    real_write = pipeline._write_output
    calls = {"n": 0}

    def failing_write(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 8:
            raise _Boom("killed")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_write_output", failing_write)
    with pytest.raises(_Boom):
        augment_dataset(ann, img_dir, out, pol, opts, workers=1, progress=False)
    monkeypatch.setattr(pipeline, "_write_output", real_write)
    assert not (out / "annotations.json").exists()
    done = sorted((out / "x").iterdir())
    assert len(done) == 7 and not any(p.name.startswith(".") for p in done)
    # damage: delete one finished image, truncate another, leave a stale temporary behind
    done[0].unlink()
    done[1].write_bytes(done[1].read_bytes()[:100])
    (out / "x" / ".31_aug002.abc123.tmp.jpg").write_bytes(b"half")
    untouched = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in done[2:]}

    stats = augment_dataset(ann, img_dir, out, pol, opts, workers=2, progress=False)
    assert stats["reused"] == 5 and stats["made"] == 18 - 5
    for name, ident in untouched.items():
        p = out / "x" / name
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == ident, f"{name} was redone"
    assert tree_bytes(out) == tree_bytes(clean)
    # finished: a third run makes nothing and rewrites the same JSON
    stats = augment_dataset(ann, img_dir, out, pol, opts, workers=1, progress=False)
    assert stats["made"] == 0 and tree_bytes(out) == tree_bytes(clean)


@pytest.mark.slow
def test_killed_process_resumes_to_identical_output(tmp_path, dataset, tool_main):
    ann, img_dir = dataset
    args = [str(ann), "--img-dir", str(img_dir), "--num", "80", "--workers", "2", "--no-progress",
            "--format", "png"]
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, str(REPO / "tools/augment.py"), args[0], str(out), *args[1:]],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    records = out / ".segpc-augment" / "records"

    def finished():
        return [f for f in os.listdir(records) if not f.startswith(".")] if records.is_dir() else []

    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and len(finished()) < 20:
        time.sleep(0.005)
    assert proc.poll() is None, proc.stderr.read().decode()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "annotations.json").exists()  # killed mid-way
    assert 20 <= len(finished()) < 3 * 81
    # every image under its final name is complete
    for p in (out / "x").iterdir():
        if not p.name.startswith("."):
            assert cv2.imread(str(p)) is not None, p
    assert cli_run(tool_main, [args[0], str(out), *args[1:]]) == 0
    clean = tmp_path / "clean"
    assert cli_run(tool_main, [args[0], str(clean), *args[1:]]) == 0
    assert tree_bytes(out) == tree_bytes(clean)


def test_more_copies_reuse_existing_ones_and_settings_change_is_refused(tmp_path, dataset):
    ann, img_dir = dataset
    pol = REPO / "configs/augment/segpc_xlab.yaml"
    out = tmp_path / "out"
    augment_dataset(ann, img_dir, out, pol, Options(num=2), workers=1, progress=False)
    stats = augment_dataset(ann, img_dir, out, pol, Options(num=3), workers=1, progress=False)
    assert (stats["made"], stats["reused"]) == (3, 9)
    fresh = tmp_path / "fresh"
    augment_dataset(ann, img_dir, fresh, pol, Options(num=3), workers=1, progress=False)
    assert tree_bytes(out) == tree_bytes(fresh)
    with pytest.raises(SegPCError, match="seed"):
        augment_dataset(ann, img_dir, out, pol, Options(num=3, seed=9), workers=1, progress=False)
    stats = augment_dataset(ann, img_dir, out, pol, Options(num=1, seed=9), workers=1,
                            progress=False, restart=True)
    assert stats["reused"] == 0 and len(list((out / "x").iterdir())) == 6


def test_max_size_downscales_images_and_masks(tmp_path, dataset):
    ann, img_dir = dataset
    out = tmp_path / "out"
    augment_dataset(ann, img_dir, out, REPO / "configs/augment/segpc_xlab.yaml",
                    Options(num=3, max_size=(40, 40)), workers=1, progress=False)
    coco, by_img = load_out(out)
    for im in coco["images"]:
        got = cv2.imread(str(out / "x" / im["file_name"]))
        assert got.shape[:2] == (im["height"], im["width"])
        assert im["width"] <= 40 and im["height"] <= 40
        if im["aug_index"] == 0:
            assert (im["width"], im["height"]) == (40, 32)
    check_annotation_consistency(coco, by_img)


def test_bad_input_errors_name_the_file(tmp_path, dataset):
    ann, img_dir = dataset
    pol = REPO / "configs/augment/segpc_xlab.yaml"
    with pytest.raises(SegPCError, match="image directory not found"):
        augment_dataset(ann, tmp_path / "nope", tmp_path / "o1", pol, Options(num=1), progress=False)
    (img_dir / "12.png").unlink()
    with pytest.raises(SegPCError, match=r"12\.png: image file not found"):
        augment_dataset(ann, img_dir, tmp_path / "o2", pol, Options(num=1), progress=False)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "cell"}]}))
    with pytest.raises(SegPCError, match="nucleus"):
        augment_dataset(bad, img_dir, tmp_path / "o3", pol, Options(num=1), progress=False)


def test_resume_redoes_images_whose_source_changed(tmp_path, dataset):
    ann, img_dir = dataset
    pol = REPO / "configs/augment/segpc_xlab.yaml"
    out = tmp_path / "out"
    augment_dataset(ann, img_dir, out, pol, Options(num=2), workers=1, progress=False)
    coco = json.loads(ann.read_text())
    coco["annotations"] = [a for a in coco["annotations"] if not (a["image_id"] == 12 and a["category_id"] == 1)]
    ann.write_text(json.dumps(coco))  # image 12 loses its nucleus
    stats = augment_dataset(ann, img_dir, out, pol, Options(num=2), workers=1, progress=False)
    assert (stats["made"], stats["reused"]) == (3, 6)
    out_coco, by_img = load_out(out)
    assert not [a for im in out_coco["images"] if im["source_image_id"] == 12
                for a in by_img[im["id"]] if a["category_id"] == 1]


@pytest.mark.slow
def test_error_in_a_worker_process_is_a_one_line_error(tmp_path, dataset):
    ann, img_dir = dataset
    cv2.imwrite(str(img_dir / "31.png"), _image(31, H + 2, W))  # not the size the JSON says
    with pytest.raises(SegPCError) as e:
        augment_dataset(ann, img_dir, tmp_path / "out", REPO / "configs/augment/segpc_xlab.yaml",
                        Options(num=2), workers=2, progress=False)
    assert str(e.value) == f"{img_dir / '31.png'}: image is 80x66 but the annotations say 80x64"
