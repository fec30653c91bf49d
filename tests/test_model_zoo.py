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
    # every class of every box, each mask non-empty (a model after one step is not yet confident)
    cfg.model.test_cfg.rcnn.update(score_thr=0.0, max_per_img=90, mask_thr_binary=0.0)


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
    metric = METRICS.build(dict(cfg.val_evaluator, score_thr=0.0))
    metric.dataset_meta = val_set.metainfo
    metric.process({}, [o.to_dict() for o in out])
    cells = metric.results[0]["cells"]
    assert cells, "cell-class predictions become cells"
    assert metric.results[0]["height"] == 96 and metric.results[0]["width"] == 128
    with_nucleus = [c for c in cells if c["nucleus"] is not None]
    assert with_nucleus, "nucleus predictions are attached to cells"
    for c in with_nucleus:
        nuc, cell = decode(c["nucleus"]), decode(c["cell"])
        assert nuc.sum() > 0 and not np.any(nuc & (1 - cell))

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

