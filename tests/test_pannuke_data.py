"""PanNuke folds: synthetic writer, conversion to COCO (exact RLE), bad input."""
import json

import cv2
import numpy as np
import pytest

from helpers import tool
from segpc.datasets.pannuke import convert_fold, load_fold, write_synthetic_folds
from segpc.evaluation.pq import CLASSES, TISSUES
from segpc.io import SegPCError
from segpc.structures import decode


@pytest.fixture(scope="module")
def folds(tmp_path_factory):
    root = tmp_path_factory.mktemp("pannuke")
    write_synthetic_folds(root, num=4, folds=2, seed=1, size=64, max_nuclei=12, progress=False)
    return root


def test_synthetic_folds_have_pannukes_layout(folds, tmp_path):
    f = load_fold(folds / "Fold 2")
    assert isinstance(f.images, np.memmap) and isinstance(f.masks, np.memmap)  # memory-mapped
    assert f.images.shape == (4, 64, 64, 3) and f.images.dtype == np.float64
    assert f.masks.shape == (4, 64, 64, 6) and f.masks.dtype == np.float64
    assert f.images_path == folds / "Fold 2" / "images" / "fold2" / "images.npy"
    assert f.masks_path == folds / "Fold 2" / "masks" / "fold2" / "masks.npy"
    assert set(f.types) <= set(TISSUES) and len(f.types) == 4
    m = np.asarray(f.masks)
    assert (m[..., 5] == (m[..., :5].sum(-1) == 0)).all()  # background channel
    ids = [set(np.unique(m[i, ..., c])) - {0} for i in range(4) for c in range(5)]
    assert sum(map(len, ids)) > 10 and max(max(s) for s in ids if s) > 100  # not contiguous
    # same arguments, same arrays
    write_synthetic_folds(tmp_path, num=4, folds=2, seed=1, size=64, max_nuclei=12, progress=False)
    again = load_fold(tmp_path / "Fold 2")
    assert np.array_equal(again.images, f.images) and np.array_equal(again.masks, f.masks)
    with pytest.raises(Exception, match="exists"):
        write_synthetic_folds(tmp_path, num=4, folds=1, seed=1, size=64, progress=False)


@pytest.mark.parametrize("classes", ["all", "neoplastic"])
def test_convert_is_exact(folds, tmp_path, classes):
    out = tmp_path / "fold1"
    proc = tool("tools/convert_pannuke.py", folds / "Fold 1", out, "--classes", classes, "--no-progress")
    assert "4 images" in proc.stdout
    coco = json.loads((out / "annotations.json").read_text())
    fold = load_fold(folds / "Fold 1")
    channels = range(5) if classes == "all" else [0]
    assert [c["name"] for c in coco["categories"]] == [CLASSES[c] for c in channels]
    assert [img["id"] for img in coco["images"]] == [1, 2, 3, 4]
    n = 0
    for img in coco["images"]:
        i = img["pannuke_index"]
        assert img["tissue"] == fold.types[i]
        png = cv2.imread(str(out / "images" / img["file_name"]), cv2.IMREAD_COLOR)
        assert np.array_equal(png[..., ::-1], fold.images[i].astype(np.uint8))
        anns = [a for a in coco["annotations"] if a["image_id"] == img["id"]]
        for c in channels:
            ch = fold.masks[i, ..., c]
            inst = sorted(set(np.unique(ch)) - {0})
            mine = sorted((a for a in anns if a["category_id"] == list(channels).index(c) + 1),
                          key=lambda a: a["instance_id"])
            assert [a["instance_id"] for a in mine] == inst
            for a in mine:
                m = ch == a["instance_id"]
                assert np.array_equal(decode(a["segmentation"]), m)  # exact, holes and all
                ys, xs = np.nonzero(m)
                assert a["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
                assert a["area"] == m.sum()
                n += 1
    assert n == len(coco["annotations"]) > 0


def _fold(tmp_path, images, types, masks):
    d = tmp_path / "bad"
    d.mkdir(exist_ok=True)
    for name, arr in (("images", images), ("types", types), ("masks", masks)):
        np.save(d / f"{name}.npy", arr)
    return d


def _good(n=2, size=8):
    masks = np.zeros((n, size, size, 6))
    masks[0, :3, :3, 0] = 5
    masks[0, 4:, 4:, 2] = 9
    return np.full((n, size, size, 3), 128.0), np.array(["Breast"] * n), masks


@pytest.mark.parametrize("case, culprit, problem", [
    ("images_shape", "images", "(N, H, W, 3)"),
    ("masks_shape", "masks", "(N, H, W, 6)"),
    ("masks_dtype", "masks", "dtype"),
    ("types_dtype", "types", "tissue names"),
    ("lengths", "types", "3 tissue types for 2 images"),
    ("mask_size", "masks", "do not match images"),
    ("shared_id", "masks", "instance id 5 is in channels 0 (Neoplastic) and 3 (Dead)"),
    ("fractional_id", "masks", "non-negative integers"),
    ("range", "images", "0-255"),
])
def test_bad_fold_is_one_line(tmp_path, case, culprit, problem):
    images, types, masks = _good()
    if case == "images_shape":
        images = images[..., 0]
    elif case == "masks_shape":
        masks = masks[..., :5]
    elif case == "masks_dtype":
        masks = masks.astype("U3")
    elif case == "types_dtype":
        types = np.arange(2)
    elif case == "lengths":
        types = np.array(["Breast"] * 3)
    elif case == "mask_size":
        masks = masks[:, :7]
    elif case == "shared_id":
        masks[1, 0, 0, 3] = 5  # another image: ids are per image ...
        masks[0, 7, 0, 3] = 5  # ... but within one image an id belongs to one channel
    elif case == "fractional_id":
        masks[1, 0, 0, 1] = 2.5
    elif case == "range":
        images[1, 0, 0, 0] = 300
    d = _fold(tmp_path, images, types, masks)
    out = tmp_path / "out"
    proc = tool("tools/convert_pannuke.py", d, out, "--no-progress", check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"error: {d / (culprit + '.npy')}: ")
    assert problem in proc.stderr
    assert not out.exists()  # nothing written


def test_convert_refuses_a_folder_with_other_files(tmp_path, folds):
    out = tmp_path / "out"
    out.mkdir()
    keep = out / "best_bPQ_epoch_12.pth"
    keep.write_bytes(b"weights")
    proc = tool("tools/convert_pannuke.py", folds / "Fold 1", out, "--no-progress", check=False)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {out}: ") and "did not write" in proc.stderr
    assert keep.read_bytes() == b"weights" and sorted(p.name for p in out.iterdir()) == [keep.name]
    proc = tool("tools/convert_pannuke.py", folds / "Fold 1", out, "--overwrite", "--no-progress", check=False)
    assert proc.returncode == 2 and keep.read_bytes() == b"weights"
    # a previous conversion is replaced with --overwrite only
    ok = tmp_path / "ok"
    convert_fold(folds / "Fold 1", ok, progress=False)
    with pytest.raises(SegPCError, match="--overwrite"):
        convert_fold(folds / "Fold 2", ok, "neoplastic", progress=False)
    convert_fold(folds / "Fold 2", ok, "neoplastic", progress=False, overwrite=True)
    assert json.loads((ok / "annotations.json").read_text())["info"]["classes"] == "neoplastic"


def test_fold_layout_errors(tmp_path):
    proc = tool("tools/convert_pannuke.py", tmp_path, tmp_path / "out", check=False)
    assert proc.returncode == 2 and f"error: {tmp_path}: no images/*/images.npy" in proc.stderr
