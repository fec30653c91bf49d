"""Three-class semantic maps: export (tools/export_semantic.py) and recovery of cells from maps."""
import numpy as np
import pytest

from helpers import tool
from segpc.datasets.semantic import export_semantic, recover_cells, semantic_map
from segpc.io import SegPCError, read_mask, write_image
from segpc.structures import decode


def _split(root, masks_per_image, hw=(6, 8)):
    for name, masks in masks_per_image.items():
        write_image(root / "x" / f"{name}.png", np.zeros((*hw, 3), np.uint8))
        for k, m in enumerate(masks, start=1):
            write_image(root / "y" / f"{name}_{k}.png", m)
    return root


def test_nucleus_wins_then_cytoplasm():
    a = np.array([[20, 20, 40, 0]], np.uint8)
    b = np.array([[40, 0, 20, 20]], np.uint8)
    c = np.array([[0, 7, 0, 0]], np.uint8)  # any value > 0 other than 40 is cytoplasm
    assert semantic_map([a, b, c]).tolist() == [[2, 1, 2, 1]]
    assert semantic_map([], (1, 2)).tolist() == [[0, 0]]


def test_export_writes_one_map_per_image(tmp_path):
    m1 = np.zeros((6, 8), np.uint8)
    m1[1:4, 1:5] = 20
    m1[2, 2] = 40
    m2 = np.zeros((6, 8), np.uint8)
    m2[3:5, 3:7] = 40
    _split(tmp_path / "s", {"1": [m1, m2], "2": []})
    proc = tool("tools/export_semantic.py", tmp_path / "s", tmp_path / "sem", "--no-progress")
    assert "2 maps (2 cells)" in proc.stdout
    assert np.array_equal(read_mask(tmp_path / "sem" / "1.png"), semantic_map([m1, m2]))
    assert not read_mask(tmp_path / "sem" / "2.png").any()
    export_semantic(tmp_path / "s", tmp_path / "sem", progress=False)  # its own maps: replaced


def test_export_size_mismatch_names_the_mask(tmp_path):
    _split(tmp_path / "s", {"1": [np.full((5, 8), 20, np.uint8)]})
    with pytest.raises(SegPCError) as e:
        export_semantic(tmp_path / "s", tmp_path / "sem", progress=False)
    assert e.value.path == str(tmp_path / "s" / "y" / "1_1.png")
    assert not (tmp_path / "sem").exists()


def test_export_refuses_foreign_files(tmp_path):
    _split(tmp_path / "s", {"1": [np.full((6, 8), 20, np.uint8)]})
    (tmp_path / "sem").mkdir()
    (tmp_path / "sem" / "notes.txt").write_text("mine")
    proc = tool("tools/export_semantic.py", tmp_path / "s", tmp_path / "sem", "--no-progress", check=False)
    assert proc.returncode == 2 and str(tmp_path / "sem") in proc.stderr
    assert sorted(p.name for p in (tmp_path / "sem").iterdir()) == ["notes.txt"]


# --------------------------------------------------------------------------- recovery


def _masks(cells):
    return [(decode(c["cell"]).astype(bool), decode(c["nucleus"]).astype(bool)) for c in cells]


def test_touching_cells_split_at_the_nearest_nucleus():
    sem = np.ones((5, 12), np.uint8)
    sem[1:4, 1:3] = 2
    sem[1:4, 9:11] = 2
    cells = recover_cells(sem)
    (c1, n1), (c2, n2) = _masks(cells)
    left = np.zeros((5, 12), bool)
    left[:, :6] = True
    assert np.array_equal(c1, left) and np.array_equal(c2, ~left)
    assert np.array_equal(n1, (sem == 2) & left) and np.array_equal(n2, (sem == 2) & ~left)
    assert cells[0]["bbox"] == [0, 0, 6, 5] and cells[1]["bbox"] == [6, 0, 12, 5]


def test_cytoplasm_follows_the_foreground_not_the_straight_line():
    # a U: the top of the right arm is nearer to the left nucleus as the crow flies (4 px
    # against 5), but along the foreground it is reached from the right nucleus first
    sem = np.zeros((7, 9), np.uint8)
    sem[:, 0:3] = 1
    sem[0:2, 0:3] = 2          # left nucleus, top of the left arm
    sem[:, 6:9] = 1
    sem[5:7, 6:9] = 2          # right nucleus, bottom of the right arm
    sem[6, 3:6] = 1            # the bottom of the U joins the arms
    (c1, _), (c2, _) = _masks(recover_cells(sem))
    assert c2[:, 6:9].all() and c1[0:4, 0:3].all()
    assert (c1 | c2).sum() == (sem > 0).sum() and not (c1 & c2).any()


def test_cytoplasm_without_nucleus_and_small_nuclei():
    sem = np.zeros((6, 14), np.uint8)
    sem[0:5, 0:5] = 1
    sem[1:4, 1:4] = 2          # a cell
    sem[0:3, 8:12] = 1         # cytoplasm alone: no cell
    sem[5, 13] = 2             # a one-pixel nucleus speck, alone
    assert len(recover_cells(sem)) == 2
    cells = recover_cells(sem, min_nucleus_area=2)
    assert len(cells) == 1
    cell, nuc = _masks(cells)[0]
    assert cell.sum() == 25 and nuc.sum() == 9


def test_scores_and_empty_maps():
    sem = np.zeros((4, 8), np.uint8)
    sem[:, 0:3] = 2
    sem[:, 5:8] = 2
    scores = np.zeros((4, 8))
    scores[:, 0:3] = 0.5
    scores[:, 5:8] = 0.9
    cells = recover_cells(sem, scores)
    assert [c["score"] for c in cells] == pytest.approx([0.9, 0.5])
    assert decode(cells[0]["cell"])[:, 5:].all()
    assert recover_cells(np.ones((4, 8), np.uint8)) == []
    assert recover_cells(np.zeros((4, 8), np.uint8)) == []


# --------------------------------------------------------------------------- mmseg metrics


def _sample(name, sem, gt=None):
    import torch

    s = {"img_path": f"x/{name}.png", "ori_shape": sem.shape,
         "pred_sem_seg": {"data": torch.from_numpy(sem[None].astype(np.int64))}}
    if gt is not None:
        s["gt_sem_seg"] = {"data": torch.from_numpy(gt[None].astype(np.int64))}
    return s


def test_semantic_metric_scores_recovered_cells(tmp_path):
    pytest.importorskip("mmseg")
    from segpc.evaluation.semantic_metric import SegPCSemanticMetric
    from segpc.structures import load_dump

    a = np.zeros((6, 8), np.uint8)
    a[0:3, 0:3] = 20
    a[1, 1] = 40
    b = np.zeros((6, 8), np.uint8)
    b[3:6, 5:8] = 20
    b[4, 6] = 40
    c = np.zeros((6, 8), np.uint8)
    c[2:4, 2:4] = 40
    _split(tmp_path / "s", {"1": [a, b], "2": [c]})
    metric = SegPCSemanticMetric(split_dir="s", data_root=str(tmp_path), outfile=str(tmp_path / "p.json"),
                                 submission_dir=str(tmp_path / "sub"))
    metric.process({}, [_sample("1", semantic_map([a, b])), _sample("2", np.zeros((6, 8), np.uint8))])
    res = metric.compute_metrics(metric.results)
    assert res["mIoU"] == pytest.approx(2 / 3) and metric.result.num_gt == 3 and metric.result.num_pred == 2
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["1_1.bmp", "1_2.bmp"]
    assert {np.array_equal(read_mask(tmp_path / "sub" / f), m) for f, m in (("1_1.bmp", a), ("1_2.bmp", b))} == {True}
    dump = load_dump(tmp_path / "p.json")
    assert [(i["name"], i["img_id"], len(i["cells"])) for i in dump["images"]] == [("1", 1, 2), ("2", 2, 0)]


def test_iou_metric_returns_per_class_values():
    pytest.importorskip("mmseg")
    from segpc.evaluation.semantic_metric import SegPCIoUMetric

    gt = np.array([[0, 0, 1, 1, 2, 2]])
    pred = np.array([[0, 1, 1, 1, 2, 0]])
    metric = SegPCIoUMetric(iou_metrics=["mIoU", "mDice"])
    metric.dataset_meta = {"classes": ("background", "cytoplasm", "nucleus")}
    metric.process({}, [_sample("1", pred, gt)])
    res = metric.compute_metrics(metric.results)
    assert res["IoU.background"] == pytest.approx(100 / 3, abs=0.01)   # 1 / 3
    assert res["IoU.cytoplasm"] == pytest.approx(200 / 3, abs=0.01)    # 2 / 3
    assert res["IoU.nucleus"] == 50.0 and res["Dice.nucleus"] == pytest.approx(200 / 3, abs=0.01)
