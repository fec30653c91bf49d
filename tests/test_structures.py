"""segpc.structures on hand-built masks: the RLE codec, crop masks, cells with their nucleus,
dumps (JSON, legacy pickles, validation) and submissions."""
import json
import pickle

import cv2
import numpy as np
import pytest

from segpc.io import SegPCError
from segpc.structures import (CropMask, assemble_cells, cell_to_mask, decode, encode, load_dump, make_dump,
                              paste, read_submission, save_dump, vote, write_submission)
from segpc.structures.rle import decode_counts, encode_crop, encode_positions

H, W = 20, 30


def rect(y0, y1, x0, x1):
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def random_masks(rng, shape):
    """Noise, full columns (runs crossing columns), a full frame, one pixel, empty."""
    noise = rng.random(shape) < 0.3
    cols = np.zeros(shape, bool)
    cols[:, 2:5] = True
    cols[min(3, shape[0] - 1):, -1] = True
    one = np.zeros(shape, bool)
    one[-1, -1] = True
    return [noise, cols, np.ones(shape, bool), one, np.zeros(shape, bool)]


# --------------------------------------------------------------------------- RLE codec and crop masks


def test_every_encoder_gives_pycocotools_string():
    rng = np.random.default_rng(0)
    for shape in ((7, 9), (1, 1), (20, 30), (1, 17)):
        for m in random_masks(rng, shape):
            ref = encode(m)
            assert decode(ref).astype(bool).tolist() == m.tolist()
            assert encode_positions(np.flatnonzero(m.T), shape) == ref
            assert encode_crop(m, 0, 0, shape) == ref
            cm = CropMask.from_dense(m)
            assert cm.to_rle() == ref and cm.area == int(m.sum())
            assert encode_crop(cm.crop, cm.y0, cm.x0, shape) == ref
            assert np.array_equal(CropMask.from_rle(ref).to_dense(), m)
            assert decode_counts(ref["counts"]).sum() == m.size


def test_crop_mask_resize_is_cv2_nearest():
    m = np.zeros((7, 9), np.uint8)
    m[1:4, 2:7] = 40
    m[5, 8] = 20
    target = (15, 11)
    ref = cv2.resize(m, target[::-1], interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(CropMask.from_dense(m, target=target).to_dense(), ref > 0)
    assert np.array_equal(CropMask.from_dense(m, (40,), target).to_dense(), ref == 40)
    assert np.array_equal(CropMask.from_rle(encode(m > 0), target=target).to_dense(), ref > 0)
    assert CropMask.from_dense(m).size == (7, 9)


def test_flip_and_intersection():
    m = CropMask.from_dense(rect(2, 5, 3, 10))
    assert m.box == (3, 2, 10, 5)
    assert m.flip("horizontal").box == (W - 10, 2, W - 3, 5)
    assert m.flip("vertical").box == (3, H - 5, 10, H - 2)
    assert (m & CropMask.from_dense(rect(4, 9, 8, 12))).box == (8, 4, 10, 5)
    assert (m & CropMask.from_dense(rect(10, 12, 0, 2))).area == 0


def test_flip_image_mirrors_like_masks_and_boxes():
    from segpc.structures import flip_boxes, flip_image

    a = np.arange(6).reshape(2, 3)
    assert flip_image(a, "horizontal").tolist() == [[2, 1, 0], [5, 4, 3]]
    assert flip_image(a, "vertical").tolist() == [[3, 4, 5], [0, 1, 2]]
    assert flip_image(a, "diagonal").tolist() == [[5, 4, 3], [2, 1, 0]]
    assert flip_image(a, None) is a
    img = rect(2, 5, 3, 10)
    for d in ("horizontal", "vertical", "diagonal"):
        flipped = CropMask.from_dense(flip_image(img, d))
        assert np.array_equal(flipped.to_dense(), CropMask.from_dense(img).flip(d).to_dense())
        assert list(flipped.box) == flip_boxes([CropMask.from_dense(img).box], (H, W), d)[0].tolist()
        assert np.array_equal(flip_image(flip_image(img, d), d), img)
    with pytest.raises(ValueError):
        flip_image(a, "sideways")


def test_vote_tie_rules():
    a, b = CropMask.from_dense(rect(0, 4, 0, 4)), CropMask.from_dense(rect(0, 4, 2, 6))
    # 2 voters: the overlap has 2 votes (in); the rest 1 vote = a tie
    assert np.array_equal(vote([a, b], anchor=0, tie="anchor").to_dense(), rect(0, 4, 0, 4).astype(bool))
    assert np.array_equal(vote([a, b], anchor=1, tie="anchor").to_dense(), rect(0, 4, 2, 6).astype(bool))
    assert np.array_equal(vote([a, b], tie="out").to_dense(), rect(0, 4, 2, 4).astype(bool))
    assert np.array_equal(paste([vote([a, b, b])], (H, W))[0], rect(0, 4, 2, 6).astype(bool))
    with pytest.raises(ValueError):
        vote([a, b], tie="reference")


# --------------------------------------------------------------------------- cells


def test_nucleus_is_the_one_covering_most_of_the_cell_and_is_clipped():
    cell = rect(2, 12, 2, 12)                      # 100 px
    nuc_small = rect(3, 5, 3, 5)                   # 4 px inside
    nuc_big_overhang = rect(6, 14, 6, 14)          # 36 px inside the cell, 28 outside
    other_cell = rect(14, 18, 20, 28)              # no nucleus touches it
    rles = [encode(m) for m in (cell, nuc_small, nuc_big_overhang, other_cell, rect(0, 3, 0, 3))]
    labels = [2, 0, 0, 2, 1]                       # the cytoplasm instance is ignored
    cells = assemble_cells(rles, labels, [0.9, 0.2, 0.3, 0.95, 0.99], score_thr=0.5)
    assert [c["score"] for c in cells] == [0.95, 0.9]
    assert cells[0]["nucleus"] is None and cells[0]["bbox"] == [20, 14, 28, 18]
    nucleus = decode(cells[1]["nucleus"])
    assert nucleus.sum() == 36 and not (nucleus & (1 - cell)).any()
    np.testing.assert_array_equal(nucleus, cell & nuc_big_overhang)


def test_confident_nucleus_beats_a_larger_doubtful_one():
    cell = rect(0, 10, 0, 10)                      # 100 px
    big_doubtful = rect(0, 10, 0, 8)               # 80 px of the cell, score 0.2 → weight 16
    small_confident = rect(3, 7, 3, 7)             # 16 px of the cell, score 0.95 → weight 15.2
    confident = rect(2, 8, 2, 8)                   # 36 px of the cell, score 0.9 → weight 32.4
    rles = [encode(m) for m in (cell, big_doubtful, small_confident)]
    (c,) = assemble_cells(rles, [2, 0, 0], [0.9, 0.2, 0.95])
    np.testing.assert_array_equal(decode(c["nucleus"]), big_doubtful)  # 16 > 15.2: overlap still counts
    (c,) = assemble_cells(rles + [encode(confident)], [2, 0, 0, 0], [0.9, 0.2, 0.95, 0.9])
    np.testing.assert_array_equal(decode(c["nucleus"]), confident)
    # by overlap alone the doubtful one would win (80 px > 36 px)
    (c,) = assemble_cells([rles[0], rles[1], encode(confident)], [2, 0, 0], [0.9, 0.3, 0.9])
    np.testing.assert_array_equal(decode(c["nucleus"]), confident)


def test_score_threshold_and_empty_cells():
    rles = [encode(rect(2, 5, 2, 5)), encode(np.zeros((H, W), np.uint8))]
    assert assemble_cells(rles, [2, 2], [0.49, 0.9], score_thr=0.5) == []


# --------------------------------------------------------------------------- dumps and submissions


def example_dump():
    cell, nuc = rect(2, 12, 2, 12), rect(4, 8, 4, 8)
    cells = assemble_cells([encode(cell), encode(nuc)], [2, 0], [0.8, 0.7])
    return make_dump([{"name": "7", "img_id": 7, "height": H, "width": W, "cells": cells * 2}])


def test_submission_masks_and_json_dump_roundtrip(tmp_path):
    dump = example_dump()
    m = cell_to_mask(dump["images"][0]["cells"][0])
    assert (m == 40).sum() == 16 and (m == 20).sum() == 84 and (m == 0).sum() == H * W - 100
    save_dump(dump, tmp_path / "p.json")
    assert json.loads((tmp_path / "p.json").read_text()) == dump  # plain JSON
    assert load_dump(tmp_path / "p.json") == dump
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "stale_1.bmp").write_bytes(b"old")
    assert write_submission(dump, tmp_path / "sub", overwrite=True) == 2  # a previous submission
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["7_1.bmp", "7_2.bmp"]
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "sub" / "7_2.bmp"), cv2.IMREAD_UNCHANGED), m)
    back = read_submission(tmp_path / "sub")
    assert [c["score"] for c in back["images"][0]["cells"]] == [1.0, 1.0]
    for a, b in zip(back["images"][0]["cells"], dump["images"][0]["cells"]):
        assert (a["cell"], a["nucleus"], a["bbox"]) == (b["cell"], b["nucleus"], b["bbox"])


def test_legacy_pickled_dump_is_read_and_code_is_refused(tmp_path):
    dump = example_dump()
    (tmp_path / "old.pkl").write_bytes(pickle.dumps(dump, protocol=pickle.HIGHEST_PROTOCOL))
    assert load_dump(tmp_path / "old.pkl") == dump
    evil = pickle.dumps({"format": "segpc-predictions/1", "images": [], "x": print}, protocol=4)
    (tmp_path / "evil.pkl").write_bytes(evil)
    with pytest.raises(SegPCError, match="evil.pkl: not a prediction dump .*refusing to load builtins.print"):
        load_dump(tmp_path / "evil.pkl")
    with pytest.raises(SegPCError, match="new.pkl: prediction dumps are written as JSON"):
        save_dump(dump, tmp_path / "new.pkl")
    assert not (tmp_path / "new.pkl").exists()


def test_load_dump_rejects_bad_files(tmp_path):
    p = tmp_path / "x.pkl"
    p.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(SegPCError, match="x.pkl: not a prediction dump"):
        load_dump(p)
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(SegPCError, match="x.json: not a prediction dump"):
        load_dump(tmp_path / "x.json")
    with pytest.raises(SegPCError, match="file not found"):
        load_dump(tmp_path / "missing.json")


@pytest.mark.parametrize("breakage, problem", [
    (lambda img, c: c.pop("cell"), "image '7', cell 1: has no 'cell'"),
    (lambda img, c: c.update(score="high"), "image '7', cell 1: has a bad score 'high'"),
    (lambda img, c: c.update(bbox=[1, 2]), "image '7', cell 1: has a bad bbox [1, 2]"),
    (lambda img, c: img.update(height=H + 1), f"image '7', cell 1: cell mask is {H}x{W}, the image {H + 1}x{W}"),
    (lambda img, c: c.update(nucleus={"size": [H, W]}), "image '7', cell 1: nucleus mask is not an RLE"),
    (lambda img, c: img.pop("width"), "image '7' has no valid height and width"),
    (lambda img, c: img.update(name=7), "image #1 has no name"),
])
def test_dump_schema_errors_name_the_file_and_the_cell(tmp_path, breakage, problem):
    dump = json.loads(json.dumps(example_dump()))
    img = dump["images"][0]
    breakage(img, img["cells"][0])
    (tmp_path / "d.json").write_text(json.dumps(dump))
    with pytest.raises(SegPCError) as e:
        load_dump(tmp_path / "d.json")
    assert str(e.value).startswith(f"{tmp_path / 'd.json'}: malformed prediction dump: {problem}")
