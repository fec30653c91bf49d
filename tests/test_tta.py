"""Flip test-time augmentation (segpc.models.tta): fake detectors with known predictions,
the real TestTimeAug pipeline, the configs, and the fixture through
tools/test.py --tta → tools/ensemble.py → tools/eval_miou.py."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from helpers import printed_miou, synthetic_coco, tool
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from mmdet.structures import DetDataSample
from segpc.io import SegPCError
from segpc.models.tta import (DEFAULT_FLIPS, VIEW_FLIP_KEY, SegPCTTAModel, apply_tta, masks_to_crops, merge_views,
                              tta_pipeline_from)
from segpc.structures import CropMask, flip_boxes

REPO = Path(__file__).resolve().parents[1]
H, W = 24, 32
VIEWS = (None,) + DEFAULT_FLIPS


def np_flip(m, d):
    return {None: m, "horizontal": m[:, ::-1], "vertical": m[::-1], "diagonal": m[::-1, ::-1]}[d].copy()


def box_of(m):
    ys, xs = np.nonzero(m)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def rect(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


L_SHAPE = rect(3, 15, 4, 9) | rect(11, 15, 9, 20)  # asymmetric in both axes


class FakeDetector(torch.nn.Module):
    """Predicts, in every view, instances given in the *original* frame, mirrored into the view's
    frame the way a detector that sees the flipped image would report them (at ori_shape)."""

    def __init__(self, per_view):
        super().__init__()
        self.per_view = per_view  # direction → [(mask in the original frame, score, label)]

    def test_step(self, data):
        out = []
        for ds in data["data_samples"]:
            assert ds.metainfo["flip"] is False  # hidden from the detector (see BrightDetector)
            d = ds.metainfo[VIEW_FLIP_KEY]  # which view this is (a real detector sees the image)
            inst = self.per_view.get(d, [])
            masks = [np_flip(m, d) for m, _, _ in inst]
            pred = InstanceData()
            pred.masks = torch.as_tensor(np.stack(masks) if masks else np.zeros((0, H, W), bool))
            pred.bboxes = torch.tensor([box_of(m) for m in masks], dtype=torch.float32).reshape(-1, 4)
            pred.scores = torch.tensor([s for _, s, _ in inst], dtype=torch.float32)
            pred.labels = torch.tensor([lab for _, _, lab in inst], dtype=torch.long)
            ds.pred_instances = pred
            out.append(ds)
        return out


def views_batch(directions=VIEWS):
    """What pseudo_collate makes of one image through TestTimeAug: one list per view."""
    samples = [[DetDataSample(metainfo=dict(img_id=1, img_path="1.bmp", ori_shape=(H, W), img_shape=(H, W),
                                            flip=d is not None, flip_direction=d))] for d in directions]
    return {"inputs": [[torch.zeros(3, H, W, dtype=torch.uint8)] for _ in directions], "data_samples": samples}


def run_tta(per_view, directions=VIEWS, **kw):
    model = SegPCTTAModel(module=FakeDetector(per_view), **kw)
    (res,) = model.test_step(views_batch(directions))
    return res.pred_instances


def test_flips_map_back_exactly():
    m = CropMask.from_dense(L_SHAPE)
    boxes = np.array([box_of(L_SHAPE)], dtype=np.float64)
    for d in DEFAULT_FLIPS:
        flipped = np_flip(L_SHAPE, d)
        assert not np.array_equal(flipped, L_SHAPE)
        np.testing.assert_array_equal(CropMask.from_dense(flipped).flip(d).to_dense(), L_SHAPE)
        np.testing.assert_array_equal(m.flip(d).to_dense(), flipped)
        np.testing.assert_array_equal(flip_boxes(np.array([box_of(flipped)]), (H, W), d), boxes)
    crops = masks_to_crops(np.stack([L_SHAPE, np.zeros((H, W), bool)]))
    assert crops[0].box == (4, 3, 20, 15) and crops[1].area == 0


def test_same_instance_in_every_view_comes_back_exactly():
    scores = {None: 0.9, "horizontal": 0.8, "vertical": 0.7, "diagonal": 0.6}
    pred = run_tta({d: [(L_SHAPE, s, 2)] for d, s in scores.items()})
    assert len(pred) == 1
    np.testing.assert_array_equal(pred.masks[0].numpy(), L_SHAPE)
    assert pred.bboxes[0].tolist() == [4.0, 3.0, 20.0, 15.0]
    assert pred.scores[0].item() == pytest.approx(0.75)
    assert pred.labels.tolist() == [2]


def test_pixel_vote_over_the_views_that_found_it():
    core, a, b = rect(4, 16, 4, 16), rect(4, 16, 16, 17), rect(16, 17, 4, 16)
    masks = {None: core, "horizontal": core | a, "vertical": core | a, "diagonal": core | b}
    # 4 voters: core 4 votes → in; a 2 votes → tie → the anchor (highest score) decides; b 1 → out
    pred = run_tta({d: [(m, 0.9 if d is None else 0.5, 2)] for d, m in masks.items()})
    np.testing.assert_array_equal(pred.masks[0].numpy(), core)           # anchor: the original view
    pred = run_tta({d: [(m, 0.9 if d == "horizontal" else 0.5, 2)] for d, m in masks.items()})
    np.testing.assert_array_equal(pred.masks[0].numpy(), core | a)       # anchor: the h-flip view
    # boxes: the mean of the views' boxes (in the original frame)
    assert pred.bboxes[0].tolist() == pytest.approx([4, 4, (16 + 17 + 17 + 16) / 4, (16 + 16 + 16 + 17) / 4])
    # 3 voters (the diagonal view misses it): a has 2 of 3 → in
    pred = run_tta({d: [(m, 0.5, 2)] for d, m in masks.items() if d != "diagonal"})
    np.testing.assert_array_equal(pred.masks[0].numpy(), core | a)
    assert pred.scores[0].item() == pytest.approx(0.375)  # (3 x 0.5 + 0) / 4 views


def test_unmatched_kept_classes_separate_and_min_views():
    other = rect(18, 23, 24, 31)
    per_view = {d: [(L_SHAPE, 0.9, 2), (L_SHAPE, 0.4, 0)] for d in VIEWS}
    per_view["vertical"].append((other, 0.3, 2))                # only one view finds it
    pred = run_tta(per_view)
    assert pred.labels.tolist() == [2, 0, 2]                    # same mask, other class: not merged
    assert pred.scores.tolist() == pytest.approx([0.9, 0.4, 0.3 / 4])  # 1 of 4 views: a quarter
    np.testing.assert_array_equal(pred.masks[2].numpy(), other)  # mapped back from the v-flip view
    pred = run_tta(per_view, min_views=2)
    assert pred.labels.tolist() == [2, 0]
    pred = run_tta(per_view, max_per_img=1)
    assert len(pred) == 1


def test_matching_needs_match_iou_and_one_instance_per_view():
    shifted = np.roll(L_SHAPE, 6, axis=1)                       # IoU with L_SHAPE well below 0.5
    pred = run_tta({None: [(L_SHAPE, 0.9, 2), (shifted, 0.8, 2)], "horizontal": [(shifted, 0.7, 2)]},
                   directions=(None, "horizontal"))
    # the h-view's instance joins the original view's `shifted`, not L_SHAPE
    assert pred.scores.tolist() == pytest.approx([0.75, 0.45])  # (0.8 + 0.7) / 2, (0.9 + 0) / 2
    # two instances of one view never merge, however much they overlap
    pred = run_tta({None: [(L_SHAPE, 0.9, 2), (L_SHAPE, 0.8, 2)]}, directions=(None,))
    assert len(pred) == 2


def test_score_is_the_mean_over_all_views():
    """An instance seen by 1 of 4 views keeps a quarter of its score, by 2 half the sum; one seen
    by every view at the same score keeps it. The score threshold then drops the lone ones."""
    lone, pair, every = rect(0, 5, 0, 5), rect(8, 14, 0, 6), rect(16, 22, 20, 30)
    per_view = {d: [(every, 0.8, 2)] for d in VIEWS}
    per_view["vertical"].append((lone, 0.96, 2))
    per_view[None].append((pair, 0.9, 2))
    per_view["diagonal"].append((pair, 0.7, 2))
    pred = run_tta(per_view)
    got = {tuple(box_of(m.numpy())): s for m, s in zip(pred.masks, pred.scores.tolist())}
    assert got == {tuple(box_of(every)): pytest.approx(0.8), tuple(box_of(pair)): pytest.approx(0.4),
                   tuple(box_of(lone)): pytest.approx(0.24)}
    assert pred.scores.tolist() == sorted(pred.scores.tolist(), reverse=True)
    out = merge_views([{"bboxes": np.zeros((1, 4)), "scores": [0.96], "labels": [2],
                        "masks": [CropMask.from_dense(lone)]}] + [{"bboxes": np.zeros((0, 4)), "scores": [],
                                                                   "labels": [], "masks": []}] * 3, (H, W))
    assert out["scores"].tolist() == [0.24] and out["views"].tolist() == [1]


def test_views_without_flip_metainfo_are_a_clear_error():
    model = SegPCTTAModel(module=FakeDetector({None: [(L_SHAPE, 0.9, 2)]}))
    batch = views_batch((None,))
    batch["data_samples"][0][0] = DetDataSample(metainfo=dict(ori_shape=(H, W)))
    with pytest.raises(SegPCError, match="meta_keys of PackDetInputs"):
        model.test_step(batch)


def test_merge_views_on_crops_equals_dense_vote():
    rng = np.random.default_rng(0)
    for _ in range(20):
        masks = [rect(4, 16, 4, 16) ^ (rng.random((H, W)) < 0.08) for _ in range(4)]
        scores = rng.random(4)
        views = [{"bboxes": np.zeros((1, 4)), "scores": [s], "labels": [1], "masks": [CropMask.from_dense(m)]}
                 for m, s in zip(masks, scores)]
        out = merge_views(views, (H, W), match_iou=0.3)
        order = np.argsort(-scores, kind="stable")
        votes = np.sum(masks, axis=0)
        expected = (2 * votes > 4) | ((2 * votes == 4) & masks[order[0]])
        assert len(out["masks"]) == 1 and out["views"].tolist() == [4]
        np.testing.assert_array_equal(out["masks"][0].to_dense(), expected)


# --------------------------------------------------------------------------- pipeline and configs


class BrightDetector(torch.nn.Module):
    """Finds the bright pixels of the (flipped) input image: one cell-class instance."""

    def test_step(self, data):
        out = []
        for img, ds in zip(data["inputs"], data["data_samples"]):
            m = (img[0] > 128).numpy()
            assert m.shape == tuple(ds.metainfo["ori_shape"])  # scale 1: img_shape == ori_shape
            # mmdet's cascade heads un-flip their masks when they see flip=True: hidden from them
            assert ds.metainfo["flip"] is False and ds.metainfo["flip_direction"] is None
            pred = InstanceData(masks=torch.as_tensor(m)[None], scores=torch.tensor([0.9]),
                                labels=torch.tensor([2]), bboxes=torch.tensor([box_of(m)], dtype=torch.float32))
            ds.pred_instances = pred
            out.append(ds)
        return out


def test_real_testtimeaug_pipeline_round_trip(tmp_path):
    from mmcv.transforms import Compose

    init_default_scope("mmdet")
    img = np.full((H, W, 3), 40, np.uint8)
    img[L_SHAPE] = 255
    cv2.imwrite(str(tmp_path / "1.png"), img)
    test_pipeline = [dict(type="LoadImageFromFile"), dict(type="Resize", scale=(W, H), keep_ratio=True),
                     dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor"))]
    pipeline = Compose(tta_pipeline_from(test_pipeline))
    data = pipeline(dict(img_path=str(tmp_path / "1.png"), img_id=1))
    dirs = [(s.flip, s.flip_direction) for s in data["data_samples"]]
    assert dirs == [(False, None), (True, "horizontal"), (True, "vertical"), (True, "diagonal")]
    for d, x in zip(VIEWS, data["inputs"]):  # the views really are the flipped images
        np.testing.assert_array_equal(x[0].numpy() > 128, np_flip(L_SHAPE, d))
    model = SegPCTTAModel(module=BrightDetector())
    (res,) = model.test_step(pseudo_collate([data]))
    assert res.metainfo["flip"] is False
    np.testing.assert_array_equal(res.pred_instances.masks[0].numpy(), L_SHAPE)
    assert res.pred_instances.bboxes[0].tolist() == [4.0, 3.0, 20.0, 15.0]
    assert len(res.pred_instances) == 1


@pytest.mark.slow
def test_apply_tta_derives_the_pipeline_from_the_config():
    micro = Config.fromfile(str(REPO / "configs/fixture/mask_rcnn_micro.py"))
    model_type = micro.model.type
    apply_tta(micro)
    assert micro.model.type == "SegPCTTAModel" and micro.model.module.type == model_type
    tta = micro.test_dataloader.dataset.pipeline[-1]
    assert tta["type"] == "TestTimeAug"
    assert [v.get("direction") for v in tta["transforms"][0]] == [None, *DEFAULT_FLIPS]
    assert micro.test_dataloader.dataset.pipeline[1]["scale"] == (160, 120)  # the config's own Resize

    only = Config.fromfile(str(REPO / "configs/fixture/mask_rcnn_micro.py"))
    only.tta_flips = ["vertical"]
    apply_tta(only)
    assert [v.get("direction") for v in only.test_dataloader.dataset.pipeline[-1]["transforms"][0]] == [None, "vertical"]
    bad = Config.fromfile(str(REPO / "configs/fixture/mask_rcnn_micro.py"))
    bad.tta_flips = ["sideways"]
    with pytest.raises(SegPCError, match="tta_flips must be distinct values"):
        apply_tta(bad)


# --------------------------------------------------------------------------- the real tools


@pytest.mark.slow
def test_fixture_tta_then_ensemble_then_eval(tmp_path):
    from segpc.structures import load_dump

    root = synthetic_coco(tmp_path / "data", {"train": 4, "validation": 3}, seed=3)
    config = "configs/fixture/mask_rcnn_micro.py"
    opts = ["--cfg-options", f"data_root={root}"]
    tool("tools/train.py", config, "--work-dir", tmp_path / "work", *opts,
         "train_cfg.max_iters=2", "train_cfg.val_interval=100")
    ckpt = tmp_path / "work" / "iter_2.pth"

    tta = tmp_path / "tta.json"
    out = tool("tools/test.py", config, ckpt, "--tta", "--out", tta, "--score-thr", "0",
               "--work-dir", tmp_path / "test", *opts)
    miou = printed_miou(out.stdout)
    dump = load_dump(tta)
    assert [img["name"] for img in dump["images"]] == ["5", "6", "7"]
    assert all(img["height"] == 96 and img["width"] == 128 for img in dump["images"])
    ran = Config.fromfile(str(tmp_path / "test" / "mask_rcnn_micro.py"))  # the config the runner saved
    assert ran.model.type == "SegPCTTAModel" and ran.test_dataloader.dataset.pipeline[-1].type == "TestTimeAug"
    plain = tmp_path / "plain.json"
    tool("tools/test.py", config, ckpt, "--out", plain, "--score-thr", "0", "--work-dir", tmp_path / "plain", *opts)
    assert load_dump(plain)["images"] != dump["images"]  # the flipped views changed the predictions

    # the ensemble of a dump with itself is that dump, and scores what tools/test.py reported
    ens, sub = tmp_path / "ens.json", tmp_path / "sub"
    tool("tools/ensemble.py", tta, tta, tta, "--out", ens, "--submission", sub)
    assert load_dump(ens)["images"] == dump["images"]
    n = sum(len(img["cells"]) for img in dump["images"])
    assert n > 0 and len(list(sub.glob("*.bmp"))) == n
    ev = tool("tools/eval_miou.py", root / "validation", sub)
    assert f"mIoU: {miou}" in ev.stdout
