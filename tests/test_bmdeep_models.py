"""The bmdeep networks: configs build, the crop data set, one training step of each network and
the two-stage path end to end on the synthetic fixture (slow)."""
import json
from pathlib import Path

import numpy as np
import pytest

from helpers import printed_miou, synthetic_coco, tool

CONFIGS = ["nucleus_unet", "cytoplasm_s050", "cytoplasm_s175", "cytoplasm_s260", "cytoplasm_s300",
           "fixture/nucleus_unet_tiny", "fixture/cytoplasm_tiny"]


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory) -> Path:
    return synthetic_coco(tmp_path_factory.mktemp("bmdeep"), {"train": 3, "validation": 2}, seed=11, size=(96, 128))


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_configs_build(name, fixture_root):
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS, MODELS

    from segpc.apis.config import load_config
    from segpc.models.bmdeep_head import RegionalAttentionASPPHead

    cfg = load_config(f"configs/bmdeep/{name}.py", {"data_root": str(fixture_root)})
    init_default_scope("mmseg")
    model = MODELS.build(cfg.model)
    ds = DATASETS.build(cfg.train_dataloader.dataset)
    sample = ds[0]
    if "cytoplasm" in name:
        assert isinstance(model.decode_head, RegionalAttentionASPPHead)
        assert model.backbone.stem[0].in_channels == 4
        assert sample["inputs"].shape == (4, cfg.crop_size, cfg.crop_size)
        scale = {"cytoplasm_s050": 0.5, "cytoplasm_s260": 2.6, "cytoplasm_s300": 3.0}.get(name.split("/")[-1], 1.75)
        assert ds.scale == scale
    else:
        assert sample["inputs"].shape == (3,) + tuple(cfg.input_size)
    assert set(np.unique(sample["data_samples"].gt_sem_seg.data.numpy())) <= {0, 1}


def test_crop_dataset_one_sample_per_cell_with_this_nucleus(fixture_root):
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    from segpc.datasets.crop_dataset import coco_cells
    from segpc.structures import CropMask

    init_default_scope("mmseg")
    ann = fixture_root / "annotations" / "train.json"
    cells = coco_cells(str(ann))
    n = sum(1 for _, cs in cells for c in cs if c["nucleus"] is not None and c["cell"] is not None)
    spec = dict(type="SegPCCropDataset", scale=3.0, crop_size=256, ann_file=str(ann),
                data_prefix=dict(img_path=str(fixture_root / "train" / "x")),
                pipeline=[dict(type="LoadSegPCCrop"), dict(type="PackSegInputs")])
    ds = DATASETS.build(spec)
    assert len(ds) == n > 1
    img, first = next((i, c) for i, cs in cells for c in cs if c["nucleus"] is not None and c["cell"] is not None)
    x = ds[0]["inputs"].numpy()
    nucleus = CropMask.from_rle(first["nucleus"], size=(img["height"], img["width"]))
    assert (x[3] == 255).sum() == nucleus.area  # padded crop (smaller than 256): the nucleus, 1:1
    assert ds[0]["data_samples"].gt_sem_seg.data.sum() >= nucleus.area
    again = DATASETS.build(spec)  # the same samples on every build
    assert np.array_equal(again[len(ds) - 1]["inputs"].numpy(), ds[len(ds) - 1]["inputs"].numpy())


def test_nucleus_map_at_the_image_size_after_a_test_resize(fixture_root):
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    from segpc.datasets.crop_dataset import coco_cells
    from segpc.structures import CropMask

    init_default_scope("mmseg")
    ann = fixture_root / "annotations" / "validation.json"
    ds = DATASETS.build(dict(type="SegPCNucleusDataset", ann_file=str(ann),
                             data_prefix=dict(img_path=str(fixture_root / "validation" / "x")),
                             pipeline=[dict(type="LoadImageFromFile"), dict(type="Resize", scale=(64, 48)),
                                       dict(type="LoadSegPCNucleusMap"), dict(type="PackSegInputs")]))
    img, cells = coco_cells(str(ann))[0]
    sample = ds[0]
    assert sample["inputs"].shape == (3, 48, 64)
    expected = sum(CropMask.from_rle(c["nucleus"], size=(img["height"], img["width"])).to_dense()
                   for c in cells if c["nucleus"] is not None) > 0
    np.testing.assert_array_equal(sample["data_samples"].gt_sem_seg.data[0].numpy(), expected)


def test_crop_dataset_refuses_coco_without_cell_index(tmp_path):
    from segpc.datasets.crop_dataset import coco_cells
    from segpc.io import SegPCError

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [{"id": 1, "file_name": "1.bmp", "height": 4, "width": 4}],
                               "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": []}]}))
    with pytest.raises(SegPCError) as e:
        coco_cells(str(bad))
    assert e.value.path == str(bad)


@pytest.mark.slow
def test_train_both_stages_predict_and_score(tmp_path_factory, tmp_path):
    """Training of each network (tools/train.py: the nucleus U-Net for its 40 iterations, one
    step of the cytoplasm network), the two-stage prediction (tools/predict_bmdeep.py) and its
    score (tools/eval_miou.py, tools/bmdeep_scores.py)."""
    root = synthetic_coco(tmp_path_factory.mktemp("bmdeep8"), {"train": 8, "validation": 2}, seed=5, size=(96, 128))
    ckpt = {}
    for name, iters in (("nucleus_unet_tiny", 40), ("cytoplasm_tiny", 1)):
        work = tmp_path / name
        tool("tools/train.py", f"configs/bmdeep/fixture/{name}.py", "--work-dir", work, "--cfg-options",
             f"data_root={root}", f"train_cfg.max_iters={iters}", f"train_cfg.val_interval={iters}",
             f"default_hooks.checkpoint.interval={iters}")
        ckpt[name] = work / f"iter_{iters}.pth"
        assert ckpt[name].is_file()
    out = tmp_path / "pred"
    c = str(ckpt["cytoplasm_tiny"])
    tool("tools/predict_bmdeep.py", "configs/bmdeep/fixture/two_stage_tiny.py", root / "validation" / "x",
         out, "--nucleus", ckpt["nucleus_unet_tiny"], "--cytoplasm", f"1.75={c}", f"3.0={c}",
         "--aggregate", "select", "--candidates", tmp_path / "cand.json")
    dump = json.loads((out / "predictions.json").read_text())
    names = sorted(p.stem for p in (root / "validation" / "x").iterdir())
    assert sorted(i["name"] for i in dump["images"]) == names and dump["bmdeep"]["scales"] == [1.75, 3.0]
    n_cells = sum(len(i["cells"]) for i in dump["images"])  # select: one cell per nucleus found
    assert n_cells > 0 and len(list((out / "submission").glob("*.bmp"))) == n_cells
    res = tool("tools/eval_miou.py", root / "validation", out / "submission", "--json", tmp_path / "s.json")
    score = json.loads((tmp_path / "s.json").read_text())
    assert 0.0 < float(printed_miou(res.stdout)) <= 1.0 and score["num_pred"] == n_cells
    # the candidates: every scale holds one cell per nucleus; re-aggregated by select, the same score
    tool("tools/bmdeep_scores.py", root / "validation", tmp_path / "cand.json", "--json", tmp_path / "c.json")
    scores = json.loads((tmp_path / "c.json").read_text())
    assert scores["scale 1.75"]["num_pred"] == scores["scale 3"]["num_pred"] == n_cells
    assert scores["select"]["mIoU"] == pytest.approx(score["mIoU"])
    # a scale of the spec without its checkpoint: exit 2, the spec named
    bad = tool("tools/predict_bmdeep.py", "configs/bmdeep/fixture/two_stage_tiny.py", root / "validation" / "x",
               tmp_path / "pred2", "--nucleus", ckpt["nucleus_unet_tiny"], "--cytoplasm", f"1.75={c}", check=False)
    assert bad.returncode == 2 and "two_stage_tiny.py" in bad.stderr


@pytest.mark.parametrize("spec", ["bmdeep/two_stage", "bmdeep/fixture/two_stage_tiny", "cpu/bmdeep/two_stage_real512",
                                  "cpu/bmdeep/two_stage_real512_nuc045"])
def test_two_stage_specs_name_existing_configs(spec):
    from mmengine.config import Config

    path = Path("configs") / f"{spec}.py"
    s = Config.fromfile(str(path))
    configs = [s.nucleus["config"]] + [c["config"] for c in s.cytoplasm]
    assert all((path.parent / c).is_file() for c in configs)
    assert s.aggregate in ("filter", "select") and all(len(c["range"]) == 2 for c in s.cytoplasm)
