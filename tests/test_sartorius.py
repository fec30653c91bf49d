"""Sartorius / Kaggle path: run-length codec, CSV → COCO, dump → submission CSV, the Kaggle AP metric."""
import csv
import json

import cv2
import numpy as np
import pytest

from helpers import tool
from segpc.datasets.sartorius import (
    convert_sartorius, write_sartorius_coco, image_class, parse_per_class, postprocess_image, read_submission,
    write_submission_csv,
)
from segpc.datasets.sartorius_synthetic import write_sartorius_synthetic
from segpc.ensemble import ensemble_dumps, nms_dumps
from segpc.evaluation.kaggle_ap import evaluate_csv, score_image
from segpc.io import SegPCError
from segpc.testing import kaggle_ap as ref
from segpc.structures import (
    bbox_xyxy, decode, encode, kaggle_decode, kaggle_encode, kaggle_runs, kaggle_to_rle,
    kaggle_to_rle_t, make_dump, rle_to_kaggle,
)

HEADER = ["id", "annotation", "width", "height", "cell_type", "plate_time", "sample_date", "sample_id",
          "elapsed_timedelta"]


def write_csv(path, rows, header=HEADER):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def row(img_id, ann, w=6, h=4, cell_type="astro"):
    return [img_id, ann, w, h, cell_type, "11d04h00m00s", "2019-06-16", "s", "0 days"]


def rect(y0, y1, x0, x1, shape=(20, 30)):
    m = np.zeros(shape, np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


# --------------------------------------------------------------------------- codec


def test_kaggle_codec_hand_values():
    m = np.array([[0, 1, 1], [1, 0, 0]], np.uint8)
    assert kaggle_encode(m) == "2 3"  # 1-indexed, row-major: pixels 2, 3, 4
    assert (kaggle_decode("1 1 6 1", 2, 3) == [[1, 0, 0], [0, 0, 1]]).all()
    assert kaggle_encode(np.zeros((2, 3))) == ""
    s, e = kaggle_runs("5 1 1 2 3 1", 2, 3)  # unsorted, adjacent runs are joined
    assert s.tolist() == [0, 4] and e.tolist() == [3, 5]


def test_kaggle_codec_matches_public_decoder_and_coco():
    rng = np.random.default_rng(0)
    for _ in range(50):
        h, w = (int(v) for v in rng.integers(1, 25, 2))
        m = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        text = kaggle_encode(m)
        assert (ref.rle_decode(text, (h, w)) == m).all()
        assert (kaggle_decode(text, h, w) == m).all()
        assert kaggle_to_rle(text, h, w) == encode(m)
        assert kaggle_to_rle_t(text, h, w) == encode(np.ascontiguousarray(m.T))
        assert rle_to_kaggle(encode(m)) == text


@pytest.mark.parametrize("text", ["1 2 3", "1 7", "0 1", "2 0", "1 3 2 1", "1 x"])
def test_kaggle_runs_rejects_bad_text(text):
    with pytest.raises(ValueError):
        kaggle_runs(text, 2, 3)


# --------------------------------------------------------------------------- CSV → COCO


def _hand_data(tmp_path):
    img_dir = tmp_path / "train"
    img_dir.mkdir()
    cv2.imwrite(str(img_dir / "aa.png"), np.zeros((4, 6), np.uint8))
    a = rect(0, 3, 0, 3, (4, 6))
    b = rect(1, 4, 2, 6, (4, 6))  # overlaps a in (1..2, 2)
    ring = rect(0, 3, 3, 6, (4, 6))
    ring[1, 4] = 0  # an enclosed hole
    rows = [row("aa", kaggle_encode(a)), row("aa", kaggle_encode(b)), row("aa", kaggle_encode(ring))]
    return write_csv(tmp_path / "train.csv", rows), img_dir, [a, b, ring]


def test_convert_exact_rle_box_area_overlaps_kept(tmp_path):
    csv_path, img_dir, masks = _hand_data(tmp_path)
    coco = convert_sartorius(csv_path, img_dir, progress=False)
    assert [c["name"] for c in coco["categories"]] == ["shsy5y", "astro", "cort"]
    assert coco["images"] == [{"id": 1, "file_name": "aa.png", "height": 4, "width": 6, "cell_type": "astro",
                               "plate_time": "11d04h00m00s", "sample_date": "2019-06-16", "sample_id": "s",
                               "elapsed_timedelta": "0 days"}]
    anns = coco["annotations"]
    assert [a["category_id"] for a in anns] == [2, 2, 2]
    assert [a["csv_line"] for a in anns] == [2, 3, 4]
    for a, m in zip(anns, masks):
        assert (decode(a["segmentation"]) == m).all()
        assert a["area"] == int(m.sum())
        x1, y1, x2, y2 = bbox_xyxy(encode(m))
        assert a["bbox"] == [x1, y1, x2 - x1, y2 - y1]
    assert anns[0]["bbox"] == [0, 0, 3, 3] and anns[1]["bbox"] == [2, 1, 4, 3]
    assert (decode(anns[0]["segmentation"]) & decode(anns[1]["segmentation"])).sum() == 2

    filled = convert_sartorius(csv_path, img_dir, fill_holes=True, progress=False)["annotations"]
    assert filled[2]["area"] == 9 and anns[2]["area"] == 8
    assert filled[0]["segmentation"] == anns[0]["segmentation"]


@pytest.mark.parametrize("ann,cell_type,problem", [
    ("1 2 3", "astro", "odd number"),
    ("20 10", "astro", "past the"),
    ("1 2", "neuron", "unknown cell type"),
])
def test_convert_bad_row_is_one_line_naming_it(tmp_path, ann, cell_type, problem):
    csv_path, img_dir, _ = _hand_data(tmp_path)
    rows = list(csv.reader(open(csv_path)))[1:]
    rows.insert(1, row("aa", ann, cell_type=cell_type))  # CSV line 3
    write_csv(csv_path, rows)
    with pytest.raises(SegPCError) as e:
        convert_sartorius(csv_path, img_dir, progress=False)
    assert e.value.path == str(csv_path) and "line 3 (id aa)" in str(e.value)
    assert problem in str(e.value) and "\n" not in str(e.value)


def test_convert_size_disagreeing_with_image(tmp_path):
    csv_path, img_dir, _ = _hand_data(tmp_path)
    rows = [r[:2] + ["7"] + r[3:] for r in list(csv.reader(open(csv_path)))[1:]]
    write_csv(csv_path, rows)
    with pytest.raises(SegPCError) as e:
        convert_sartorius(csv_path, img_dir, progress=False)
    assert e.value.path == str(csv_path) and "line 2 (id aa)" in str(e.value) and "7x4" in str(e.value)


def test_convert_tool_exit_2_and_no_output(tmp_path):
    csv_path, img_dir, _ = _hand_data(tmp_path)
    out = tmp_path / "out.json"
    assert tool("tools/convert_sartorius.py", csv_path, img_dir, out).returncode == 0
    assert len(json.loads(out.read_text())["annotations"]) == 3
    bad = write_csv(tmp_path / "bad.csv", [row("aa", "1 2 3")])
    proc = tool("tools/convert_sartorius.py", bad, img_dir, tmp_path / "bad.json", check=False)
    assert proc.returncode == 2 and str(bad) in proc.stderr and "line 2" in proc.stderr
    assert not (tmp_path / "bad.json").exists()


def test_synthetic_is_deterministic_and_converts(tmp_path):
    a = write_sartorius_synthetic(tmp_path / "a", 3, seed=1, size=(130, 176), max_cells=6)
    b = write_sartorius_synthetic(tmp_path / "b", 3, seed=1, size=(130, 176), max_cells=6)
    assert a == b and len(set(a)) == 3 and all(len(i) == 12 for i in a)
    assert (tmp_path / "a/train.csv").read_bytes() == (tmp_path / "b/train.csv").read_bytes()
    for i in a:
        assert (tmp_path / f"a/train/{i}.png").read_bytes() == (tmp_path / f"b/train/{i}.png").read_bytes()
    coco = convert_sartorius(tmp_path / "a/train.csv", tmp_path / "a/train", progress=False)
    assert [img["cell_type"] for img in coco["images"]] != [] and {im["width"] for im in coco["images"]} == {176}
    rows = list(csv.DictReader(open(tmp_path / "a/train.csv")))
    assert len(coco["annotations"]) == len(rows) and {r["cell_type"] for r in rows} == {"shsy5y", "astro", "cort"}
    with pytest.raises(SegPCError):
        write_sartorius_synthetic(tmp_path / "a", 1, seed=1)


# --------------------------------------------------------------------------- dump → submission


def _cell(mask, score, category):
    rle = encode(mask)
    return {"score": score, "bbox": bbox_xyxy(rle), "cell": rle, "category": category}


def test_image_class_majority_tie_goes_to_first_class():
    assert image_class(["cort", "astro", "cort"]) == "cort"
    assert image_class(["cort", "astro"]) == "astro"
    assert image_class([]) is None


def test_postprocess_score_order_overlap_min_size():
    big = rect(0, 10, 0, 20)            # 200 px
    over = rect(5, 15, 10, 30)          # 200 px, 50 of them inside big
    small = rect(15, 20, 0, 10)         # 50 px
    low = rect(0, 5, 25, 30)            # 25 px, low score
    cells = [_cell(over, 0.5, "astro"), _cell(big, 0.9, "astro"), _cell(small, 0.8, "cort"),
             _cell(low, 0.2, "astro")]
    cls, kept = postprocess_image(cells, (20, 30), min_size={"astro": 150})
    assert cls == "astro"  # 3 astro vs 1 cort: thresholds and sizes of astro
    # big (200) kept; small has 50 px < 150: dropped; over keeps 150 px (>= 150); low scores < 0.35
    assert [(y, x, int(c.sum())) for y, x, c in kept] == [(0, 0, 200), (5, 10, 150)]
    _, kept = postprocess_image(cells, (20, 30), min_size={"astro": 151})
    assert len(kept) == 1
    _, kept = postprocess_image(cells, (20, 30), score_thr={"astro": 0.1}, min_size={"astro": 25})
    assert [int(c.sum()) for _, _, c in kept] == [200, 50, 150, 25]


def test_write_submission_csv_rows_and_empty_images(tmp_path):
    big, over = rect(0, 10, 0, 20), rect(5, 15, 10, 30)
    dump = make_dump([
        {"name": "img1", "img_id": 1, "height": 20, "width": 30,
         "cells": [_cell(over, 0.6, "cort"), _cell(big, 0.9, "cort")]},
        {"name": "img2", "img_id": 2, "height": 20, "width": 30, "cells": [_cell(big, 0.5, "cort")]},
    ])
    out = tmp_path / "sub.csv"
    stats = write_submission_csv(dump, out, min_size={"cort": 10})
    assert stats == {"images": 2, "cells": 2, "classes": {"cort": 2}}
    lines = out.read_text().splitlines()
    assert lines[0] == "id,predicted" and lines[3] == "img2,"  # 0.5 < cort's 0.55
    sub = read_submission(out)
    assert sub["img2"] == []
    first, second = (kaggle_decode(t, 20, 30) for _, t in sub["img1"])
    assert (first == big).all() and (second == (over & (1 - big))).all() and not (first & second).any()


def test_submission_needs_categories():
    dump = make_dump([{"name": "x", "img_id": 1, "height": 20, "width": 30,
                       "cells": [{"score": 0.9, "bbox": [0, 0, 1, 1], "cell": encode(rect(0, 1, 0, 1)),
                                  "nucleus": None}]}])
    with pytest.raises(SegPCError, match="category"):
        write_submission_csv(dump, "/nonexistent/never.csv")


def test_parse_per_class():
    assert parse_per_class("0.3") == {"shsy5y": 0.3, "astro": 0.3, "cort": 0.3}
    assert parse_per_class("cort=0.5")["cort"] == 0.5
    with pytest.raises(SegPCError):
        parse_per_class("neuron=0.5")


# --------------------------------------------------------------------------- metric


def test_metric_hand_values():
    gt = [encode(rect(0, 10, 0, 10))]
    # IoU 60/100 = 0.6: a match at t = 0.50, 0.55 only (strictly greater), so (1 + 1) / 10
    score, tp = score_image(gt, [encode(rect(0, 6, 0, 10))])
    assert tp.tolist() == [1, 1] + [0] * 8 and score == pytest.approx(0.2 + 8 * (0 / 2) / 10)
    # IoU exactly 0.75: matches for t < 0.75 (50..70: 5 thresholds); misses are 1 FP + 1 FN → 0
    score, tp = score_image(gt, [encode(rect(0, 10, 0, 10) & (1 - rect(0, 5, 0, 5)))])
    assert tp.tolist() == [1] * 5 + [0] * 5 and score == pytest.approx(0.5)
    # two ground-truth cells, one perfect prediction, one false positive: 1 / (1 + 1 + 1) everywhere
    gt2 = gt + [encode(rect(12, 20, 0, 10))]
    score, _ = score_image(gt2, [encode(rect(0, 10, 0, 10)), encode(rect(0, 5, 20, 30))])
    assert score == pytest.approx(1 / 3)
    assert score_image([], [])[0] == 1.0 and score_image(gt, [])[0] == 0.0


def test_metric_one_to_one_with_overlapping_truth():
    # two near-identical ground-truth cells and one prediction: one match, one FN
    a, b = rect(0, 10, 0, 10), rect(0, 10, 0, 9)
    score, tp = score_image([encode(a), encode(b)], [encode(a)])
    assert tp.tolist() == [1] * 10 and score == pytest.approx(0.5)
    # the public count (ground-truth rows with exactly one match) differs here: the one
    # prediction is a TP for both rows while IoU(a, b) = 0.9 > t, so 8 thresholds score 2/2
    assert ref.image_score([a, b], [a]) == pytest.approx((8 * 1.0 + 2 * 0.5) / 10)


def test_metric_parity_with_dense_reference(tmp_path):
    write_sartorius_synthetic(tmp_path, 3, seed=3, size=(130, 176), max_cells=12)
    truth = tmp_path / "train.csv"
    for seed in (0, 1):
        sub = ref.perturbed_submission(truth, tmp_path / f"sub{seed}.csv", seed)
        ours = evaluate_csv(truth, sub)
        score, per_image = ref.evaluate_csv(truth, sub)
        assert 0.2 < ours.score < 0.95
        assert ours.score == pytest.approx(score, abs=1e-12)
        for name, s in per_image.items():
            assert ours.per_image[name]["score"] == pytest.approx(s, abs=1e-12)
    assert set(ours.per_type) == {"shsy5y", "astro", "cort"}
    # the truth against itself scores 1
    assert evaluate_csv(truth, write_csv(tmp_path / "self.csv", [
        [r["id"], r["annotation"]] for r in csv.DictReader(open(truth))], ["id", "predicted"])).score == 1.0


def test_validation_split_and_coco_truth(tmp_path):
    ids = write_sartorius_synthetic(tmp_path, 4, seed=5, size=(130, 176), max_cells=8)
    truth = tmp_path / "train.csv"
    train, val = write_sartorius_coco(truth, tmp_path / "train", tmp_path / "t.json", progress=False,
                                      val_json=tmp_path / "v.json", num_val=1, seed=0)
    names = [im["file_name"][:-4] for im in train["images"] + val["images"]]
    assert sorted(names) == sorted(ids) and len(val["images"]) == 1
    assert {a["image_id"] for a in val["annotations"]} == {val["images"][0]["id"]}
    sub = ref.perturbed_submission(truth, tmp_path / "sub.csv", 0)
    by_csv = evaluate_csv(truth, sub)
    by_coco = evaluate_csv(tmp_path / "v.json", sub)  # untransposed RLEs from the COCO file
    (name,) = by_coco.per_image
    assert by_coco.per_image[name] == by_csv.per_image[name]
    assert len(by_coco.unmatched_pred_images) == 3


def test_coco_truth_reads_polygons_and_cell_types(tmp_path):
    from segpc.evaluation.kaggle_ap import load_coco_truth

    coco = {"images": [{"id": 7, "file_name": "p.png", "height": 20, "width": 30}],
            "categories": [{"id": 1, "name": "shsy5y"}, {"id": 3, "name": "cort"}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "iscrowd": 0,
                             "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]},
                            {"id": 2, "image_id": 7, "category_id": 3, "iscrowd": 0,
                             "segmentation": encode(rect(12, 20, 0, 10))}]}
    (tmp_path / "c.json").write_text(json.dumps(coco))
    gt, sizes = load_coco_truth(tmp_path / "c.json")
    cell_type, rles = gt["p"]
    assert cell_type == "cort" and sizes == {"p": (20, 30)}
    assert decode(rles[0])[:10, :10].all() and decode(rles[1]).sum() == 80


def test_eval_tool_prints_score_and_json(tmp_path):
    truth = write_csv(tmp_path / "t.csv", [row("a", "1 10", 10, 10, "cort"), row("b", "1 10", 10, 10, "astro")])
    sub = write_csv(tmp_path / "s.csv", [["a", "1 10"], ["b", "1 6"], ["zz", "1 1"]], ["id", "predicted"])
    proc = tool("tools/eval_kaggle_ap.py", truth, sub, "--json", tmp_path / "r.json")
    # a: 1.0; b: IoU 0.6 -> 0.2; mean 0.6
    assert "score: 0.600000" in proc.stdout.splitlines()
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["per_type"] == {"astro": {"score": 0.2, "images": 1}, "cort": {"score": 1.0, "images": 1}}
    assert res["unmatched_pred_images"] == ["zz"] and "zz" in proc.stderr
    bad = write_csv(tmp_path / "bad.csv", [["a", "1 200"]], ["id", "predicted"])
    proc = tool("tools/eval_kaggle_ap.py", truth, bad, check=False)
    assert proc.returncode == 2 and str(bad) in proc.stderr and "line 2 (id a)" in proc.stderr


# --------------------------------------------------------------------------- merging models


def _dump(*cells):
    return make_dump([{"name": "a", "img_id": 1, "height": 20, "width": 30, "cells": list(cells)}])


def test_nms_per_category_thresholds():
    a = rect(0, 10, 0, 10)
    b = rect(0, 10, 0, 8)    # IoU(a, b) = 0.8
    c = rect(0, 10, 0, 5)    # IoU(a, c) = 0.5
    d1 = _dump(_cell(a, 0.9, "astro"), _cell(c, 0.3, "astro"))
    d2 = _dump(_cell(b, 0.95, "astro"), _cell(a, 0.5, "cort"))
    out = nms_dumps([d1, d2], {"shsy5y": 0.5, "astro": 0.6, "cort": 0.5})
    # astro by score: b (0.95) kept, a (0.9; IoU 0.8 > 0.6) dropped, c (IoU(b, c) = 50/80 = 0.625) dropped;
    # cort a is another category: kept
    cells = out["images"][0]["cells"]
    assert [(x["score"], x["category"]) for x in cells] == [(0.95, "astro"), (0.5, "cort")]
    assert out["ensemble"] == {"method": "nms", "models": 2, "kept": 2, "suppressed": 2,
                               "iou_thr": {"shsy5y": 0.5, "astro": 0.6, "cort": 0.5}}
    out = nms_dumps([d1, d2], {"shsy5y": 0.5, "astro": 0.7, "cort": 0.5})  # c: 0.625 <= 0.7 kept
    assert [x["score"] for x in out["images"][0]["cells"]] == [0.95, 0.5, 0.3]
    with pytest.raises(SegPCError, match="category"):
        nms_dumps([_dump({**_cell(a, 0.9, "astro"), "category": None}), d2], {"astro": 0.5})


def test_vote_keeps_the_reference_category():
    a, b = rect(0, 10, 0, 10), rect(0, 10, 0, 9)
    out = ensemble_dumps([_dump(_cell(a, 0.9, "cort")), _dump(_cell(b, 0.7, "astro"))], min_iou=0.85)
    (cell,) = out["images"][0]["cells"]
    assert cell["category"] == "cort" and cell["score"] == pytest.approx(0.8)


def test_ensemble_tool_nms(tmp_path):
    from segpc.structures import load_dump, save_dump

    a, b = rect(0, 10, 0, 10), rect(0, 10, 0, 8)
    save_dump(_dump(_cell(a, 0.9, "astro")), tmp_path / "1.json")
    save_dump(_dump(_cell(b, 0.95, "astro")), tmp_path / "2.json")
    tool("tools/ensemble.py", tmp_path / "1.json", tmp_path / "2.json", "--method", "nms",
         "--nms-iou", "astro=0.9", "--out", tmp_path / "e.json")
    assert [c["score"] for c in load_dump(tmp_path / "e.json")["images"][0]["cells"]] == [0.95, 0.9]


def test_registered_metric_scores_postprocessed_predictions(tmp_path):
    import torch
    from mmdet.registry import METRICS

    import segpc.register  # noqa: F401

    a, b = rect(0, 10, 0, 10), rect(12, 20, 0, 10)
    coco = {"images": [{"id": 1, "file_name": "im.png", "height": 20, "width": 30, "cell_type": "astro"}],
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(("shsy5y", "astro", "cort"))],
            "annotations": [{"id": k, "image_id": 1, "category_id": 2, "iscrowd": 0, "segmentation": encode(m)}
                            for k, m in enumerate((a, b), start=1)]}
    (tmp_path / "val.json").write_text(json.dumps(coco))
    metric = METRICS.build(dict(type="SartoriusMetric", _scope_="mmdet", ann_file=str(tmp_path / "val.json"),
                                min_size={"astro": 10}, submission=str(tmp_path / "sub.csv")))
    masks = torch.from_numpy(np.stack([a, rect(0, 6, 0, 10), b]).astype(bool))
    pred = {"labels": torch.tensor([1, 1, 2]), "scores": torch.tensor([0.9, 0.8, 0.3]), "masks": masks}
    metric.process({}, [{"pred_instances": pred, "ori_shape": (20, 30), "img_path": "x/im.png", "img_id": 1}])
    out = metric.compute_metrics(metric.results)
    # image class astro (2 of 3); b scores 0.3 < 0.35: dropped; the 0.8 cell lies inside a: dropped
    # after overlap removal (0 px left); a matches perfectly: TP 1, FN 1 at every threshold
    assert out == {"AP": 0.5, "AP_astro": 0.5}
    assert [r["id"] for r in csv.DictReader(open(tmp_path / "sub.csv"))] == ["im"]
