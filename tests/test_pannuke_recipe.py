"""The PanNuke recipe: schedule, backbone unfreezing, metric pieces, and (slow) the fixture through
import → train (both phases) → test → bPQ/mPQ/mAP → eval_pq."""
import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

from helpers import tool
from segpc.datasets.pannuke import convert_fold, load_fold, write_synthetic_folds
from segpc.evaluation.pq import evaluate

RECIPE = "configs/pannuke/mask_rcnn_r101_fpn_heads_then_all.py"
FIXTURE = "configs/fixture/pannuke_mask_rcnn_micro.py"


def _lrs(cfg, epochs):
    """The lr of every epoch under the config's param schedulers (stepped per epoch as mmengine does)."""
    import torch
    from mmengine.registry import PARAM_SCHEDULERS

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optim_wrapper.optimizer.lr)
    scheds = [PARAM_SCHEDULERS.build(dict(s), default_args=dict(optimizer=opt)) for s in cfg.param_scheduler]
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        for s in scheds:
            s.step()
    return np.array(out)


@pytest.mark.slow
def test_recipe_schedule_and_settings():
    from mmengine.config import Config

    cfg = Config.fromfile(RECIPE)
    lr = _lrs(cfg, cfg.train_cfg.max_epochs)
    assert len(lr) == 50
    assert lr[0] == pytest.approx(1e-3, rel=1e-12) and lr[19] == pytest.approx(9.9e-5, rel=1e-9)
    assert lr[20] == pytest.approx(1e-4, rel=1e-9) and lr[49] == pytest.approx(3.33e-6, rel=1e-9)
    assert np.allclose(np.diff(lr[:20]), (9.9e-5 - 1e-3) / 19, rtol=1e-6)   # linear, phase 1
    assert np.allclose(np.diff(lr[20:]), (3.33e-6 - 1e-4) / 29, rtol=1e-6)  # linear, phase 2
    assert cfg.custom_hooks == [dict(type="UnfreezeBackboneHook", epoch=20)]
    assert cfg.model.backbone.frozen_stages == 4 and cfg.model.backbone.depth == 101
    opt = cfg.optim_wrapper
    assert (opt.optimizer.type, opt.optimizer.momentum, opt.optimizer.weight_decay) == ("SGD", 0.9, 1e-4)
    assert opt.clip_grad.max_norm == 5.0
    assert cfg.default_hooks.checkpoint.save_best == "pannuke/bPQ"
    assert cfg.load_from.endswith("mask_rcnn_r101_fpn_1x_coco_20200204-1efe0ed5.pth")
    neo = Config.fromfile(RECIPE.replace(".py", "_neoplastic.py"))
    assert neo.model.roi_head.bbox_head.num_classes == neo.model.roi_head.mask_head.num_classes == 1
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        assert neo[key].dataset.metainfo.classes == ("Neoplastic",)
        assert neo[key].dataset.data_root == neo.val_evaluator.data_root == "data/pannuke_neoplastic/"
    assert neo.test_evaluator.data_root == "data/pannuke_neoplastic/"
    fixture = Config.fromfile(FIXTURE)
    lr = _lrs(fixture, fixture.train_cfg.max_epochs)
    assert np.allclose(lr, [1e-3, 9.9e-5, 1e-4, 3.33e-6], rtol=1e-9)
    assert fixture.custom_hooks[0]["epoch"] == 2


def test_unfreeze_backbone_hook():
    import segpc.register  # noqa: F401
    from mmdet.models.backbones import ResNet
    from segpc.engine.hooks import UnfreezeBackboneHook

    backbone = ResNet(depth=18, base_channels=4, frozen_stages=4, norm_eval=True)
    model = SimpleNamespace(backbone=backbone, train=lambda: backbone.train())
    backbone.train()
    assert not any(p.requires_grad for p in backbone.parameters())
    runner = SimpleNamespace(model=model, epoch=1, logger=SimpleNamespace(info=lambda msg: None),
                             cfg={})
    hook = UnfreezeBackboneHook(epoch=2)
    hook.before_train_epoch(runner)
    assert not any(p.requires_grad for p in backbone.parameters())
    runner.epoch = 3  # e.g. resumed past the phase boundary
    hook.before_train_epoch(runner)
    assert all(p.requires_grad for p in backbone.parameters())
    assert backbone.layer1.training and backbone.frozen_stages == -1
    assert not backbone.bn1.training  # norm_eval keeps BN statistics frozen


def test_instance_maps_resolve_overlaps_by_score():
    from segpc.evaluation.pannuke_metric import instance_maps

    masks = np.zeros((3, 6, 6), bool)
    masks[0, 0:4, 0:4] = True   # score 0.6, class 1
    masks[1, 2:6, 2:6] = True   # score 0.9, class 0: wins the overlap
    masks[2, 3:5, 3:5] = True   # score 0.5, inside the winner: disappears
    maps = instance_maps(masks, np.array([1, 0, 1]), np.array([0.6, 0.9, 0.5]), num_classes=2)
    assert (maps[2:6, 2:6, 0] == 1).all() and maps[..., 0].sum() == 16
    assert (maps[..., 1] == 2).sum() == 16 - 4 and set(np.unique(maps[..., 1])) == {0, 2}


@pytest.mark.slow
def test_recipe_without_coco_weights_is_one_line(tmp_path, repo_root):
    if (repo_root / "checkpoints" / "mask_rcnn_r101_fpn_1x_coco_20200204-1efe0ed5.pth").exists():
        pytest.skip("the COCO weights are present: the recipe would train")
    write_synthetic_folds(tmp_path / "raw", num=1, folds=3, size=32, max_nuclei=3, progress=False)
    for k in (1, 2, 3):
        convert_fold(tmp_path / "raw" / f"Fold {k}", tmp_path / f"fold{k}", progress=False)
    proc = tool("tools/train.py", RECIPE, "--work-dir", tmp_path / "w",
                "--cfg-options", f"data_root={tmp_path}", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: checkpoints/mask_rcnn_r101_fpn_1x_coco_20200204-1efe0ed5.pth: ")
    from segpc.apis.train import train
    from segpc.io import SegPCError

    with pytest.raises(SegPCError, match="convert_pannuke.py") as e:  # no data: how to get it
        train(RECIPE, work_dir=str(tmp_path / "w"), cfg_options={"data_root": str(tmp_path / "nowhere")})
    assert e.value.path == f"{tmp_path}/nowhere/fold1/annotations.json"


@pytest.mark.slow
def test_fixture_import_train_both_phases_test_eval(tmp_path):
    import torch

    raw, root, work = tmp_path / "raw", tmp_path / "pannuke", tmp_path / "work"
    tool("tools/make_synthetic_pannuke.py", raw, "--num", "3", "--size", "64", "--max-nuclei", "12", "--seed", "4")
    for k in (1, 2, 3):
        tool("tools/convert_pannuke.py", raw / f"Fold {k}", root / f"fold{k}", "--no-progress")
    opts = ["--cfg-options", f"data_root={root}"]
    tool("tools/train.py", FIXTURE, "--work-dir", work, *opts)
    log = "\n".join(p.read_text() for p in work.glob("*/*.log"))
    assert "UnfreezeBackboneHook: epoch 2: backbone trainable" in log
    for key in ("pannuke/bPQ", "pannuke/mPQ", "pannuke/PQ_Neoplastic", "pannuke/segm_mAP"):
        assert key in log, key
    assert list(work.glob("best_pannuke_bPQ_epoch_*.pth"))
    # Phase 1 leaves the backbone as it was, phase 2 trains it; the heads train throughout.
    ck = {e: torch.load(work / f"epoch_{e}.pth", map_location="cpu", weights_only=False)["state_dict"]
          for e in (1, 2, 3, 4)}
    def changed(a, b, prefix):
        return [k for k in ck[a] if k.startswith(prefix) and not torch.equal(ck[a][k], ck[b][k])]

    assert not changed(1, 2, "backbone.")  # weights and BN statistics
    assert any(k.endswith("conv1.weight") for k in changed(2, 3, "backbone."))
    assert "roi_head.mask_head.conv_logits.weight" in changed(1, 2, "roi_head.")
    lrs = dict(re.findall(r"Epoch\(train\)\s+\[(\d+)\]\[\s*\d+/\d+\].*?\blr: ([0-9.e+-]+)", log))
    assert np.allclose([float(lrs[e]) for e in "1234"], [1e-3, 9.9e-5, 1e-4, 3.33e-6], rtol=1e-3), lrs

    pred = tmp_path / "pred.npy"
    out = tool("tools/test.py", FIXTURE, work / "epoch_4.pth", "--out", pred, "--score-thr", "0.05", *opts)
    bpq = re.search(r"^bPQ: ([0-9.]+|nan)$", out.stdout, re.M).group(1)
    mpq = re.search(r"^mPQ: ([0-9.]+|nan)$", out.stdout, re.M).group(1)
    arr = np.load(pred)
    assert arr.shape == (3, 64, 64, 6) and arr.dtype == np.uint16
    assert (arr[..., 5] == (arr[..., :5].max(-1) == 0)).all()
    fold3 = raw / "Fold 3"
    js = tmp_path / "pq.json"
    ev = tool("tools/eval_pq.py", fold3 / "masks" / "fold3" / "masks.npy", pred,
              fold3 / "images" / "fold3" / "types.npy", "--json", js)
    assert f"bPQ: {bpq}" in ev.stdout and f"mPQ: {mpq}" in ev.stdout
    # and the same as scoring the arrays directly
    f = load_fold(fold3)
    assert json.loads(js.read_text())["num_images"] == 3
    direct = evaluate(f.masks, arr, f.types)
    assert f"{direct.bPQ:.6f}" == bpq


def test_pannuke_metric_matches_official_code(tmp_path):
    """PanNukeMetric on predictions made from perturbed ground truth: bPQ/mPQ as the official code on
    the same predictions; its .npy output holds exactly those predictions; COCO mAP is reported."""
    import torch
    import segpc.register  # noqa: F401
    from pannuke_official import official_metrics
    from pannuke_synthetic import perturb
    from segpc.evaluation.pannuke_metric import PanNukeMetric
    from segpc.evaluation.pq import CLASSES

    write_synthetic_folds(tmp_path / "raw", num=6, folds=1, seed=2, size=48, max_nuclei=10, progress=False)
    convert_fold(tmp_path / "raw" / "Fold 1", tmp_path / "fold1", progress=False)
    fold = load_fold(tmp_path / "raw" / "Fold 1")
    metric = PanNukeMetric(ann_file="fold1/annotations.json", data_root=str(tmp_path),
                           outfile=str(tmp_path / "pred.npy"), score_thr=0.5)
    metric.dataset_meta = {"classes": CLASSES}
    rng = np.random.default_rng(0)
    expected = np.zeros(fold.masks.shape)
    for i in range(len(fold)):
        expected[i] = perturb(np.asarray(fold.masks[i]), rng)
        masks, labels, scores = [], [], []
        for c in range(5):
            for v in set(np.unique(expected[i, ..., c])) - {0}:
                masks.append(expected[i, ..., c] == v)
                labels.append(c)
                scores.append(rng.uniform(0.6, 1.0))
        if masks:  # a lower-scoring duplicate of an instance: loses all its pixels, disappears
            masks.append(masks[0].copy())
            labels.append((labels[0] + 1) % 5)
            scores.append(0.55)
        masks.append(np.ones((48, 48), bool))  # below score_thr: not an instance for PQ
        labels.append(0)
        scores.append(0.3)
        pred = {"masks": torch.as_tensor(np.array(masks)), "labels": torch.as_tensor(labels),
                "scores": torch.as_tensor(scores, dtype=torch.float32),
                "bboxes": torch.tensor([[0, 0, 48, 48]] * len(masks), dtype=torch.float32)}
        metric.process({}, [{"pred_instances": pred, "img_id": i + 1, "ori_shape": (48, 48)}])
    out = metric.evaluate(len(fold))
    official = official_metrics(np.asarray(fold.masks), expected, fold.types)
    assert out["pannuke/bPQ"] == pytest.approx(official["bPQ"], abs=1e-6)
    assert out["pannuke/mPQ"] == pytest.approx(official["mPQ"], abs=1e-6)
    assert out["pannuke/PQ_Neoplastic"] == pytest.approx(official["Neoplastic"], abs=1e-6)
    assert 0.2 < out["pannuke/bPQ"] < 1 and "pannuke/segm_mAP" in out
    written = np.load(tmp_path / "pred.npy")
    assert written.shape == (6, 48, 48, 6)
    for i in range(6):  # the same instances (ids renumbered)
        for c in range(5):
            a, b = written[i, ..., c], expected[i, ..., c]
            pairs = set(zip(a[(a > 0) | (b > 0)].tolist(), b[(a > 0) | (b > 0)].tolist()))
            assert len(pairs) == len({p[0] for p in pairs}) == len({p[1] for p in pairs})
            assert all(x > 0 and y > 0 for x, y in pairs)


@pytest.mark.slow
def test_unfreeze_backbone_hook_rewraps_ddp(repo_root):
    """Two CPU processes (gloo): gradients of the unfrozen backbone are averaged across them only
    because the hook wraps the model in DDP again (the wrapper built before does not)."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:  # a free port from the OS, not one other test runs may pick
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
         f"--master_port={port}", "tests/dist_unfreeze_check.py"],
        cwd=repo_root, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "synced True" in proc.stdout and "control False" in proc.stdout, proc.stdout
