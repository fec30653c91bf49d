"""LabelMe import (tools/convert_labelme.py): LabelMe's rasterisation, grouping, errors."""
import base64
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import labelme_from_split, tool
from labelme_reference import shape_to_mask
from segpc.datasets.labelme import LabelMap, convert_labelme, read_labelme, shape_mask
from segpc.datasets.synthetic import write_dataset
from segpc.io import SegPCError, read_image, read_mask


def _shape(label, points, group_id=None, shape_type="polygon"):
    return {"label": label, "points": points, "group_id": group_id, "shape_type": shape_type, "flags": {}}


def _write(json_dir: Path, name: str, shapes, hw=(12, 16), embed=True, image=None, **extra) -> Path:
    json_dir.mkdir(parents=True, exist_ok=True)
    image = np.full((*hw, 3), 200, np.uint8) if image is None else image
    doc = {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": f"{name}.png", "imageData": None,
           "imageHeight": hw[0], "imageWidth": hw[1]}
    if embed:
        doc["imageData"] = base64.b64encode(cv2.imencode(".png", image)[1].tobytes()).decode()
    else:
        cv2.imwrite(str(json_dir / f"{name}.png"), image)
    doc.update(extra)
    path = json_dir / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


# --------------------------------------------------------------------------- rasterisation


def test_polygon_includes_its_outline():
    m = shape_mask("polygon", [[1, 1], [4, 1], [4, 3], [1, 3]], (5, 6))
    expected = np.zeros((5, 6), bool)
    expected[1:4, 1:5] = True  # vertices are pixel centres; the outline's pixels are inside
    assert np.array_equal(m, expected)


def test_concave_polygon_exact():
    # an L: the notch (rows 1-2, columns 3-4) stays empty
    m = shape_mask("polygon", [[0, 0], [2, 0], [2, 3], [4, 3], [4, 4], [0, 4]], (5, 5))
    expected = np.array([[1, 1, 1, 0, 0],
                         [1, 1, 1, 0, 0],
                         [1, 1, 1, 0, 0],
                         [1, 1, 1, 1, 1],
                         [1, 1, 1, 1, 1]], bool)
    assert np.array_equal(m, expected)


def test_rectangle_corners_in_any_order():
    a = shape_mask("rectangle", [[1, 2], [3, 4]], (6, 6))
    b = shape_mask("rectangle", [[3, 4], [1, 2]], (6, 6))
    expected = np.zeros((6, 6), bool)
    expected[2:5, 1:4] = True
    assert np.array_equal(a, expected) and np.array_equal(b, expected)


def test_circle_radius_from_rim_point():
    m = shape_mask("circle", [[5, 5], [8, 5]], (11, 11))
    assert m[5, 2] and m[5, 8] and m[2, 5] and m[8, 5]  # the rim is drawn
    assert not m[5, 9] and not m[2, 2]
    assert np.array_equal(m, m[::-1]) and np.array_equal(m, m.T)


def test_parity_with_labelme_shape_to_mask():
    rng = np.random.default_rng(0)
    for _ in range(60):
        n = int(rng.integers(3, 12))
        pts = rng.uniform(-3, 40, (n, 2)).round(2).tolist()
        assert np.array_equal(shape_mask("polygon", pts, (37, 41)), shape_to_mask((37, 41), pts, "polygon"))
        c, r = rng.uniform(0, 36, 2).tolist(), rng.uniform(0, 36, 2).tolist()
        assert np.array_equal(shape_mask("circle", [c, r], (37, 41)), shape_to_mask((37, 41), [c, r], "circle"))
        lo, hi = np.sort(rng.uniform(-2, 40, (2, 2)), axis=0).round(1).tolist()
        assert np.array_equal(shape_mask("rectangle", [lo, hi], (37, 41)),
                              shape_to_mask((37, 41), [lo, hi], "rectangle"))


# --------------------------------------------------------------------------- grouping


def test_cells_rings_and_clipping(tmp_path):
    shapes = [
        # group 1: cell outline with a nucleus poking out of it (clipped)
        _shape("cell", [[1, 1], [5, 1], [5, 5], [1, 5]], 1),
        _shape("nucleus", [[4, 2], [7, 2], [7, 3], [4, 3]], 1),
        # group 7: a cytoplasm ring (keyhole polygon) around its nucleus: the cell is the union
        _shape("cytoplasm", [[9, 1], [14, 1], [14, 6], [9, 6], [9, 4], [11, 4], [11, 3], [9, 3]], 7),
        _shape("nucleus", [[9, 3], [11, 3], [11, 4], [9, 4]], 7),
        # no group: a cell without nucleus
        _shape("cell", [[1, 8], [3, 10]], None, "rectangle"),
    ]
    item = read_labelme(_write(tmp_path, "a", shapes), LabelMap())
    assert len(item.masks) == 3
    m1, m7, m0 = item.masks
    e1 = np.zeros((12, 16), np.uint8)
    e1[1:6, 1:6] = 20
    e1[2:4, 4:6] = 40  # nucleus clipped to columns <= 5
    assert np.array_equal(m1, e1)
    e7 = np.zeros((12, 16), np.uint8)
    e7[1:7, 9:15] = 20
    e7[3:5, 9:12] = 40
    assert np.array_equal(m7, e7)
    e0 = np.zeros((12, 16), np.uint8)
    e0[8:11, 1:4] = 20
    assert np.array_equal(m0, e0)


def test_labels_are_configurable(tmp_path):
    shapes = [_shape("Plasma", [[1, 1], [5, 1], [5, 5]], 2), _shape("Nuc", [[2, 2], [3, 2], [3, 3]], 2)]
    item = read_labelme(_write(tmp_path, "a", shapes), LabelMap(cell="Plasma", nucleus="Nuc"))
    assert len(item.masks) == 1 and (item.masks[0] == 40).any()


def test_synthetic_round_trip_is_exact(tmp_path):
    write_dataset(tmp_path / "syn", 6, seed=3, size=(96, 128))
    labelme_from_split(tmp_path / "syn", tmp_path / "json", embed=False)
    counts = convert_labelme(tmp_path / "json", tmp_path / "out", progress=False)
    gt = sorted((tmp_path / "syn" / "y").iterdir())
    assert counts["cells"] == len(gt) > 0
    for p in gt:
        assert np.array_equal(read_mask(p), read_mask(tmp_path / "out" / "y" / f"{p.stem}.png")), p.name
    for p in (tmp_path / "syn" / "x").iterdir():
        assert np.array_equal(read_image(p), read_image(tmp_path / "out" / "x" / f"{p.stem}.png"))


def test_rerun_replaces_its_own_output(tmp_path):
    _write(tmp_path / "j", "a", [_shape("cell", [[1, 1], [5, 1], [5, 5]], 1)])
    _write(tmp_path / "j", "b", [_shape("cell", [[1, 1], [5, 1], [5, 5]], 1),
                                 _shape("cell", [[8, 1], [12, 1], [12, 5]], 2)])
    convert_labelme(tmp_path / "j", tmp_path / "out", progress=False)
    _write(tmp_path / "j", "b", [_shape("cell", [[1, 1], [5, 1], [5, 5]], 1)])
    convert_labelme(tmp_path / "j", tmp_path / "out", progress=False)
    assert sorted(p.name for p in (tmp_path / "out" / "y").iterdir()) == ["a_1.png", "b_1.png"]


# --------------------------------------------------------------------------- bad input


CELL = _shape("cell", [[1, 1], [5, 1], [5, 5], [1, 5]], 1)
BAD = {
    "unknown label": ([CELL, _shape("Nucleus", [[2, 2], [3, 2], [3, 3]], 1)], {}, "'Nucleus'"),
    "nucleus without cell": ([CELL, _shape("nucleus", [[8, 2], [9, 2], [9, 3]], None)], {}, "nucleus"),
    "two nuclei": ([CELL, _shape("nucleus", [[2, 2], [3, 2], [3, 3]], 1),
                    _shape("nucleus", [[3, 3], [4, 3], [4, 4]], 1)], {}, "two nuclei"),
    "line": ([CELL, _shape("cell", [[1, 1], [5, 5]], 2, "line")], {}, "'line'"),
    "size mismatch": ([CELL], {"imageHeight": 13}, "12"),
    "missing image": ([CELL], {"imageData": None, "imagePath": "nope.png"}, "nope.png"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_names_the_file_and_writes_nothing(tmp_path, case):
    shapes, extra, word = BAD[case]
    _write(tmp_path / "j", "a", [CELL])
    bad = _write(tmp_path / "j", "b", shapes, **extra)
    out = tmp_path / "new" / "out"
    with pytest.raises(SegPCError) as e:
        convert_labelme(tmp_path / "j", out, progress=False)
    assert e.value.path == str(bad) and word in e.value.problem
    assert not (tmp_path / "new").exists()


def test_unknown_label_lists_labels_and_flags(tmp_path):
    path = _write(tmp_path, "a", [_shape("Cell", [[1, 1], [5, 1], [5, 5]], 1)])
    with pytest.raises(SegPCError) as e:
        read_labelme(path)
    assert "'Cell'" in e.value.problem and "--cell-label" in e.value.problem


def test_unreadable_json_cli(tmp_path):
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "a.json").write_text("{not json")
    proc = tool("tools/convert_labelme.py", tmp_path / "j", tmp_path / "out", "--no-progress", check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {tmp_path / 'j' / 'a.json'}:")
    assert not (tmp_path / "out").exists()


def test_refuses_foreign_files_and_keeps_them(tmp_path):
    _write(tmp_path / "j", "a", [CELL])
    (tmp_path / "out" / "x").mkdir(parents=True)
    mine = tmp_path / "out" / "x" / "mine.jpg"
    mine.write_bytes(b"user data")
    with pytest.raises(SegPCError) as e:
        convert_labelme(tmp_path / "j", tmp_path / "out", progress=False)
    assert "mine.jpg" in e.value.problem
    assert mine.read_bytes() == b"user data" and not (tmp_path / "out" / "y").exists()
