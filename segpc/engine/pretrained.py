"""Pretrained backbones: use a local file when given, and fail in one line when none can be had.

Configs name the standard sources (``torchvision://resnet50``, ``open-mmlab://resnest50``).
mmengine downloads them into torch's hub cache on first use; without network that is a long
stack trace in the middle of model init. Here, before the model is built:

1. ``SEGPC_PRETRAINED_DIR`` (environment): a folder holding the standard file names
   (e.g. ``resnet50-0676ba61.pth``) is used instead of the download;
2. a file already in torch's hub cache is used as is;
3. otherwise the download is tried once; if it fails, one line says how to get the file and
   how to pass it (or how to train from scratch).
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Optional

from segpc.io import SegPCError

ENV = "SEGPC_PRETRAINED_DIR"


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


def resolve(name: str) -> str:
    """A local path for the pretrained checkpoint ``name`` (a path or a standard source)."""
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
