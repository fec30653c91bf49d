"""Config loading, data-root propagation, CPU launch settings and pretrained backbones; the
configs themselves (keys, pipelines, families, backbones); tools/slurm_train.sh."""
import functools
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


# --------------------------------------------------------------------------- the configs themselves

# Top-level keys a final config may hold: what mmengine's Runner (and its Config) read, mmdet's
# conventional names (its configs define them), and the TTA keys of tools/test.py --tta.
RUNNER_KEYS = {
    "model", "work_dir", "train_dataloader", "val_dataloader", "test_dataloader", "train_cfg",
    "val_cfg", "test_cfg", "auto_scale_lr", "optim_wrapper", "param_scheduler", "val_evaluator",
    "test_evaluator", "default_hooks", "custom_hooks", "data_preprocessor", "load_from", "resume",
    "launcher", "env_cfg", "log_processor", "log_level", "visualizer", "default_scope", "randomness",
    "experiment_name", "model_wrapper_cfg", "find_unused_parameters", "custom_imports",
}
MMDET_KEYS = {"dataset_type", "data_root", "backend_args", "train_pipeline", "test_pipeline",
              "vis_backends", "max_epochs", "tta_model", "tta_pipeline"}
MMSEG_KEYS = {"crop_size", "norm_cfg", "optimizer"}  # what mmseg's own bases define
SEGPC_KEYS = {"tta_flips", "input_size"}  # read by apply_tta and by the bmdeep predictor
ALLOWED_KEYS = RUNNER_KEYS | MMDET_KEYS | MMSEG_KEYS | SEGPC_KEYS
ZOO = [f"{m}_{b}" for m in ("mask_rcnn", "htc", "scnet") for b in ("resnet50", "resnet101", "resnest50", "resnest101")]


@functools.lru_cache(maxsize=None)
def final_config(path: str):
    """``Config.fromfile`` once per file (the tests below only read it)."""
    from mmengine.config import Config

    return Config.fromfile(path)


def all_configs(repo_root):
    return sorted(str(p.relative_to(repo_root)) for p in (repo_root / "configs").rglob("*.py")
                  if "_base_" not in p.parts)


def keys_anywhere(node, key):
    if isinstance(node, dict):
        return (key in node) + sum(keys_anywhere(v, key) for v in node.values())
    if isinstance(node, (list, tuple)):
        return sum(keys_anywhere(v, key) for v in node)
    return 0


def without_defaults(node):
    """Drop ``backend_args=None`` (mmdet's COCO configs spell out the default) and the
    ``_scope_='mmdet'`` mmengine marks values taken from an ``mmdet::`` base with."""
    if isinstance(node, dict):
        return {k: without_defaults(v) for k, v in node.items()
                if (k, v) not in (("backend_args", None), ("_scope_", "mmdet"))}
    if isinstance(node, (list, tuple)):
        return type(node)(without_defaults(v) for v in node)
    return node


def plain(value):
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value.to_dict() if hasattr(value, "to_dict") else value


@pytest.mark.slow
def test_every_config_holds_only_known_keys_and_its_own_pipelines(repo_root):
    """Every runner config (one with a ``model``; configs/bmdeep/two_stage*.py describe a predictor)."""
    names = [n for n in all_configs(repo_root) if "model" in final_config(str(repo_root / n))]
    assert len(names) >= 12 + 4
    for name in names:
        cfg = final_config(str(repo_root / name))
        assert set(cfg.keys()) <= ALLOWED_KEYS, (name, set(cfg.keys()) - ALLOWED_KEYS)
        assert keys_anywhere(cfg._cfg_dict.to_dict(), "_delete_") == 0, name
        # no stale pipeline: the top-level ones are the ones the dataloaders run
        for key, loaders in (("train_pipeline", ["train_dataloader"]),
                             ("test_pipeline", ["val_dataloader", "test_dataloader"])):
            for loader in loaders if key in cfg else []:
                assert without_defaults(plain(cfg[key])) == without_defaults(plain(cfg[loader].dataset.pipeline)), \
                    (name, key, loader)
        if "data_root" in cfg:
            roots = {cfg[k].dataset.data_root for k in ("train_dataloader", "val_dataloader", "test_dataloader")}
            roots |= {cfg[k].data_root for k in ("val_evaluator", "test_evaluator") if "data_root" in cfg[k]}
            assert roots == {cfg.data_root}, name
        if cfg.get("dataset_type") == "SegPCDataset":
            assert cfg.train_dataloader.dataset.type == "SegPCDataset", name
            assert cfg.val_evaluator.type == cfg.test_evaluator.type == "SegPCMetric", name
            assert cfg.custom_imports.imports == ["segpc.register"], name


def test_families_share_the_segpc_settings(repo_root):
    """HTC and SCNet write the SegPC data over mmdet's complete COCO configs (mmdet has no
    model-only base for them): the values must be those of _base_/datasets/segpc_instance.py and
    _base_/default_runtime.py that Mask R-CNN composes."""
    cfgs = {m: final_config(str(repo_root / f"configs/{m}_resnet50.py")) for m in ("mask_rcnn", "htc", "scnet")}
    ref = cfgs["mask_rcnn"]
    for m in ("htc", "scnet"):
        cfg = cfgs[m]
        for key in ("data_root", "test_pipeline", "val_dataloader", "test_dataloader", "val_evaluator",
                    "test_evaluator", "custom_imports", "randomness", "custom_hooks", "auto_scale_lr", "default_hooks",
                    "env_cfg", "log_processor", "visualizer"):
            assert without_defaults(plain(cfg[key])) == without_defaults(plain(ref[key])), (m, key)
        train, ref_train = (without_defaults(c.train_dataloader.to_dict()) for c in (cfg, ref))
        assert train["dataset"].pop("data_prefix") == {"img": "train/x/", "seg": "semantic/train/"}
        ref_train["dataset"].pop("data_prefix")
        assert train["dataset"].pop("pipeline")[1] == {"type": "LoadAnnotations", "with_bbox": True,
                                                       "with_mask": True, "with_seg": True}
        ref_train["dataset"].pop("pipeline")
        assert train == ref_train, m
        # the semantic branch learns background / cell
        assert cfg.model.roi_head.semantic_head.num_classes == 2
    for cfg in cfgs.values():
        assert cfg.model.rpn_head.anchor_generator.scales == [4, 6, 8, 10, 12]
        heads = cfg.model.roi_head.bbox_head
        for h in heads if isinstance(heads, list) else [heads]:
            assert h.num_classes == 3 and h.reg_class_agnostic is True


def test_backbones_are_the_same_in_every_family(repo_root):
    seen = {}
    for name in ZOO:
        cfg = final_config(str(repo_root / f"configs/{name}.py"))
        backbone = name.split("_")[-1]
        resize = [t for t in cfg.train_pipeline if "Resize" in t.type]
        got = without_defaults((cfg.model.backbone.to_dict(), cfg.model.data_preprocessor.mean,
                                cfg.model.data_preprocessor.std, [t.to_dict() for t in resize]))
        assert seen.setdefault(backbone, got) == got, name
    assert seen["resnet101"][0]["depth"] == 101 and seen["resnest101"][0]["depth"] == 101
    assert seen["resnest50"][0]["type"] == "ResNeSt" and seen["resnest101"][0]["stem_channels"] == 128
    assert seen["resnest50"][0]["init_cfg"]["checkpoint"] == "open-mmlab://resnest50"
    assert seen["resnet50"][3] == [{"type": "Resize", "scale": (1333, 800), "keep_ratio": True}]
    assert seen["resnest50"][3] == [{"type": "RandomChoiceResize", "keep_ratio": True,
                                     "scales": [(1333, s) for s in range(640, 801, 32)]}]


def test_a_child_config_edits_the_real_keys(repo_root, tmp_path):
    child = tmp_path / "child.py"
    child.write_text(f"_base_ = '{repo_root}/configs/htc_resnest50.py'\n"
                     "train_dataloader = dict(batch_size=8, dataset=dict(ann_file='annotations/aug.json'))\n"
                     "val_evaluator = dict(score_thr=0.3)\n")
    cfg = load_config(str(child), {"data_root": str(tmp_path / "d")})
    assert cfg.train_dataloader.batch_size == 8
    assert cfg.train_dataloader.dataset.ann_file == "annotations/aug.json"
    assert cfg.train_dataloader.dataset.data_root == f"{tmp_path / 'd'}/"
    assert cfg.val_evaluator.score_thr == 0.3 and cfg.val_evaluator.data_root == f"{tmp_path / 'd'}/"
    assert cfg.train_dataloader.dataset.pipeline[2].type == "RandomChoiceResize"


def test_htc_config_text_is_lean(repo_root):
    text = final_config(str(repo_root / "configs/htc_resnest50.py")).pretty_text
    assert "CocoDataset" not in text and "CocoMetric" not in text and "coco" not in text.lower()
    assert len(text.splitlines()) < 600  # 1010 with segpc's helper keys and mmdet's COCO values


# --------------------------------------------------------------------------- slurm


def test_slurm_train_passes_the_job_to_srun(repo_root, tmp_path):
    import os
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$SRUN_LOG"\n')
    srun.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SRUN_LOG": str(tmp_path / "args"),
           "GPUS": "16", "PYTHON": "python3"}
    cmd = ["bash", "tools/slurm_train.sh", "gpu", "segpc", "configs/htc_resnest50.py", "work_dirs/x",
           "--cfg-options", "train_cfg.max_epochs=24"]
    subprocess.run(cmd, cwd=repo_root, env=env, check=True)
    args = (tmp_path / "args").read_text().splitlines()
    assert args[:8] == ["-p", "gpu", "--job-name=segpc", "--gres=gpu:8", "--ntasks=16", "--ntasks-per-node=8",
                        "--cpus-per-task=5", "--kill-on-bad-exit=1"]
    assert args[8:] == ["python3", "-u", str(repo_root / "tools/train.py"), "configs/htc_resnest50.py",
                        "--work-dir=work_dirs/x", "--launcher=slurm", "--cfg-options", "train_cfg.max_epochs=24"]

    env["GPUS"] = "2"
    subprocess.run(cmd[:6], cwd=repo_root, env=env, check=True)
    args = (tmp_path / "args").read_text().splitlines()
    assert "--gres=gpu:2" in args and "--ntasks=2" in args and "--ntasks-per-node=2" in args
    usage = subprocess.run(cmd[:4], cwd=repo_root, env=env, capture_output=True, text=True)
    assert usage.returncode == 2 and not usage.stdout
