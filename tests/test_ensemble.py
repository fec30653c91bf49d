"""The dump ensemble (segpc.ensemble, tools/ensemble.py) on hand-built cells with known answers,
and against the dense reference on random dumps."""
from pathlib import Path

import numpy as np
import pytest

from helpers import cell, rect, tool

from segpc.ensemble import check_dumps, ensemble_dumps
from segpc.io import SegPCError
from segpc.structures import CropMask, decode, iou_matrix, load_dump, make_dump, save_dump, write_submission
from segpc.testing.ensemble import dense_reference_ensemble_dumps

REPO = Path(__file__).resolve().parents[1]
H, W = 40, 60


def dump(*images, size=(H, W)):
    """``dump([cells of image "1"], [cells of image "2"], ...)``."""
    return make_dump({"name": str(i + 1), "img_id": i + 1, "height": size[0], "width": size[1], "cells": cells}
                     for i, cells in enumerate(images))


def both(dumps, **kw):
    """The fast result, after checking that the dense reference gives exactly the same."""
    fast = ensemble_dumps(dumps, **kw)
    assert fast == dense_reference_ensemble_dumps(dumps, **kw)
    return fast


def test_identical_models_give_identical_output():
    cells = [cell(rect(2, 20, 3, 25), 0.91, rect(5, 10, 5, 12)), cell(rect(22, 38, 30, 55), 0.6),
             cell(rect(1, 9, 40, 59), 0.73, rect(1, 9, 40, 59))]
    d = dump(sorted(cells, key=lambda c: -c["score"]), [])
    for n in (2, 3, 7):
        out = both([d] * n)
        assert out["images"] == d["images"]
        assert out["ensemble"]["voted"] == 3 and out["ensemble"]["added"] == 0


def test_four_of_seven_vote_exact_pixels():
    base = rect(10, 30, 10, 30)                      # all 7 models: 400 px
    strips = {                                      # column strips of 20 px, with who has them
        "A": (rect(10, 30, 30, 31), {0, 1, 2, 3}),   # 4 of 7, reference among them → in
        "B": (rect(10, 30, 31, 32), {1, 2, 3}),      # 3 of 7 → out
        "C": (rect(10, 30, 32, 33), {3, 4, 5, 6}),   # 4 of 7 without the reference → in
        "D": (rect(10, 30, 9, 10), {0, 5, 6}),       # 3 of 7 with the reference → out
    }
    nuc_core, nuc_extra = rect(15, 20, 15, 20), rect(20, 21, 15, 20)  # extra: 4 of 7 → in
    models = []
    for m in range(7):
        mask = base.copy()
        for s, who in strips.values():
            if m in who:
                mask |= s
        nuc = nuc_core | (nuc_extra if m in {2, 4, 5, 6} else np.zeros_like(nuc_extra))
        models.append(dump([cell(mask, 0.5 + 0.05 * m, nuc)]))
    out = both(models, min_iou=0.85)
    (c,) = out["images"][0]["cells"]
    expected = base | strips["A"][0] | strips["C"][0]
    np.testing.assert_array_equal(decode(c["cell"]).astype(bool), expected)
    np.testing.assert_array_equal(decode(c["nucleus"]).astype(bool), nuc_core | nuc_extra)
    assert c["bbox"] == [10, 10, 33, 30]
    assert c["score"] == pytest.approx(np.mean([0.5 + 0.05 * m for m in range(7)]))
    assert out["ensemble"] == {"models": 7, "min_iou": 0.85, "quorum": 6, "tie": "out", "voted": 1,
                               "kept": 0, "added": 0, "duplicates": 0}


def test_even_voters_tie_rules():
    base = rect(10, 30, 10, 30)
    ref_only, other_only = rect(10, 30, 30, 31), rect(10, 30, 9, 10)
    ref_nuc, other_nuc = rect(15, 20, 15, 20), rect(20, 25, 15, 20)
    ref = dump([cell(base | ref_only, 0.9, ref_nuc)])
    # 3 others, all contribute; voters = 4: the reference's strip has 2 votes (ref + one
    # other), the other strip 2 votes without the reference: both ties. The nuclei likewise.
    others = [dump([cell(base | ref_only, 0.9, ref_nuc)]), dump([cell(base | other_only, 0.9, other_nuc)]),
              dump([cell(base | other_only, 0.9, other_nuc)])]
    (c,) = both([ref] + others, tie="reference")["images"][0]["cells"]
    np.testing.assert_array_equal(decode(c["cell"]).astype(bool), base | ref_only)   # ties → the reference
    np.testing.assert_array_equal(decode(c["nucleus"]).astype(bool), ref_nuc)
    (c,) = both([ref] + others)["images"][0]["cells"]                                   # default: tie="out"
    np.testing.assert_array_equal(decode(c["cell"]).astype(bool), base)
    assert c["nucleus"] is None and c["bbox"] == [10, 10, 30, 30]
    with pytest.raises(SegPCError, match="tie must be one of out, reference"):
        ensemble_dumps([ref] + others, tie="anchor")


def test_cells_found_by_one_model_only():
    a, b, c = rect(2, 12, 2, 12), rect(20, 35, 40, 55), rect(25, 38, 2, 14)
    ref = dump([cell(a, 0.9)])
    m2 = dump([cell(a, 0.8), cell(b, 0.95)])     # b: only m2 has it
    m3 = dump([cell(a, 0.7)])
    out = both([ref, m2, m3])
    cells = out["images"][0]["cells"]
    assert [x["score"] for x in cells] == [0.95, pytest.approx(0.8)]   # sorted by score
    assert cells[0] == m2["images"][0]["cells"][1]                    # added as it is
    assert out["ensemble"]["added"] == 1 and out["ensemble"]["voted"] == 1
    # a cell only the reference has is kept as it is
    ref2 = dump([cell(a, 0.9), cell(c, 0.4, rect(30, 33, 5, 8))])
    out = both([ref2, m2, m3])
    assert out["images"][0]["cells"][-1] == ref2["images"][0]["cells"][1]
    assert out["ensemble"]["kept"] == 1


def test_duplicates_among_added_cells_keep_the_earliest_model():
    a, b = rect(2, 12, 2, 12), rect(20, 35, 40, 55)
    b_shifted = rect(20, 35, 41, 56)                 # IoU 14/16 = 0.875 with b
    ref = dump([cell(a)])
    m2 = dump([cell(a), cell(b, 0.5), cell(b_shifted, 0.4)])   # one model's own duplicates stay
    m3 = dump([cell(a), cell(b_shifted, 0.99)])                # a duplicate of m2's: dropped
    out = both([ref, m2, m3], min_iou=0.85)
    cells = out["images"][0]["cells"]
    assert len(cells) == 3 and out["ensemble"]["added"] == 2 and out["ensemble"]["duplicates"] == 1
    assert [x["score"] for x in cells[1:]] == [0.5, 0.4]


def test_min_iou_threshold_is_inclusive():
    ref_mask = rect(0, 10, 0, 10)                                  # 100 px
    at = ref_mask.copy()
    at[:, 8:] = False                                              # 80 px inside
    at[0:5, 8] = True                                              # 85 px: IoU 0.85
    below = at.copy()
    below[4, 8] = False                                            # 84 px: IoU 0.84
    assert iou_matrix([CropMask.from_dense(ref_mask)], [CropMask.from_dense(at)])[0, 0] == 0.85
    ref = dump([cell(ref_mask, 0.9)])
    out = both([ref, dump([cell(at, 0.5)])], min_iou=0.85)
    (c,) = out["images"][0]["cells"]
    assert c["score"] == pytest.approx(0.7) and out["ensemble"]["voted"] == 1
    np.testing.assert_array_equal(decode(c["cell"]).astype(bool), at)  # n=2: ties out → the intersection
    (c,) = both([ref, dump([cell(at, 0.5)])], min_iou=0.85, tie="reference")["images"][0]["cells"]
    np.testing.assert_array_equal(decode(c["cell"]).astype(bool), ref_mask)  # ties → the reference
    # below min-iou: the reference cell is kept as it is, the other cell is added (unmatched)
    out = both([ref, dump([cell(below, 0.5)])], min_iou=0.85)
    assert out["images"][0]["cells"] == [ref["images"][0]["cells"][0], cell(below, 0.5)]
    assert out["ensemble"]["kept"] == 1 and out["ensemble"]["added"] == 1


def test_quorum():
    a = rect(2, 12, 2, 12)
    ref = dump([cell(a, 0.9)])
    one, none = dump([cell(a, 0.5)]), dump([])
    out = both([ref, one, none])               # default: all others must contribute
    assert out["images"][0]["cells"][0]["score"] == 0.9 and out["ensemble"]["kept"] == 1
    out = both([ref, one, none], quorum=1)
    assert out["images"][0]["cells"][0]["score"] == pytest.approx(0.7) and out["ensemble"]["voted"] == 1
    with pytest.raises(SegPCError, match="quorum must be between 1 and 2"):
        ensemble_dumps([ref, one, none], quorum=3)


def test_matched_but_not_best_is_not_added():
    a = rect(2, 22, 2, 22)
    near = rect(2, 22, 3, 22)                        # IoU 0.95
    nearer = rect(2, 22, 2, 22)
    out = both([dump([cell(a)]), dump([cell(near, 0.99), cell(nearer, 0.3)])], min_iou=0.85)
    assert len(out["images"][0]["cells"]) == 1 and out["ensemble"]["added"] == 0


def test_mismatched_dumps_are_one_line_errors():
    a = dump([cell(rect(2, 12, 2, 12))], [])
    with pytest.raises(SegPCError, match=r"m2.json: different image set: lacks 1 image\(s\) of ref.json \(2\)"):
        check_dumps([a, dump([cell(rect(2, 12, 2, 12))])], ["ref.json", "m2.json"])
    with pytest.raises(SegPCError, match="has 1 image"):
        check_dumps([a, dump([], [], [])], ["ref.json", "m2.json"])
    other_size = dump([], [], size=(H, W + 1))
    with pytest.raises(SegPCError, match=f"m2.json: image '1' is {H}x{W + 1} here, {H}x{W} in ref.json"):
        check_dumps([a, other_size], ["ref.json", "m2.json"])
    with pytest.raises(SegPCError, match="needs a reference dump and at least one other"):
        check_dumps([a])
    bad = dump([cell(rect(2, 12, 2, 12, shape=(H + 1, W)))])
    bad["images"][0]["height"] = H
    with pytest.raises(SegPCError, match="cell 1: cell mask is 41x60, the image 40x60"):
        check_dumps([a, bad], ["ref.json", "m2.json"])
    broken = dump([cell(rect(2, 12, 2, 12))])
    del broken["images"][0]["cells"][0]["cell"]
    with pytest.raises(SegPCError, match=r"m2.json: malformed prediction dump: image '1', cell 1: has no 'cell'"):
        check_dumps([a, broken], ["ref.json", "m2.json"])


def test_fast_equals_dense_reference_on_random_dumps():
    rng = np.random.default_rng(7)
    size = (50, 70)
    for trial in range(25):
        truth = [(int(y), int(x), int(y + rng.integers(6, 18)), int(x + rng.integers(6, 18)))
                 for y, x in rng.integers(0, 40, (int(rng.integers(0, 6)), 2))]
        dumps = []
        for _ in range(int(rng.integers(2, 8))):
            cells = []
            for y0, x0, y1, x1 in truth:
                if rng.random() < 0.15:
                    continue
                d = rng.integers(-1, 2, 4)
                m = rect(max(0, y0 + d[0]), y1 + d[1], max(0, x0 + d[2]), x1 + d[3], size)
                m &= rng.random(size) > 0.04
                nuc = rect(y0 + 1, y0 + 5, x0 + 1, x0 + 6, size) if rng.random() < 0.8 else None
                if m.any():
                    cells.append(cell(m, float(rng.random()), nuc))
            if rng.random() < 0.4:  # a false positive
                y, x = (int(v) for v in rng.integers(0, 40, 2))
                cells.append(cell(rect(y, y + 9, x, x + 9, size), float(rng.random())))
            cells.sort(key=lambda c: -c["score"])
            dumps.append(dump(cells, size=size))
        for min_iou in (0.5, 0.85):
            both(dumps, min_iou=min_iou, quorum=int(rng.integers(1, len(dumps))))
            both(dumps, min_iou=min_iou, tie=("out", "reference")[trial % 2])


def test_tool_writes_dump_and_submission(tmp_path):
    a, b = rect(2, 12, 2, 12), rect(20, 35, 40, 55)
    paths = []
    for i, cells in enumerate([[cell(a, 0.9, rect(4, 6, 4, 6))], [cell(a, 0.7), cell(b, 0.6)], [cell(a, 0.8)]]):
        save_dump(dump(cells, []), tmp_path / f"m{i}.json")
        paths.append(tmp_path / f"m{i}.json")
    out, sub = tmp_path / "ens.json", tmp_path / "sub"
    proc = tool("tools/ensemble.py", *paths, "--out", out, "--submission", sub, "--min-iou", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert "1 voted, 0 reference cells kept as they are, 1 added" in proc.stdout
    ens = load_dump(out)
    assert ens == ensemble_dumps([load_dump(p) for p in paths], min_iou=0.5, sources=[str(p) for p in paths])
    assert sorted(p.name for p in sub.iterdir()) == ["1_1.bmp", "1_2.bmp"]

    # different image sets: one line, exit 2
    save_dump(dump([cell(a)]), tmp_path / "short.json")
    proc = tool("tools/ensemble.py", paths[0], tmp_path / "short.json", "--out", tmp_path / "x.json", check=False)
    assert proc.returncode == 2 and not (tmp_path / "x.json").exists()
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / 'short.json'}: different image set")


@pytest.mark.slow
def test_tool_takes_submission_folders_and_tie_option(tmp_path):
    """Two submission folders and a dump; folders' cells score 1.0, images without cells in a
    folder have none there; --tie decides the pixels half of the 2 voters have."""
    a, a_wide, b = rect(2, 12, 2, 12), rect(2, 12, 2, 14), rect(20, 35, 40, 55)
    write_submission(dump([cell(a, 0.9, rect(4, 6, 4, 6))], [cell(b, 0.6)]), tmp_path / "sub_a")
    write_submission(dump([cell(a_wide, 0.3)], []), tmp_path / "sub_b")   # image 2: no file
    assert sorted(p.name for p in (tmp_path / "sub_b").iterdir()) == ["1_1.bmp"]
    outs = {}
    for tie in ("out", "reference"):
        out = tmp_path / f"ens_{tie}.json"
        tool("tools/ensemble.py", tmp_path / "sub_a", tmp_path / "sub_b", "--out", out, "--tie", tie,
             "--min-iou", "0.8")
        outs[tie] = load_dump(out)
    for tie in ("out", "reference"):  # the reference lacks the 2 tie columns: out either way
        img1, img2 = outs[tie]["images"]
        (c,) = img1["cells"]
        assert c["score"] == 1.0
        np.testing.assert_array_equal(decode(c["cell"]).astype(bool), a)
        assert [x["score"] for x in img2["cells"]] == [1.0]  # only sub_a has image 2's cell: kept
    # the wider cell as the reference: its 2 extra columns are a tie between the 2 voters
    tool("tools/ensemble.py", tmp_path / "sub_b", tmp_path / "sub_a", "--out", tmp_path / "o.json",
         "--min-iou", "0.8")
    tool("tools/ensemble.py", tmp_path / "sub_b", tmp_path / "sub_a", "--out", tmp_path / "r.json",
         "--min-iou", "0.8", "--tie", "reference")
    c_out = load_dump(tmp_path / "o.json")["images"][0]["cells"][0]
    c_ref = load_dump(tmp_path / "r.json")["images"][0]["cells"][0]
    np.testing.assert_array_equal(decode(c_out["cell"]).astype(bool), a)       # tie → out
    np.testing.assert_array_equal(decode(c_ref["cell"]).astype(bool), a_wide)  # tie → the reference
    # a dump and a folder mix; the dump's scores are kept in the mean
    save_dump(dump([cell(a, 0.5)], []), tmp_path / "m.json")
    tool("tools/ensemble.py", tmp_path / "m.json", tmp_path / "sub_a", "--out", tmp_path / "mix.json")
    mix = load_dump(tmp_path / "mix.json")
    assert mix["images"][0]["cells"][0]["score"] == 0.75 and mix["ensemble"]["added"] == 1
