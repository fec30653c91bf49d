"""Each of the twelve model-zoo configs builds, trains one step and predicts cells with nuclei on CPU."""
import numpy as np
import pytest
import torch

from segpc.apis.config import load_config, set_img_scale
from segpc.datasets.convert import write_coco
from segpc.datasets.synthetic import write_splits
from segpc.engine.launch import replace_norm_type
from segpc.structures import decode

pytestmark = pytest.mark.slow
CONFIGS = [f"{m}_{b}" for m in ("mask_rcnn", "htc", "scnet")
           for b in ("resnet50", "resnet101", "resnest50", "resnest101")]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    write_splits(root, {"train": 2, "validation": 1}, seed=5, size=(96, 128), empty_prob=0.0)
    for split in ("train", "validation"):
        write_coco(root / split, root / "annotations" / f"{split}.json",
                   semantic_dir=root / "semantic" / split)
    return root


def shrink(cfg):
    """Small images and few proposals so a step takes seconds; no pretrained download."""
    set_img_scale(cfg, (128, 96))
    cfg.model.backbone.init_cfg = None
    replace_norm_type(cfg.model)
    cfg.model.train_cfg.rpn_proposal.update(nms_pre=100, max_per_img=30)
    rcnn = cfg.model.train_cfg.rcnn
    for stage in rcnn if isinstance(rcnn, list) else [rcnn]:
        stage.sampler.num = 16
    cfg.model.test_cfg.rpn.update(nms_pre=100, max_per_img=30)
    # every class of every box (a model after one step is not yet confident); masks at mmdet's 0.5
    cfg.model.test_cfg.rcnn.update(score_thr=0.0, max_per_img=90)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_trains_one_step_and_predicts_cells(name, repo_root, tiny_root):
    from mmdet.registry import DATASETS, METRICS, MODELS
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    cfg = load_config(str(repo_root / "configs" / f"{name}.py"), {"data_root": str(tiny_root)})
    shrink(cfg)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    # Predict before training: one SGD step from scratch can leave no box above zero.
    model.eval()
    val_set = DATASETS.build(cfg.val_dataloader.dataset)
    with torch.no_grad():
        out = model.test_step(pseudo_collate([val_set[0]]))
    assert torch.isfinite(out[0].pred_instances.scores).all()
    pred = out[0].pred_instances
    labels, scores, masks = (pred[k].numpy() for k in ("labels", "scores", "masks"))
    assert masks.shape[1:] == (96, 128), "masks at the image's own size"
    metric = METRICS.build(dict(cfg.val_evaluator, score_thr=0.0))
    metric.dataset_meta = val_set.metainfo
    metric.process({}, [o.to_dict() for o in out])
    assert metric.results[0]["height"] == 96 and metric.results[0]["width"] == 128
    # Every cell-class prediction with pixels becomes a cell with exactly its mask and score; a
    # nucleus, if any, is one nucleus-class prediction clipped to the cell.
    classes = list(val_set.metainfo["classes"])
    cell_idx = [i for i in np.flatnonzero(labels == classes.index("cell")) if masks[i].any()]
    nuclei = masks[labels == classes.index("nucleus")]
    cells = metric.results[0]["cells"]
    assert cell_idx and len(cells) == len(cell_idx)
    for c in cells:
        cell = decode(c["cell"]).astype(bool)
        (i,) = [i for i in cell_idx if np.array_equal(masks[i], cell)]
        assert c["score"] == pytest.approx(float(scores[i]))
        if c["nucleus"] is not None:
            nuc = decode(c["nucleus"]).astype(bool)
            assert nuc.any() and any(np.array_equal(n & cell, nuc) for n in nuclei)
    assert any(c["nucleus"] is not None for c in cells), "nucleus predictions are attached to cells"

    train_set = DATASETS.build(cfg.train_dataloader.dataset)
    batch = pseudo_collate([train_set[0], train_set[1]])
    semantic = name.startswith(("htc", "scnet"))
    assert bool(cfg.model.roi_head.get("semantic_head")) == semantic
    if semantic:  # the semantic branch learns the converter's whole-cell map
        sem = batch["data_samples"][0].gt_sem_seg.sem_seg
        assert set(sem.unique().tolist()) <= {0, 1, 255} and sem.max() == 1
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    losses = model.train_step(batch, optim)
    assert all(torch.isfinite(v).all() for k, v in losses.items() if "loss" in k)

