"""Config loading, data-root propagation, CPU launch settings and pretrained backbones."""
import urllib.error

import pytest
import torch.hub

from segpc.apis.config import load_config
from segpc.engine import pretrained
from segpc.engine.launch import replace_norm_type
from segpc.io import SegPCError


def test_data_root_option_moves_every_dataset_and_metric(repo_root, tmp_path):
    cfg = load_config(str(repo_root / "configs/mask_rcnn_resnet50.py"), {"data_root": str(tmp_path)})
    root = f"{tmp_path}/"
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        assert cfg[key].dataset.data_root == root
    assert cfg.val_evaluator.data_root == root and cfg.test_evaluator.data_root == root
    assert cfg.work_dir == "work_dirs/mask_rcnn_resnet50"
    assert cfg.model.roi_head.bbox_head.num_classes == 3
    assert cfg.model.roi_head.bbox_head.reg_class_agnostic is True
    assert cfg.model.rpn_head.anchor_generator.scales == [4, 6, 8, 10, 12]
    assert cfg.default_hooks.checkpoint.save_best == "segpc/mIoU"


def test_missing_config_is_one_line(tmp_path):
    with pytest.raises(SegPCError, match="nope.py: config not found"):
        load_config(str(tmp_path / "nope.py"))


def test_syncbn_becomes_bn_for_cpu_processes():
    cfg = {"backbone": {"norm_cfg": {"type": "SyncBN", "requires_grad": True}},
           "heads": [{"norm_cfg": {"type": "SyncBN"}}], "type": "SyncBN-not-a-norm"}
    replace_norm_type(cfg)
    assert cfg["backbone"]["norm_cfg"]["type"] == "BN" and cfg["heads"][0]["norm_cfg"]["type"] == "BN"
    assert cfg["type"] == "SyncBN-not-a-norm"


def test_pretrained_from_local_dir(tmp_path, monkeypatch):
    (tmp_path / "resnet50-0676ba61.pth").write_bytes(b"weights")
    monkeypatch.setenv(pretrained.ENV, str(tmp_path))
    assert pretrained.resolve("torchvision://resnet50") == str(tmp_path / "resnet50-0676ba61.pth")


def test_pretrained_unreachable_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv(pretrained.ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(SegPCError) as e:
        pretrained.resolve("open-mmlab://resnest50")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("open-mmlab://resnest50: cannot download")
    assert "resnest50_d2-7497a55b.pth" in msg and "init_cfg.checkpoint=PATH" in msg
    assert "init_cfg=None" in msg


def test_pretrained_plain_missing_path():
    with pytest.raises(SegPCError, match="/no/such.pth: pretrained checkpoint not found"):
        pretrained.resolve("/no/such.pth")


def test_checkpoint_getattr_allows_only_history_buffer_methods():
    import os
    import pickle

    from mmengine.logging import HistoryBuffer

    from segpc.engine.checkpoint import history_buffer_getattr

    assert history_buffer_getattr(HistoryBuffer, "mean") is HistoryBuffer.mean
    for obj, name in ((os, "system"), (HistoryBuffer, "__init__"), (HistoryBuffer, "nope")):
        with pytest.raises(pickle.UnpicklingError, match="not allowed"):
            history_buffer_getattr(obj, name)
