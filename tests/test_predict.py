"""Prediction on new slides (segpc.apis.predict, tools/predict.py) and the worst-cells report
(segpc.evaluation.worst, tools/worst_cells.py)."""
import csv
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import cell, random_init_checkpoint, rect, synthetic_coco, tool

from segpc.apis.predict import (CELL_FIELDS, SUMMARY_FIELDS, cell_rows, list_images, summary_rows, write_csv,
                                write_outputs)
from segpc.evaluation.miou import best_ious, best_matches, evaluate_dirs
from segpc.evaluation.worst import match_cells, write_report
from segpc.io import SegPCError
from segpc.structures import CropMask, load_dump, make_dump, save_dump
from segpc.visualization import PRED_COLORS

REPO = Path(__file__).resolve().parents[1]
CONFIG = "configs/fixture/mask_rcnn_micro.py"
H, W = 40, 60


def known_dump():
    # image "a": a 10x10 cell with a 5x5 nucleus, a 5x10 cell without one; image "b": no cell
    a = [cell(rect(2, 12, 2, 12), 0.9, rect(4, 9, 4, 9)), cell(rect(20, 25, 30, 40), 0.6)]
    return make_dump([{"name": "a", "img_id": 0, "height": H, "width": W, "cells": a},
                      {"name": "b", "img_id": 1, "height": H, "width": W, "cells": []}])


def test_statistics_known_answer(tmp_path):
    d = known_dump()
    cells = cell_rows(d)
    assert [(r["image"], r["k"], r["cell_area"], r["nucleus_area"], r["cytoplasm_area"], r["nucleus_cell_ratio"])
            for r in cells] == [("a", 1, 100, 25, 75, 0.25), ("a", 2, 50, 0, 50, 0.0)]
    assert cells[1]["x1"] == 30 and cells[1]["y2"] == 25
    summary = summary_rows(d)
    assert summary == [
        {"image": "a", "num_cells": 2, "mean_nucleus_area": 12.5, "mean_cytoplasm_area": 62.5,
         "mean_nucleus_cell_ratio": 0.125},
        {"image": "b", "num_cells": 0, "mean_nucleus_area": None, "mean_cytoplasm_area": None,
         "mean_nucleus_cell_ratio": None}]
    write_csv(summary, SUMMARY_FIELDS, tmp_path / "s.csv")
    assert (tmp_path / "s.csv").read_text() == (
        "image,num_cells,mean_nucleus_area,mean_cytoplasm_area,mean_nucleus_cell_ratio\n"
        "a,2,12.50,62.50,0.125\n"
        "b,0,,,\n")


def test_write_outputs(tmp_path):
    d = known_dump()
    images = {}
    for name in ("a", "b"):
        images[name] = tmp_path / "x" / f"{name}.png"
        images[name].parent.mkdir(exist_ok=True)
        cv2.imwrite(str(images[name]), np.full((H, W, 3), 128, np.uint8))
    out = tmp_path / "out"
    write_outputs(d, images, out)
    assert sorted(p.name for p in (out / "submission").iterdir()) == ["a_1.bmp", "a_2.bmp"]
    assert load_dump(out / "predictions.json") == d
    rows = list(csv.DictReader(open(out / "cells.csv")))
    assert [r["k"] for r in rows] == ["1", "2"] and list(rows[0]) == list(CELL_FIELDS)
    over_a, over_b = (cv2.imread(str(out / "overlays" / f"{n}.png")) for n in ("a", "b"))
    assert over_a.shape == (H, W, 3)
    for color in PRED_COLORS:  # cell and nucleus outlines, in their colours
        assert (over_a == color).all(axis=2).any()
        assert not (over_b == color).all(axis=2).any()


def test_list_images_errors(tmp_path):
    with pytest.raises(SegPCError, match="image folder not found"):
        list_images(tmp_path / "nope")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "notes.txt").write_text("")
    with pytest.raises(SegPCError, match="no images"):
        list_images(tmp_path / "e")
    for name in ("10.png", "9.jpg", "10.bmp"):
        (tmp_path / "e" / name).write_bytes(b"")
    with pytest.raises(SegPCError, match="two images named '10'"):
        list_images(tmp_path / "e")
    (tmp_path / "e" / "10.bmp").unlink()
    assert [p.name for p in list_images(tmp_path / "e")] == ["9.jpg", "10.png"]


# --------------------------------------------------------------------------- worst cells


def test_best_matches_agrees_with_best_ious():
    gt = [CropMask.from_dense(rect(2, 12, 2, 12)), CropMask.from_dense(rect(30, 35, 50, 55))]
    pred = [CropMask.from_dense(rect(2, 12, 3, 12)), CropMask.from_dense(rect(2, 12, 2, 12))]
    ious, idx = best_matches(gt, pred)
    np.testing.assert_array_equal(ious, best_ious(gt, pred))
    assert idx.tolist() == [1, -1] and ious.tolist() == [1.0, 0.0]
    ious, idx = best_matches(gt, [])
    assert ious.tolist() == [0.0, 0.0] and idx.tolist() == [-1, -1]


def test_worst_cells_report(tmp_path):
    split = tmp_path / "val"
    (split / "x").mkdir(parents=True)
    (split / "y").mkdir()
    cv2.imwrite(str(split / "x" / "1.png"), np.full((H, W, 3), 200, np.uint8))
    gts = {"1_1": rect(2, 12, 2, 12), "1_2": rect(20, 30, 30, 50), "1_3": rect(30, 38, 2, 10)}
    for name, m in gts.items():
        cv2.imwrite(str(split / "y" / f"{name}.bmp"), np.where(m, 20, 0).astype(np.uint8))
    preds = [cell(rect(20, 30, 30, 45), 0.9), cell(rect(2, 12, 2, 12), 0.8)]  # 1_2: IoU 0.75; 1_3 missed
    save_dump(make_dump([{"name": "1", "img_id": 1, "height": H, "width": W, "cells": preds}]), tmp_path / "p.json")
    matches = match_cells(split, tmp_path / "p.json")
    assert [(m.gt_name, m.iou, m.pred) for m in matches] == [("1_3", 0.0, None), ("1_2", 0.75, "1_1"),
                                                             ("1_1", 1.0, "1_2")]
    assert sum(m.iou for m in matches) / 3 == evaluate_dirs(split, tmp_path / "p.json").mIoU
    rows = write_report(matches, split, tmp_path / "out", num=2)
    assert [r["crop"] for r in rows] == ["crops/1_1_3.png", "crops/2_1_2.png"]
    assert sorted(p.name for p in (tmp_path / "out" / "crops").iterdir()) == ["1_1_3.png", "2_1_2.png"]
    crop = cv2.imread(str(tmp_path / "out" / "crops" / "2_1_2.png"))
    assert min(crop.shape[:2]) >= 256
    text = (tmp_path / "out" / "index.csv").read_text().splitlines()
    assert text == ["rank,image,gt_mask,iou,pred,crop", "1,1,1_3.bmp,0.000000,,crops/1_1_3.png",
                    "2,1,1_2.bmp,0.750000,1_1,crops/2_1_2.png"]
    assert "![1_2.bmp](crops/2_1_2.png)" in (tmp_path / "out" / "index.md").read_text()
    # a submission folder gives the same IoUs, predictions named by file
    proc = subprocess.run([sys.executable, "tools/ensemble.py", tmp_path / "p.json", tmp_path / "p.json",
                           "--out", tmp_path / "e.json", "--submission", tmp_path / "sub"], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert [(m.gt_name, m.iou, m.pred) for m in match_cells(split, tmp_path / "sub")] == \
        [(m.gt_name, m.iou, m.pred) for m in matches]


# --------------------------------------------------------------------------- the real tools


@pytest.mark.slow
def test_predict_tool_matches_test_tool(tmp_path):
    root = synthetic_coco(tmp_path / "data", {"validation": 3}, seed=5)
    ckpt = tmp_path / "init.pth"
    random_init_checkpoint(ckpt)

    tool("tools/test.py", CONFIG, ckpt, "--tta", "--format-only", "--out", tmp_path / "test.json",
         "--score-thr", "0", "--work-dir", tmp_path / "w", "--cfg-options", f"data_root={root}")
    out = tmp_path / "out"
    proc = tool("tools/predict.py", CONFIG, ckpt, root / "validation" / "x", out, "--tta", "--score-thr", "0")
    dump = load_dump(out / "predictions.json")
    # same model, same TTA pipeline: the same cells as tools/test.py
    assert dump["images"] == load_dump(tmp_path / "test.json")["images"]
    n = sum(len(img["cells"]) for img in dump["images"])
    assert n > 0 and f"3 images, {n} cells" in proc.stdout
    assert len(list((out / "submission").glob("*.bmp"))) == n
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [r["image"] for r in rows] == ["1", "2", "3"]
    assert [int(r["num_cells"]) for r in rows] == [len(img["cells"]) for img in dump["images"]]
    expected = summary_rows(dump)
    for r, e in zip(rows, expected):
        if e["num_cells"]:
            assert float(r["mean_nucleus_area"]) == pytest.approx(e["mean_nucleus_area"], abs=0.005)
            assert float(r["mean_cytoplasm_area"]) == pytest.approx(e["mean_cytoplasm_area"], abs=0.005)
    assert len(list(csv.DictReader(open(out / "cells.csv")))) == n
    for name in ("1", "2", "3"):
        assert cv2.imread(str(out / "overlays" / f"{name}.png")).shape == (96, 128, 3)

    bad = tool("tools/predict.py", CONFIG, ckpt, tmp_path / "nowhere", out, check=False)
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: {tmp_path / 'nowhere'}: image folder not found"
