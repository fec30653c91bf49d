"""Bad input ends in one line naming the file (segpc.io.SegPCError → exit 2), never a traceback."""
import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from helpers import load_script
from segpc.io import SegPCError


def _raise_bad(path):
    raise SegPCError(path, "cannot read image (missing, corrupt or unsupported format)")


def test_segpc_error_pickles():
    for e in (SegPCError("a/b.png", "broken"), SegPCError(None, "no path")):
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is SegPCError and (back.path, back.problem, str(back)) == (e.path, e.problem, str(e))


def test_segpc_error_raised_in_a_worker_process_arrives_whole():
    with ProcessPoolExecutor(1) as pool:
        with pytest.raises(SegPCError) as e:
            pool.submit(_raise_bad, "x/1.jpg").result()
    assert e.value.path == "x/1.jpg" and str(e.value).startswith("x/1.jpg: cannot read image")


class _BadDataset:
    def __len__(self):
        return 2

    def __getitem__(self, i):
        _raise_bad(f"x/{i}.jpg")


def test_segpc_error_raised_in_a_dataloader_worker_stays_one_line():
    from torch.utils.data import DataLoader

    with pytest.raises(SegPCError) as e:
        next(iter(DataLoader(_BadDataset(), num_workers=1)))
    assert str(e.value) == "x/0.jpg: cannot read image (missing, corrupt or unsupported format)"


@pytest.mark.slow
@pytest.mark.parametrize("error, reason", [
    ("http", "HTTP Error 403: Forbidden"),
    ("ssl", "CERTIFICATE_VERIFY_FAILED"),
    ("proxy", "407 Proxy Authentication Required"),
])
def test_pretrained_download_error_keeps_the_reason(tmp_path, monkeypatch, error, reason):
    import ssl
    import urllib.error

    import torch.hub

    from segpc.engine import pretrained

    url = "https://download.pytorch.org/models/resnet50-0676ba61.pth"
    errors = {
        "http": urllib.error.HTTPError(url, 403, "Forbidden", None, None),
        "ssl": urllib.error.URLError(ssl.SSLCertVerificationError(
            1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate")),
        "proxy": urllib.error.URLError(OSError("Tunnel connection failed: 407 Proxy Authentication Required")),
    }

    def fail(*args, **kwargs):
        raise errors[error]

    monkeypatch.delenv(pretrained.ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fail)
    with pytest.raises(SegPCError) as e:
        pretrained.resolve("torchvision://resnet50")
    assert e.value.path == "torchvision://resnet50" and "\n" not in str(e.value)
    assert reason in e.value.problem and url in e.value.problem


def test_demo_overlays_name_a_missing_image_and_take_odd_names(tmp_path):
    import cv2
    import numpy as np

    from helpers import cell, rect
    from segpc.apis.demo import write_overlays
    from segpc.structures import make_dump

    split = tmp_path / "split"
    (split / "x").mkdir(parents=True)
    (split / "y").mkdir()
    names = ["a[1]", "a[1]_b"]  # glob characters; one name is the other's prefix
    for name in names:
        mask = np.zeros((40, 60), np.uint8)
        mask[2:12, 2:12] = 20
        cv2.imwrite(str(split / "y" / f"{name}_1.bmp"), mask)
    cells = [cell(rect(2, 12, 2, 12))]
    dump = make_dump([{"name": n, "img_id": i, "height": 40, "width": 60, "cells": cells}
                      for i, n in enumerate(names)])
    with pytest.raises(SegPCError) as e:
        write_overlays(dump, str(split), str(tmp_path))
    assert e.value.path == str(split / "x") and "a[1]_1.bmp" in e.value.problem
    for name in names:
        cv2.imwrite(str(split / "x" / f"{name}.png"), np.full((40, 60, 3), 128, np.uint8))
    written = write_overlays(dump, str(split), str(tmp_path))
    assert written == [str(tmp_path / f"overlay_{n}.png") for n in names]


# --------------------------------------------------------------------------- checkpoints

REPO = Path(__file__).resolve().parents[1]
MICRO = "configs/fixture/mask_rcnn_micro.py"


def load_tool(name):
    return load_script(f"tools/{name}.py").main


@pytest.fixture
def bad_checkpoints(tmp_path):
    """A good checkpoint, and truncated, corrupt and text files posing as checkpoints."""
    import torch

    good = tmp_path / "good.pth"
    torch.save({"meta": {}, "state_dict": {"w": torch.arange(4096.0)}}, good)
    data = good.read_bytes()
    bad = {"truncated": data[: len(data) // 2], "text": b"this is not a checkpoint\n"}
    corrupt = bytearray(data)
    i = data.index(b"data/0") + 200  # inside the tensor's bytes
    corrupt[i:i + 8] = b"\xff" * 8
    bad["corrupt"] = bytes(corrupt)
    paths = {}
    for name, content in bad.items():
        paths[name] = tmp_path / f"{name}.pth"
        paths[name].write_bytes(content)
    return good, paths


def test_check_checkpoint(bad_checkpoints):
    from segpc.engine.checkpoint import check_checkpoint

    good, bad = bad_checkpoints
    check_checkpoint(good)
    for path in bad.values():
        with pytest.raises(SegPCError) as e:
            check_checkpoint(path)
        assert e.value.path == str(path)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["truncated", "corrupt", "text"])
def test_tools_name_a_bad_checkpoint(tmp_path, bad_checkpoints, capsys, kind):
    from helpers import synthetic_coco
    from segpc.cli import run

    ckpt = bad_checkpoints[1][kind]
    root = synthetic_coco(tmp_path / "data", {"train": 1, "validation": 1}, seed=0, size=(64, 96))
    opts = ["--cfg-options", f"data_root={root}"]
    calls = [
        ("test", [MICRO, str(ckpt), "--work-dir", str(tmp_path / "w"), *opts]),
        ("predict", [MICRO, str(ckpt), str(root / "validation" / "x"), str(tmp_path / "out")]),
        ("train", [MICRO, "--resume", str(ckpt), "--work-dir", str(tmp_path / "w"), *opts]),
    ]
    for name, argv in calls:
        assert run(load_tool(name), argv) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {ckpt}: ") and "\n" not in err, (name, err)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- configs and launch


def test_missing_semantic_maps_named_with_the_command_that_writes_them(tmp_path):
    from helpers import synthetic_coco
    from segpc.datasets.convert import write_coco
    from segpc.datasets.segpc_dataset import SegPCDataset

    root = synthetic_coco(tmp_path / "d", {"train": 2}, seed=0, size=(64, 96))
    cfg = dict(data_root=str(root), ann_file="annotations/train.json", pipeline=[],
               data_prefix=dict(img="train/x/", seg="semantic/train/"))
    with pytest.raises(SegPCError) as e:
        SegPCDataset(**cfg)
    assert e.value.path.rstrip("/") == str(root / "semantic" / "train")
    assert f"tools/convert_segpc.py {root / 'train'} {root / 'annotations' / 'train.json'} --semantic-dir" \
        in e.value.problem
    write_coco(root / "train", root / "annotations" / "train.json", semantic_dir=root / "semantic" / "train",
               progress=False)  # what the message says to run
    assert len(SegPCDataset(**cfg)) == 2
    (root / "semantic" / "train" / "2.png").unlink()
    with pytest.raises(SegPCError) as e:
        SegPCDataset(**cfg)
    assert e.value.path == str(root / "semantic" / "train" / "2.png")


def test_launcher_needing_cuda_is_one_line_on_cpu():
    import torch
    from mmengine.config import Config

    from segpc.engine.launch import setup_launcher

    if torch.cuda.is_available():
        pytest.skip("CUDA present: slurm/mpi launch is mmengine's own")
    for launcher in ("slurm", "mpi"):
        with pytest.raises(SegPCError, match=f"--launcher {launcher} needs CUDA"):
            setup_launcher(Config(dict(model=dict(type="MaskRCNN"))), launcher)


def test_tta_model_with_its_own_module_is_named(tmp_path):
    from mmengine.config import Config

    from segpc.models.tta import apply_tta

    path = tmp_path / "tta_cfg.py"
    path.write_text("model = dict(type='MaskRCNN')\n"
                    "tta_model = dict(type='SegPCTTAModel', module=dict(type='MaskRCNN'))\n")
    with pytest.raises(SegPCError) as e:
        apply_tta(Config.fromfile(str(path)))
    assert e.value.path == str(path) and "module" in e.value.problem


# --------------------------------------------------------------------------- ground truth the metric must read


def _coco(path, segmentation, **image):
    from segpc.io import write_json

    write_json({"images": [{"id": 1, "file_name": "1.png", "height": 40, "width": 60, **image}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "segmentation": segmentation,
                                 "area": 100, "bbox": [2, 2, 10, 10], "iscrowd": 0}],
                "categories": [{"id": 1, "name": "nucleus"}, {"id": 2, "name": "cytoplasm"},
                               {"id": 3, "name": "cell"}]}, path)
    return str(path)


def _score(ann_file, cells):
    from segpc.evaluation.metric import SegPCMetric

    metric = SegPCMetric(ann_file=ann_file)
    metric.compute_metrics([{"name": "1", "img_id": 1, "height": 40, "width": 60, "cells": cells}])
    return metric.result


def test_metric_reads_polygons_and_uncompressed_rle(tmp_path):
    import numpy as np
    from pycocotools import mask as mask_utils

    from helpers import cell, rect

    square = rect(2, 12, 2, 12)
    polygon = [[2, 2, 12, 2, 12, 12, 2, 12]]  # pycocotools rasterises it to the same 10x10 square
    assert (mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygon, 40, 60))) == square).all()
    fortran = np.asfortranarray(square.astype(np.uint8)).ravel(order="F")
    runs = np.diff(np.flatnonzero(np.diff(np.r_[-1, fortran, -1]) != 0)).tolist()  # starts with zeros
    uncompressed = {"size": [40, 60], "counts": runs}
    half = cell(rect(2, 12, 2, 7))  # half of the square
    for seg in (polygon, uncompressed):
        res = _score(_coco(tmp_path / "gt.json", seg), [half])
        assert (res.num_gt, res.mIoU) == (1, 0.5)


def test_metric_counts_an_empty_mask_as_the_challenge_does(tmp_path):
    from helpers import cell, rect

    square = rect(2, 12, 2, 12)
    ann = _coco(tmp_path / "gt.json", [[2, 2, 12, 2, 12, 12, 2, 12]], empty_masks=["1_2.bmp"])
    res = _score(ann, [cell(square)])
    assert (res.num_gt, res.mIoU) == (2, 0.5)  # the empty cell: in the denominator, IoU 0


@pytest.mark.slow
def test_test_and_eval_miou_agree_on_a_split_with_an_empty_mask(tmp_path, capsys):
    import re

    import cv2
    import numpy as np

    from helpers import random_init_checkpoint
    from segpc.cli import run
    from segpc.datasets.convert import write_coco
    from segpc.datasets.synthetic import write_splits

    root = tmp_path / "data"
    write_splits(root, {"validation": 2}, seed=5, size=(96, 128))
    blank = root / "validation" / "y" / "1_9.bmp"
    cv2.imwrite(str(blank), np.zeros((96, 128), np.uint8))
    write_coco(root / "validation", root / "annotations" / "validation.json", progress=False)
    ckpt = tmp_path / "init.pth"
    random_init_checkpoint(ckpt)
    sub = tmp_path / "sub"
    assert run(load_tool("test"), [MICRO, str(ckpt), "--submission", str(sub), "--score-thr", "0",
                                   "--work-dir", str(tmp_path / "w"), "--cfg-options", f"data_root={root}"]) == 0
    out_test = capsys.readouterr().out
    assert run(load_tool("eval_miou"), [str(root / "validation"), str(sub)]) == 0
    out_eval = capsys.readouterr().out
    line = re.compile(r"^(mIoU: [0-9.]+)$\n^num_gt: (\d+)", re.M)
    n_files = len(list((root / "validation" / "y").iterdir()))
    assert line.search(out_test).groups() == line.search(out_eval).groups()
    assert int(line.search(out_test).group(2)) == n_files  # the empty mask is a ground-truth cell


@pytest.mark.slow
def test_predict_skips_a_file_that_is_not_an_image(tmp_path, capsys):
    import cv2
    import numpy as np

    from helpers import random_init_checkpoint
    from segpc.apis.predict import predict

    images = tmp_path / "slides"
    images.mkdir()
    cv2.imwrite(str(images / "²1.png"), np.full((96, 128, 3), 150, np.uint8))  # isdigit() but no int()
    (images / "a.jpg").write_text("notes, not a picture\n")
    ckpt = tmp_path / "init.pth"
    random_init_checkpoint(ckpt)
    dump = predict(MICRO, str(ckpt), str(images), str(tmp_path / "out"), score_thr=0.0, progress=False)
    assert [img["name"] for img in dump["images"]] == ["²1"]
    err = capsys.readouterr().err
    assert f"warning: {images / 'a.jpg'}: not a readable image, skipped" in err.splitlines()
    (images / "²1.png").unlink()
    with pytest.raises(SegPCError) as e:
        predict(MICRO, str(ckpt), str(images), str(tmp_path / "out2"), progress=False)
    assert e.value.path == str(images)
