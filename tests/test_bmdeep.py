"""The second-place method (bmdeep): crop geometry, post-processing, scale aggregation."""
import numpy as np
import pytest

from segpc.bmdeep.postprocess import (aggregate, cyto_nucleus_ratio, cytoplasm_region, image_cells,
                                      nucleus_instances, with_nucleus)
from segpc.datasets.crops import (Window, crop_window, equalize, fit_to_input, from_input, make_crop, to_input,
                                  window_patch)
from segpc.io import read_mask
from segpc.structures import CropMask, decode, make_dump, validate_dump, write_submission


def rect_mask(y0, y1, x0, x1, frame=(100, 120)) -> CropMask:
    m = np.zeros(frame, bool)
    m[y0:y1, x0:x1] = True
    return CropMask.from_dense(m)


# --------------------------------------------------------------------------- crop geometry


@pytest.mark.parametrize("scale, window", [
    (0.5, (10, 5, 70, 35)),      # dy = round(0.5*40/2) = 10, dx = round(0.5*20/2) = 5
    (1.75, (-15, -8, 95, 48)),   # dy = round(35.0) = 35, dx = round(17.5) = 18 (half to even)
    (2.6, (-32, -16, 112, 56)),  # dy = round(52.0) = 52, dx = round(26.0) = 26
    (3.0, (-40, -20, 120, 60)),  # dy = 60, dx = 30
])
def test_crop_window_at_each_scale(scale, window):
    w = crop_window((10, 20, 30, 60), scale, (100, 120))  # box x1, y1, x2, y2: h 40, w 20
    assert (w.y0, w.x0, w.y1, w.x1) == window
    assert w.inside == (max(0, window[0]), max(0, window[1]), min(100, window[2]), min(120, window[3]))


def test_border_crop_keeps_full_size_zero_padded():
    frame = (100, 120)
    image = np.arange(100 * 120 * 3, dtype=np.int64).reshape(100, 120, 3) % 251 + 1
    image = image.astype(np.uint8)  # no zero pixel inside the frame
    nucleus = rect_mask(20, 60, 10, 30, frame)
    crop, w = make_crop(image, nucleus, 3.0)
    assert w == Window(-40, -20, 120, 60, frame)
    assert crop.shape == (160, 80, 4) and crop.dtype == np.uint8
    # rows -40..-1 and columns -20..-1 lie outside the frame: zero; rows 100..119 too
    assert not crop[:40].any() and not crop[:, :20].any() and not crop[140:].any()
    # the rest is the image at its own place
    np.testing.assert_array_equal(crop[40:140, 20:80, :3], image[0:100, 0:60])
    np.testing.assert_array_equal(window_patch(image, w)[40:140, 20:80], image[0:100, 0:60])


def test_fourth_channel_holds_only_this_nucleus():
    frame = (100, 120)
    image = np.full(frame + (3,), 7, np.uint8)
    a, b = rect_mask(40, 50, 40, 50, frame), rect_mask(40, 50, 55, 65, frame)  # b lies in a's window
    crop, w = make_crop(image, a, 1.75)
    assert (w.y0, w.x0, w.y1, w.x1) == (31, 31, 59, 59)  # dy = dx = round(8.75) = 9
    expected = np.zeros(w.shape, np.uint8)
    expected[9:19, 9:19] = 255
    np.testing.assert_array_equal(crop[..., 3], expected)
    crop_b, _ = make_crop(image, b, 3.0)
    assert crop_b[..., 3].sum() == 255 * 100  # a is in b's window too, but not in its channel


def test_equalize_is_per_channel():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 100, (20, 30, 3), dtype=np.uint8)
    img[..., 2] = 50  # a constant channel stays constant; the others are stretched to 255
    eq = equalize(img)
    assert eq[..., 0].max() == 255 and eq[..., 1].max() == 255
    assert len(np.unique(eq[..., 2])) == 1
    import cv2
    np.testing.assert_array_equal(eq[..., 1], cv2.equalizeHist(np.ascontiguousarray(img[..., 1])))


def test_small_crop_centre_padded_and_mapped_back():
    frame = (100, 120)
    nucleus = rect_mask(0, 10, 100, 120, frame)  # in the top-right corner
    crop, w = make_crop(np.full(frame + (3,), 9, np.uint8), nucleus, 1.75)
    assert w.shape == (28, 56)  # dy = round(8.75) = 9, dx = round(17.5) = 18
    fit = fit_to_input(crop.shape, 256)
    assert fit.pad and (fit.dy, fit.dx) == ((256 - 28) // 2, (256 - 56) // 2)
    x = to_input(crop, fit)
    assert x.shape == (256, 256, 4) and x[..., 3].sum() == 255 * 200
    # a prediction covering the whole input maps back to the window's part inside the frame
    back = from_input(np.ones((256, 256), bool), fit, w)
    assert back.box == (82, 0, 120, 19) and back.area == 38 * 19
    # the nucleus channel, predicted back, is the nucleus
    assert from_input(x[..., 3] > 0, fit, w).box == nucleus.box


def test_large_crop_resized_and_mapped_back():
    frame = (400, 400)
    nucleus = rect_mask(100, 200, 150, 250, frame)
    crop, w = make_crop(np.full(frame + (3,), 9, np.uint8), nucleus, 1.0)
    assert w.shape == (200, 200)
    fit = fit_to_input(w.shape, 128)
    assert not fit.pad
    x = to_input(crop, fit)
    assert x.shape == (128, 128, 4) and set(np.unique(x[..., 3])) == {0, 255}
    back = from_input(x[..., 3] > 0, fit, w)
    assert back.box == nucleus.box and back.area == nucleus.area


def test_crop_errors():
    with pytest.raises(ValueError):
        crop_window((5, 5, 5, 9), 1.0, (10, 10))
    with pytest.raises(ValueError):
        from_input(np.zeros((10, 10), bool), fit_to_input((5, 5), 256), Window(0, 0, 5, 5, (10, 10)))


# --------------------------------------------------------------------------- post-processing


def test_nucleus_instances_clean_and_split():
    prob = np.zeros((100, 100), np.float32)
    prob[10:30, 10:30] = 0.9
    prob[18:22, 18:22] = 0.2    # a hole: filled
    prob[60:65, 60:65] = 0.9    # 25 px < 80: dropped
    prob[80, 10:90] = 0.9       # a 1-px line: removed by the opening
    prob[40:60, 40:50] = 0.51   # just above 0.5
    prob[40:60, 70:80] = 0.5    # not above
    nuclei = nucleus_instances(prob, (100, 100))
    assert [(n.box, n.area) for n in nuclei] == [((10, 10, 30, 30), 400), ((40, 40, 50, 60), 200)]
    # at another frame size the mask is brought back (bilinear, > 127): 2x
    big = nucleus_instances(prob, (200, 200))
    assert [n.box for n in big] == [(20, 20, 60, 60), (80, 80, 100, 120)]


def test_cytoplasm_region_largest_component():
    prob = np.zeros((50, 50), np.float32)
    prob[5:25, 5:25] = 0.49
    prob[30:40, 30:40] = 0.9
    prob[5:25, 30:45] = 0.48   # not above the threshold
    region = cytoplasm_region(prob)
    assert region.sum() == 400 and region[5:25, 5:25].all()


NUC = rect_mask(40, 50, 40, 50)  # 100 px


def cell_with_cytoplasm(n: int) -> CropMask:
    """The nucleus plus ``n`` cytoplasm pixels (in row 39 and 50 around it)."""
    m = NUC.to_dense()
    ys, xs = np.nonzero(~m)
    order = np.argsort(np.abs(ys - 45) + np.abs(xs - 45), kind="stable")[:n]
    m[ys[order], xs[order]] = True
    return CropMask.from_dense(m)


def test_ratio_and_with_nucleus():
    cell = cell_with_cytoplasm(50)
    assert cyto_nucleus_ratio(cell, NUC) == 0.5
    region = rect_mask(45, 60, 45, 60)  # overlaps the nucleus
    merged = with_nucleus(region, NUC)
    assert merged.area == 225 + 100 - 25 and merged.box == (40, 40, 60, 60)


def test_filter_keeps_every_scale_in_its_range():
    cells = {0.5: cell_with_cytoplasm(50), 1.75: cell_with_cytoplasm(30), 2.6: cell_with_cytoplasm(30),
             3.0: cell_with_cytoplasm(100)}
    # ratios 0.5 (in [0, 0.8]), 0.3 (< 0.4), 0.3 (in [0.3, 200], bound included), 1.0
    assert aggregate(cells, NUC, "filter") == [0.5, 2.6, 3.0]
    cells[0.5] = cell_with_cytoplasm(81)  # 0.81 > 0.8
    assert aggregate(cells, NUC, "filter") == [2.6, 3.0]


def test_select_smallest_scale_first():
    cells = {0.5: cell_with_cytoplasm(50), 1.75: cell_with_cytoplasm(30), 3.0: cell_with_cytoplasm(100)}
    assert aggregate(cells, NUC, "select") == [0.5]
    cells[0.5] = cell_with_cytoplasm(90)  # 0.9 > 0.8: move on to 1.75
    assert aggregate(cells, NUC, "select") == [1.75]
    assert aggregate(cells, NUC, "select", select_thresholds={0.5: 0.8, 1.75: 0.2, 3.0: 0.2}) == [3.0]
    with pytest.raises(ValueError):
        aggregate(cells, NUC, "vote")


def test_image_cells_to_dump_and_submission(tmp_path):
    cand = [{0.5: (cell_with_cytoplasm(50), 0.9), 1.75: (cell_with_cytoplasm(30), 0.8)}]
    cells = image_cells([NUC], cand, "filter")
    assert [c["scale"] for c in cells] == [0.5]
    dump = validate_dump(make_dump([{"name": "7", "img_id": 7, "height": 100, "width": 120, "cells": cells}]))
    write_submission(dump, tmp_path / "sub")
    m = read_mask(tmp_path / "sub" / "7_1.bmp")
    assert (m == 40).sum() == 100 and (m == 20).sum() == 50
    assert decode(cells[0]["nucleus"]).sum() == 100
    both = image_cells([NUC], cand, "filter", ranges={0.5: (0, 1), 1.75: (0, 1)})
    assert [c["scale"] for c in both] == [0.5, 1.75]


# --------------------------------------------------------------------------- the two-stage predictor


class _StubModel:
    """Stands in for an mmseg model: logits +10 where ``fn(input)`` is true, -10 elsewhere."""

    def __init__(self, fn):
        self.fn = fn

    def data_preprocessor(self, data, training):
        import torch
        return {"inputs": torch.stack(data["inputs"]).float()}

    def inference(self, inputs, metas):
        import torch
        return torch.stack([torch.where(torch.from_numpy(self.fn(x.permute(1, 2, 0).numpy())), 10.0, -10.0)[None]
                            for x in inputs])


def test_predict_image_wires_both_stages():
    pytest.importorskip("torch")
    from segpc.apis.bmdeep import Stage, TwoStage, predict_image

    image = np.full((100, 120, 3), 200, np.uint8)
    image[40:50, 40:50] = 20     # a dark nucleus of 100 px
    image[10:15, 100:105] = 20   # 25 px: 6 px at the input size, dropped (< 20)
    nucleus = Stage(_StubModel(lambda x: x[..., 0] < 100), (50, 60))  # input at half size: 25 px
    # the "cell": the nucleus channel grown by 3 px on every side (16x16 = 256 px, cytoplasm 156)
    grow = Stage(_StubModel(lambda x: ndimage_dilate(x[..., 3] > 0, 3)), (64, 64))
    p = TwoStage(nucleus, {1.75: grow, 3.0: grow}, ranges={1.75: (0.4, 200.0), 3.0: (0.4, 1.0)},
                  min_area=20)
    cells = predict_image(p, image)
    assert [c["scale"] for c in cells] == [1.75]  # ratio 1.56: outside 3.0's range (0.4, 1.0)
    m = decode(cells[0]["cell"])
    assert m.sum() == 256 and m[37:53, 37:53].all() and decode(cells[0]["nucleus"]).sum() == 100
    assert cells[0]["score"] == pytest.approx(1.0, abs=1e-4)
    p.aggregate = "select"
    p.ranges = {1.75: (0.0, 1.0), 3.0: (0.0, 200.0)}
    assert [c["scale"] for c in predict_image(p, image)] == [3.0]


def ndimage_dilate(mask, r):
    from scipy import ndimage
    return ndimage.binary_dilation(mask, structure=np.ones((2 * r + 1, 2 * r + 1), bool))


def _candidates_dump():
    from segpc.bmdeep.postprocess import candidate_cells
    cand = [{0.5: (cell_with_cytoplasm(50), 0.9), 1.75: (cell_with_cytoplasm(30), 0.8),
             3.0: (cell_with_cytoplasm(100), 0.7)}]
    return make_dump([{"name": "7", "img_id": 7, "height": 100, "width": 120,
                       "cells": candidate_cells([NUC], cand)}])


def test_reaggregate_candidates():
    from segpc.bmdeep.postprocess import reaggregate
    dump = validate_dump(_candidates_dump())
    assert [c["nucleus_index"] for c in dump["images"][0]["cells"]] == [0, 0, 0]
    scales = lambda d: [c["scale"] for c in d["images"][0]["cells"]]  # noqa: E731
    assert scales(reaggregate(dump, "filter")) == [0.5, 3.0]   # ratios 0.5, 0.3 (< 0.4), 1.0
    assert scales(reaggregate(dump, "select")) == [0.5]
    assert scales(reaggregate(dump, None, scales=[1.75])) == [1.75]
    assert scales(reaggregate(dump, "select", scales=[1.75, 3.0])) == [1.75]
    assert "nucleus_index" not in reaggregate(dump, "filter")["images"][0]["cells"][0]
    with pytest.raises(ValueError):
        reaggregate(make_dump([{"name": "7", "height": 100, "width": 120, "cells": [
            {k: v for k, v in c.items() if k != "nucleus_index"} for c in dump["images"][0]["cells"]]}]))


def test_compare_aggregations_scores_each_variant(tmp_path):
    import cv2

    from segpc.apis.bmdeep import compare_aggregations
    from segpc.structures import save_dump

    gt = tmp_path / "y"
    gt.mkdir()
    truth = cell_with_cytoplasm(100).to_dense().astype(np.uint8) * 20  # the 3.0 candidate is exact
    cv2.imwrite(str(gt / "7_1.bmp"), truth)
    save_dump(_candidates_dump(), tmp_path / "cand.json")
    rows = dict(compare_aggregations(str(tmp_path), str(tmp_path / "cand.json")))
    assert list(rows) == ["scale 0.5", "scale 1.75", "scale 3", "filter", "select"]
    assert rows["scale 3"].mIoU == 1.0 and rows["filter"].mIoU == 1.0 and rows["filter"].num_pred == 2
    assert rows["scale 0.5"].mIoU == pytest.approx(150 / 200, abs=0.01)  # IoU at 1080x1440: ~0.75
    assert rows["select"].mIoU == rows["scale 0.5"].mIoU


def _dark_nucleus_predictor(nucleus_fn):
    from segpc.apis.bmdeep import Stage, TwoStage

    image = np.full((100, 120, 3), 200, np.uint8)
    image[40:50, 40:50] = 20  # a dark nucleus of 100 px, in the left half
    grow = Stage(_StubModel(lambda x: ndimage_dilate(x[..., 3] > 0, 3)), (64, 64))
    p = TwoStage(Stage(_StubModel(nucleus_fn), (50, 60)), {1.75: grow, 3.0: grow},
                 ranges={1.75: (0.4, 200.0), 3.0: (0.4, 1.0)}, min_area=20)
    return p, image


def test_flip_tta_of_an_equivariant_predictor_changes_nothing():
    """Stages that commute with flips: every view finds the same cell, so the merged cell is the
    single pass's, pixel for pixel, with its score."""
    pytest.importorskip("torch")
    from segpc.apis.bmdeep import predict_image, predict_image_tta

    p, image = _dark_nucleus_predictor(lambda x: x[..., 0] < 100)
    (plain,) = predict_image(p, image)
    (tta,) = predict_image_tta(p, image)
    assert np.array_equal(decode(tta["cell"]), decode(plain["cell"])) and decode(tta["cell"]).sum() == 256
    assert np.array_equal(decode(tta["nucleus"]), decode(plain["nucleus"]))
    assert tta["score"] == pytest.approx(plain["score"]) and tta["bbox"] == plain["bbox"]


def test_flip_tta_scores_a_cell_by_the_views_that_found_it():
    """A nucleus network that only sees the left half of its input finds the nucleus in the
    original and the vertical flip, not in the horizontal and diagonal ones: score 2/4 of the
    single pass's, the same mask."""
    pytest.importorskip("torch")
    from segpc.apis.bmdeep import predict_image, predict_image_tta

    def left_half(x):
        out = x[..., 0] < 100
        out[:, x.shape[1] // 2:] = False
        return out

    p, image = _dark_nucleus_predictor(left_half)
    (plain,) = predict_image(p, image)
    (tta,) = predict_image_tta(p, image)
    assert tta["score"] == pytest.approx(plain["score"] * 2 / 4)
    assert np.array_equal(decode(tta["cell"]), decode(plain["cell"]))
    right = np.ascontiguousarray(image[:, ::-1])  # the nucleus in the right half
    assert predict_image(p, right) == []  # the single pass misses it, the flipped views find it
    (found,) = predict_image_tta(p, right)
    assert found["score"] == pytest.approx(tta["score"])
    assert np.array_equal(decode(found["cell"]), decode(tta["cell"])[:, ::-1])
