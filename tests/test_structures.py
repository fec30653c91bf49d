"""Cells from three-class instances, dumps and submissions, on hand-built masks."""
import pickle

import cv2
import numpy as np
import pytest

from segpc.io import SegPCError
from segpc.structures import (assemble_cells, cell_to_mask, decode, encode, load_dump, make_dump,
                              save_dump, write_submission)

H, W = 20, 30


def rect(y0, y1, x0, x1):
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


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


def test_score_threshold_and_empty_cells():
    rles = [encode(rect(2, 5, 2, 5)), encode(np.zeros((H, W), np.uint8))]
    assert assemble_cells(rles, [2, 2], [0.49, 0.9], score_thr=0.5) == []


def test_submission_masks_and_dump_roundtrip(tmp_path):
    cell = rect(2, 12, 2, 12)
    nuc = rect(4, 8, 4, 8)
    cells = assemble_cells([encode(cell), encode(nuc)], [2, 0], [0.8, 0.7])
    m = cell_to_mask(cells[0])
    assert (m == 40).sum() == 16 and (m == 20).sum() == 84 and (m == 0).sum() == H * W - 100
    dump = make_dump([{"name": "7", "img_id": 7, "height": H, "width": W, "cells": cells * 2}])
    save_dump(dump, tmp_path / "p.pkl")
    assert load_dump(tmp_path / "p.pkl") == dump
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "stale_1.bmp").write_bytes(b"old")
    assert write_submission(dump, tmp_path / "sub") == 2
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["7_1.bmp", "7_2.bmp"]
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "sub" / "7_2.bmp"), cv2.IMREAD_UNCHANGED), m)


def test_load_dump_rejects_other_pickles(tmp_path):
    p = tmp_path / "x.pkl"
    p.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(SegPCError, match="x.pkl: not a prediction dump"):
        load_dump(p)
    with pytest.raises(SegPCError, match="file not found"):
        load_dump(tmp_path / "missing.pkl")
