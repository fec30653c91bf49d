"""The SegPC-2021 mIoU (segpc.evaluation.miou) and tools/eval_miou.py."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from segpc.evaluation import (PRED_VALUES, TARGET, accumulate, best_ious, evaluate_dirs, evaluate_masks,
                              scaled_rle, summarize)
from segpc.io import SegPCError
from segpc.structures import CropMask, encode, iou_matrix, make_dump, resize_maps, save_dump, write_submission
from segpc.structures.rle import decode_counts
from segpc.testing.miou import reference_evaluate, reference_evaluate_dirs

REPO = Path(__file__).resolve().parents[1]
H, W = TARGET


def nearest(m):
    return cv2.resize(m, (W, H), interpolation=cv2.INTER_NEAREST)


def write(folder, name, mask):
    folder.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(folder / name), mask)


def rect(shape, y0, y1, x0, x1, value=20, nucleus=None):
    """A SegPC mask with ``value`` in the box and optionally 40 in a sub-box."""
    m = np.zeros(shape, np.uint8)
    m[y0:y1, x0:x1] = value
    if nucleus is not None:
        ny0, ny1, nx0, nx1 = nucleus
        m[ny0:ny1, nx0:nx1] = 40
    return m


# --------------------------------------------------------------------------- hand-computed cases


@pytest.fixture
def simple(tmp_path):
    """Image 1: GT A (100x100), GT B (100x100); pred 1 == A (nucleus 40 + cytoplasm 20),
    pred 2 == left half of B. Image 2: one GT cell, no prediction."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    write(gt, "1_1.png", rect((H, W), 100, 200, 100, 200, value=40))
    write(gt, "1_2.png", rect((H, W), 300, 400, 300, 400, value=20, nucleus=(320, 380, 320, 380)))
    write(gt, "2_1.png", rect((H, W), 500, 600, 500, 600))
    write(pred, "1_1.bmp", rect((H, W), 100, 200, 100, 200, value=20, nucleus=(120, 180, 120, 180)))
    write(pred, "1_2.bmp", rect((H, W), 300, 400, 300, 350, value=20))
    return gt, pred


def test_hand_computed(simple):
    gt, pred = simple
    res = evaluate_dirs(gt, pred)
    assert res.mIoU == (1.0 + 0.5 + 0.0) / 3
    assert (res.num_gt, res.num_pred) == (3, 2)
    assert res.per_image == {"1": {"mIoU": 0.75, "num_gt": 2, "num_pred": 2},
                             "2": {"mIoU": 0.0, "num_gt": 1, "num_pred": 0}}
    assert res.unmatched_pred_images == ()


def test_unmatched_prediction_costs_nothing(simple):
    gt, pred = simple
    write(pred, "1_3.bmp", rect((H, W), 800, 900, 1000, 1200, value=40))      # matches nothing
    write(pred, "1_4.bmp", rect((H, W), 150, 250, 150, 250, value=20))        # worse than 1_1 on A
    write(pred, "77_1.bmp", rect((H, W), 500, 600, 500, 600, value=20))      # image without GT
    res = evaluate_dirs(gt, pred)
    assert res.mIoU == 1.5 / 3
    assert res.num_pred == 4
    assert res.per_image["1"] == {"mIoU": 0.75, "num_gt": 2, "num_pred": 4}
    assert res.unmatched_pred_images == ("77",)


def test_other_prediction_values_do_not_count(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    write(gt, "5_1.png", rect((H, W), 0, 100, 0, 100, value=40))
    m = rect((H, W), 0, 100, 0, 50, value=20)
    m[:, 50:100][:100] = 255          # right half: not nucleus nor cytoplasm
    m[0:10, 0:10] = 10                # neither
    write(pred, "5_1.bmp", m)
    res = evaluate_dirs(gt, pred)
    assert res.mIoU == (100 * 50 - 100) / (100 * 100)


def test_gt_value_255_is_a_cell(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    write(gt, "5_1.png", rect((H, W), 0, 100, 0, 100, value=255))
    write(pred, "5_1.bmp", rect((H, W), 0, 100, 0, 25, value=40))
    assert evaluate_dirs(gt, pred).mIoU == 0.25


def test_three_channel_gt_uses_first_channel(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    m = np.zeros((H, W, 3), np.uint8)
    m[0:100, 0:100, 0] = 40          # the cell, in the first channel
    m[500:600, 500:600, 2] = 40      # only in the third channel: not part of the cell
    write(gt, "5_1.bmp", m)
    write(pred, "5_1.bmp", rect((H, W), 0, 100, 0, 100, value=20))
    assert evaluate_dirs(gt, pred).mIoU == 1.0


def test_resize_effect_downscale(tmp_path):
    """At 2160x2880 nearest keeps even rows/columns (the map is 2i): a one-pixel line on an odd
    column vanishes (IoU 0, although identical at source), and a box one column wider on an odd
    column becomes identical (IoU 1, although 9900/10000 at source)."""
    ry, cx = resize_maps((2160, 2880), TARGET)
    assert np.array_equal(ry, 2 * np.arange(H)) and np.array_equal(cx, 2 * np.arange(W))
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    shape = (2160, 2880)
    write(gt, "3_1.png", rect(shape, 10, 30, 41, 42, value=40))
    write(pred, "3_1.bmp", rect(shape, 10, 30, 41, 42, value=40))
    write(gt, "3_2.png", rect(shape, 100, 200, 100, 199, value=40))   # columns 100..198
    write(pred, "3_2.bmp", rect(shape, 100, 200, 100, 200, value=20))  # + column 199 (odd)
    res = evaluate_dirs(gt, pred)
    assert res.mIoU == 0.5


def test_resize_effect_upscale_non_integer(tmp_path):
    """384x512 → 1080x1440 (x2.8125): the IoU is the one of the resized masks, not the source's."""
    gt_m = rect((384, 512), 10, 21, 10, 21, value=40)
    pr_m = rect((384, 512), 15, 26, 10, 21, value=20)
    g, p = nearest(gt_m) > 0, nearest(pr_m) > 0
    expected = (g & p).sum() / (g | p).sum()
    source = 6 * 11 / (16 * 11)
    assert expected != source
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    write(gt, "4_1.png", gt_m)
    write(pred, "4_1.bmp", pr_m)
    assert evaluate_dirs(gt, pred).mIoU == expected


def test_iou_matrix_and_best_ious():
    a = CropMask(10, 10, np.ones((10, 10), bool), TARGET)
    b = CropMask(10, 15, np.ones((10, 10), bool), TARGET)          # overlaps a by 50
    c = CropMask(500, 500, np.ones((3, 3), bool), TARGET)
    e = CropMask.empty(TARGET)
    m = iou_matrix([a, c, e], [b, e])
    assert m.tolist() == [[50 / 150, 0.0], [0.0, 0.0], [0.0, 0.0]]
    assert best_ious([a, c], [b, a]).tolist() == [1.0, 0.0]
    assert best_ious([a], []).tolist() == [0.0]
    assert best_ious([], [a]).shape == (0,)


def test_crop_mask_tightens_box():
    crop = np.zeros((5, 6), bool)
    crop[1:3, 2:4] = True
    m = CropMask(100, 200, crop, TARGET)
    assert (m.y0, m.x0, m.y1, m.x1, m.area) == (101, 202, 103, 204, 4)
    assert m.box == (202, 101, 204, 103)


# --------------------------------------------------------------------------- crop resize == cv2.resize


def random_masks(rng, h, w, n=6):
    """Blobs, random noise, borders, single pixels, empty and full masks of size h x w."""
    out = []
    for _ in range(n):
        m = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
            ax = (int(rng.integers(1, max(2, w // 5))), int(rng.integers(1, max(2, h // 5))))
            cv2.ellipse(m, (cx, cy), ax, float(rng.integers(0, 180)), 0, 360, int(rng.choice([20, 40, 255])), -1)
        out.append(m)
    noise = (rng.random((h, w)) < 0.2).astype(np.uint8) * rng.choice(np.array([20, 40, 7], np.uint8), (h, w))
    out.append(noise)
    border = np.zeros((h, w), np.uint8)
    border[:, : max(1, w // 7)] = 40          # full columns: runs that span several columns
    border[-1, :] = 20                        # bottom row
    border[:, -1] = 40                        # right column
    out.append(border)
    one = np.zeros((h, w), np.uint8)
    one[h - 1, w - 1] = 40
    out.append(one)
    out.append(np.zeros((h, w), np.uint8))
    out.append(np.full((h, w), 20, np.uint8))
    return out


SIZES = [(1536, 2040), (384, 512), (386, 512), (1080, 1440), (2160, 2880), (701, 933), (1081, 1441), (7, 9), (1, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("shape", SIZES)
def test_crop_resize_equals_cv2_resize(shape):
    rng = np.random.default_rng(sum(shape))
    ry, cx = resize_maps(shape, TARGET)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    assert np.array_equal(nearest(img), img[ry][:, cx])  # the maps reproduce cv2 exactly
    for m in random_masks(rng, *shape):
        r = nearest(m)
        gt_ref = r > 0
        pred_ref = (r == 20) | (r == 40)
        for sm in (CropMask.from_dense(m, target=TARGET), CropMask.from_dense(m > 0, target=TARGET),
                   scaled_rle(encode(m > 0)), CropMask.from_dense(m.astype(np.int32), target=TARGET)):
            assert np.array_equal(sm.to_dense(), gt_ref)
            assert sm.area == int(gt_ref.sum())
        pm = CropMask.from_dense(m, PRED_VALUES, TARGET)
        assert np.array_equal(pm.to_dense(), pred_ref) and pm.area == int(pred_ref.sum())
        if pm.area:  # tight box
            ys, xs = np.nonzero(pred_ref)
            assert (pm.y0, pm.x0, pm.y1, pm.x1) == (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)


def test_rle_forms():
    rng = np.random.default_rng(3)
    m = (rng.random((37, 23)) < 0.4)
    m[:, 5:8] = True  # long runs crossing columns
    rle = encode(m)
    ref = nearest(m.astype(np.uint8)) > 0
    counts = decode_counts(rle["counts"])
    flat = np.repeat(np.arange(len(counts)) % 2, counts).astype(bool)
    assert np.array_equal(flat.reshape(23, 37).T, m)
    assert np.array_equal(scaled_rle({"size": rle["size"], "counts": rle["counts"].encode()}).to_dense(), ref)
    assert np.array_equal(scaled_rle({"size": [37, 23], "counts": counts.tolist()}).to_dense(), ref)
    poly = [[2.0, 2.0, 20.0, 2.0, 20.0, 30.0, 2.0, 30.0]]
    from pycocotools import mask as mask_utils
    dense = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(poly, 37, 23)))
    assert np.array_equal(scaled_rle(poly, (37, 23)).to_dense(), nearest(dense) > 0)
    with pytest.raises(ValueError):
        scaled_rle({"size": [5, 5], "counts": [3, 4]})


# --------------------------------------------------------------------------- agreement with the reference


def blob_scene(rng, shape, n_gt):
    """GT cells (values 20/40, sometimes 255) and predictions: perturbed copies (shift, dilate,
    erode, stray values), misses and false positives."""
    h, w = shape
    gts, preds = [], []
    for _ in range(n_gt):
        m = np.zeros(shape, np.uint8)
        cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
        ax = (int(rng.integers(2, max(3, w // 8))), int(rng.integers(2, max(3, h // 8))))
        cv2.ellipse(m, (cx, cy), ax, float(rng.integers(0, 180)), 0, 360, 20, -1)
        cv2.ellipse(m, (cx, cy), (max(1, ax[0] // 2), max(1, ax[1] // 2)), 0, 0, 360, 40, -1)
        if rng.random() < 0.2:
            m[m > 0] = 255
        gts.append(m)
        if rng.random() < 0.8:
            preds.append(perturb(rng, m))
    for _ in range(int(rng.integers(0, 3))):
        preds.append(perturb(rng, gts[int(rng.integers(0, n_gt))]))
    return gts, preds


def perturb(rng, m):
    p = np.where(m > 0, np.where(m == 40, 40, 20), 0).astype(np.uint8)
    k = int(rng.integers(1, 6))
    op = rng.integers(0, 3)
    if op == 1:
        p = cv2.dilate(p, np.ones((k, k), np.uint8))
    elif op == 2:
        p = cv2.erode(p, np.ones((k, k), np.uint8))
    dy, dx = (int(v) for v in rng.integers(-k, k + 1, 2))
    p = np.roll(p, (dy, dx), axis=(0, 1))
    if rng.random() < 0.3:
        p[(rng.random(p.shape) < 0.05) & (p > 0)] = 77  # stray values: not part of the cell
    return p


def test_agrees_with_dense_reference_in_memory():
    rng = np.random.default_rng(7)
    gt_raw, pred_raw = {}, {}
    for i, shape in enumerate([(384, 512), (386, 512), (1536, 2040), (1080, 1440), (701, 933), (384, 512)]):
        gts, preds = blob_scene(rng, shape, int(rng.integers(1, 6)))
        gt_raw[str(i)] = gts
        if i != 3:  # image 3: no predictions
            pred_raw[str(i)] = preds
    ref = reference_evaluate(gt_raw, pred_raw)
    gt = {k: [CropMask.from_dense(m, target=TARGET) for m in v] for k, v in gt_raw.items()}
    pred = {k: [CropMask.from_dense(m, PRED_VALUES, TARGET) for m in v] for k, v in pred_raw.items()}
    res = evaluate_masks(gt, pred)
    assert 0 < res.mIoU < 1
    assert abs(res.mIoU - ref.mIoU) < 1e-9
    assert res.to_dict() == ref.to_dict()  # exact integer counts → identical floats
    assert res.per_image["3"]["mIoU"] == 0.0
    # streaming use (the mmengine metric): accumulate per image, then summarize
    records = [accumulate(k, gt[k], pred.get(k, [])) for k in reversed(list(gt))]
    assert summarize(records).to_dict() == res.to_dict()


def test_agrees_with_dense_reference_on_files(tmp_path):
    rng = np.random.default_rng(11)
    gt, pred = tmp_path / "split" / "y", tmp_path / "pred"
    pred.mkdir()
    for i, shape in enumerate([(384, 512), (1536, 2040), (999, 1001)]):
        gts, preds = blob_scene(rng, shape, 4)
        for k, m in enumerate(gts, 1):
            write(gt, f"{100 + i}_{k}.png", m)
        for k, m in enumerate(preds, 1):
            write(pred, f"{100 + i}_{k}.bmp", m)
    ref = reference_evaluate_dirs(tmp_path / "split", pred)
    for workers in (1, 2):
        res = evaluate_dirs(tmp_path / "split", pred, workers=workers)  # split folder holding y/
        assert abs(res.mIoU - ref.mIoU) < 1e-9
        assert res.to_dict() == ref.to_dict()
    assert evaluate_dirs(gt, pred).to_dict() == ref.to_dict()  # the y/ folder itself


def test_dump_equals_submission_folder(tmp_path):
    rng = np.random.default_rng(5)
    gt = tmp_path / "gt"
    images = []
    for i, shape in enumerate([(384, 512), (1536, 2040), (384, 512)]):
        gts, preds = blob_scene(rng, shape, 4)
        for k, m in enumerate(gts, 1):
            write(gt, f"{i}_{k}.png", m)
        cells = []
        for p in preds:
            cell = p > 0
            if not cell.any():
                continue
            nuc = encode(p == 40) if rng.random() < 0.7 else None
            cells.append({"score": 0.9, "bbox": [0, 0, 1, 1], "cell": encode(cell), "nucleus": nuc})
        if i != 2:  # image 2: no predictions
            images.append({"name": str(i), "img_id": i, "height": shape[0], "width": shape[1], "cells": cells})
    images.append({"name": "99", "img_id": 99, "height": 8, "width": 8,
                   "cells": [{"score": 1.0, "bbox": [0, 0, 8, 8], "cell": encode(np.ones((8, 8), bool)),
                              "nucleus": None}]})
    dump = make_dump(images)
    save_dump(dump, tmp_path / "pred.json")
    write_submission(dump, tmp_path / "sub")
    a = evaluate_dirs(gt, tmp_path / "pred.json")
    b = evaluate_dirs(gt, tmp_path / "sub")
    assert 0 < a.mIoU < 1
    assert a.to_dict() == b.to_dict()
    assert a.unmatched_pred_images == b.unmatched_pred_images == ("99",)
    assert a.per_image["2"] == {"mIoU": 0.0, "num_gt": 4, "num_pred": 0}


# --------------------------------------------------------------------------- errors


def test_errors(tmp_path):
    with pytest.raises(SegPCError, match="^.*nope: ground-truth folder not found$"):
        evaluate_dirs(tmp_path / "nope", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SegPCError, match="empty: no ground-truth masks"):
        evaluate_dirs(tmp_path / "empty", tmp_path)
    gt = tmp_path / "gt"
    write(gt, "1_1.png", rect((10, 10), 0, 5, 0, 5))
    with pytest.raises(SegPCError, match="missing: predictions not found"):
        evaluate_dirs(gt, tmp_path / "missing")
    (tmp_path / "bad.pkl").write_bytes(b"not a pickle")
    with pytest.raises(SegPCError, match="bad.pkl: not a prediction dump"):
        evaluate_dirs(gt, tmp_path / "bad.pkl")
    (gt / "1_2.png").write_bytes(b"corrupt")
    with pytest.raises(SegPCError, match="1_2.png: cannot read mask"):
        evaluate_dirs(gt, tmp_path / "empty")
    (gt / "1_2.png").unlink()
    write(gt, "notes.png", rect((10, 10), 0, 5, 0, 5))
    with pytest.raises(SegPCError, match="notes.png: mask name must be"):
        evaluate_dirs(gt, tmp_path / "empty")
    with pytest.raises(SegPCError, match="no ground-truth cells"):
        evaluate_masks({"a": []}, {"a": [CropMask.empty(TARGET)]})
    with pytest.raises(SegPCError, match="scored twice"):
        summarize([accumulate("a", [CropMask.empty(TARGET)], [])] * 2)


def test_empty_gt_mask_counts_as_a_missed_cell(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    write(gt, "1_1.png", rect((H, W), 0, 10, 0, 10, value=40))
    write(gt, "1_2.png", np.zeros((H, W), np.uint8))
    write(pred, "1_1.bmp", rect((H, W), 0, 10, 0, 10, value=40))
    res = evaluate_dirs(gt, pred)
    assert (res.mIoU, res.num_gt) == (0.5, 2)


# --------------------------------------------------------------------------- CLI


def run_tool(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, str(REPO / "tools" / "eval_miou.py"), *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=REPO)


def test_cli(simple, tmp_path):
    gt, pred = simple
    out = tmp_path / "out" / "miou.json"
    r = run_tool(gt, pred, "--json", out)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "mIoU: 0.500000"
    assert lines[1] == "num_gt: 3  num_pred: 2  images: 2"
    data = json.loads(out.read_text())
    assert data == {"mIoU": 0.5, "num_gt": 3, "num_pred": 2,
                    "per_image": {"1": {"mIoU": 0.75, "num_gt": 2, "num_pred": 2},
                                  "2": {"mIoU": 0.0, "num_gt": 1, "num_pred": 0}}}
    assert [p.name for p in out.parent.iterdir()] == ["miou.json"]  # atomic: no temp file left


def test_cli_missing_dir(tmp_path):
    r = run_tool(tmp_path / "nope", tmp_path)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr == f"error: {tmp_path / 'nope'}: ground-truth folder not found\n"


def test_evaluation_package_is_light():
    code = ("import sys, segpc.evaluation, segpc.structures, segpc.testing.miou; "
            "heavy = [m for m in ('torch', 'mmengine', 'mmdet', 'mmcv') if m in sys.modules]; "
            "assert not heavy, heavy")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr


# --------------------------------------------------------------------------- real data


@pytest.mark.slow
def test_real_gt_against_itself(real_data):
    y = real_data / "train_fullres" / "y"
    n_files = len([p for p in y.iterdir() if p.suffix == ".png"])
    res = evaluate_dirs(real_data / "train_fullres", y)
    assert res.mIoU == 1.0
    assert res.num_gt == res.num_pred == n_files
    assert all(r["mIoU"] == 1.0 for r in res.per_image.values())


@pytest.mark.slow
def test_real_perturbed_matches_reference(real_data, tmp_path):
    rng = np.random.default_rng(2021)
    pred = tmp_path / "pred"
    pred.mkdir()
    gt = tmp_path / "gt"
    gt.mkdir()
    for split, tag, n_images in (("train_fullres", "f", 3), ("train_512", "s", 12)):
        y = real_data / split / "y"
        ids = sorted({p.stem.rpartition("_")[0] for p in y.glob("*.png")})[:n_images]
        for image_id in ids:  # the two sets share image ids: prefix them
            for p in sorted(y.glob(f"{image_id}_*.png")):
                os.symlink(p, gt / f"{tag}{p.name}")
                m = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
                if rng.random() < 0.9:
                    write(pred, f"{tag}{p.stem}.bmp", perturb(rng, m))
    res = evaluate_dirs(gt, pred)
    ref = reference_evaluate_dirs(gt, pred)
    assert 0.3 < res.mIoU < 1.0
    assert abs(res.mIoU - ref.mIoU) < 1e-9
    assert res.to_dict() == ref.to_dict()
