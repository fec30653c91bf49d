"""PanNuke PQ (segpc/evaluation/pq.py) against the official code (tests/pannuke_official.py),
hand-computed cases and tools/eval_pq.py."""
import json
import math

import numpy as np
import pytest

from helpers import tool
from pannuke_official import get_fast_pq, official_metrics, remap_label
from pannuke_synthetic import perturb, random_split
from segpc.datasets.pannuke import synthetic_image
from segpc.evaluation.pq import TISSUES, evaluate, fast_pq, relabel, summarize


def assert_same(ours, official):
    def close(a, b):
        return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-6

    assert close(ours.bPQ, official["bPQ"]), (ours.bPQ, official["bPQ"])
    assert close(ours.mPQ, official["mPQ"]), (ours.mPQ, official["mPQ"])
    for name, v in ours.per_class.items():
        assert close(v, official[name]), name
    for name in TISSUES:
        d = ours.per_tissue.get(name, {"bPQ": math.nan, "mPQ": math.nan})
        assert close(d["bPQ"], official["tissue_bPQ"][name]), name
        assert close(d["mPQ"], official["tissue_mPQ"][name]), name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parity_with_official_code_on_random_maps(seed):
    true, pred, types = random_split(12, seed)
    ours = evaluate(true, pred, types)
    official = official_metrics(true, pred, types)
    assert_same(ours, official)
    assert 0.2 < ours.bPQ < 0.95  # a non-trivial mix of matches and errors


def test_parity_edge_cases():
    h = w = 16
    true = np.zeros((5, h, w, 6))
    pred = np.zeros((5, h, w, 6))
    true[0, 2:6, 2:6, 0] = 7            # image 0: IoU exactly 0.5 (8 of 16 px) -> no match
    pred[0, 2:6, 2:4, 0] = 3
    true[1, 2:6, 2:6, 1] = 11           # image 1: IoU 0.75 (12 of 16 px) -> a match
    pred[1, 2:6, 2:5, 1] = 40
    true[1, 8:12, 8:12, 2] = 900        # a second class with an empty prediction
    pred[2, 1:5, 1:5, 3] = 5            # image 2: empty ground truth, one prediction
    true[3, 0:8, 0:8, 4] = 2            # image 3: empty prediction
    # image 4: both empty
    types = np.array(["Breast", "Breast", "Colon", "Colon", "Liver"])
    ours = evaluate(true, pred, types)
    assert_same(ours, official_metrics(true, pred, types))
    eps = 1e-6
    assert ours.image_bpq[0] == 0.0 and np.isnan(ours.image_pq[0]).sum() == 4
    # image 1: class 1 matched (PQ = 0.75 / (1 + 1e-6)), class 2 missed (0); binary: 1 TP, 1 FN
    assert ours.image_pq[1, 1] == pytest.approx(0.75 / (1 + eps), abs=1e-12)
    assert ours.image_pq[1, 2] == 0.0
    assert ours.image_bpq[1] == pytest.approx((1 / 1.5) * 0.75 / (1 + eps), abs=1e-12)
    assert np.isnan(ours.image_bpq[2]) and np.isnan(ours.image_pq[2]).all()
    assert ours.image_bpq[3] == 0.0
    assert np.isnan(ours.image_bpq[4])
    # Breast: bPQ mean(0, 0.5) ; Colon: only image 3 (0) ; Liver: nothing defined -> skipped
    assert set(ours.per_tissue) == {"Breast", "Colon", "Liver"} and np.isnan(ours.per_tissue["Liver"]["bPQ"])
    assert ours.bPQ == pytest.approx((ours.image_bpq[1] / 2 + 0.0) / 2, abs=1e-12)
    assert np.isnan(ours.per_class["Dead"])  # absent from every ground truth


def test_fast_pq_and_relabel_match_official_functions():
    rng = np.random.default_rng(5)
    for _ in range(20):
        _, t = synthetic_image(rng, 48, max_nuclei=12, empty_prob=0.0)
        p = perturb(t, rng)
        t1 = remap_label(t[..., 0].astype("int32"))
        p1 = remap_label(p[..., 0].astype("int32"))
        ours_t, n = relabel(t[..., 0])
        assert np.array_equal(ours_t, t1) and n == len(np.unique(t1)) - 1
        if n:
            [dq, sq, pq], _ = get_fast_pq(t1, p1)
            assert np.allclose(fast_pq(t[..., 0], p[..., 0]), (dq, sq, pq), atol=1e-12)


def test_summarize_averages_tissues_then_images():
    # two tissues: A has images with bPQ 1.0 and 0.0, B one image with 0.4 -> (0.5 + 0.4) / 2
    bpq = np.array([1.0, 0.0, 0.4])
    pq = np.array([[1.0, np.nan, np.nan, np.nan, 0.5], [0.0] * 5, [np.nan] * 4 + [0.2]])
    res = summarize(bpq, pq, ["A", "A", "B"])
    assert res.bPQ == pytest.approx(0.45)
    assert res.mPQ == pytest.approx(((0.75 + 0.0) / 2 + 0.2) / 2)
    assert res.per_class["Epithelial"] == pytest.approx((0.5 + 0.0 + 0.2) / 3)
    assert res.per_class["Inflammatory"] == 0.0


def test_eval_pq_tool(tmp_path):
    true, pred, types = random_split(6, 7, size=32)
    for name, arr in (("true", true), ("pred", pred), ("types", types)):
        np.save(tmp_path / f"{name}.npy", arr)
    out = tool("tools/eval_pq.py", tmp_path / "true.npy", tmp_path / "pred.npy", tmp_path / "types.npy",
               "--json", tmp_path / "pq.json")
    official = official_metrics(true, pred, types)
    assert f"bPQ: {official['bPQ']:.6f}" in out.stdout.splitlines()
    assert f"mPQ: {official['mPQ']:.6f}" in out.stdout.splitlines()
    assert f"PQ Neoplastic: {official['Neoplastic']:.6f}" in out.stdout.splitlines()
    js = json.loads((tmp_path / "pq.json").read_text())
    assert js["bPQ"] == pytest.approx(official["bPQ"], abs=1e-12) and js["num_images"] == 6


@pytest.mark.parametrize("bad, problem", [
    ("pred_shape", "does not match"), ("types_len", "tissue types for"), ("layout", "(N, H, W, 6)"),
    ("pickle", "not a plain .npy"), ("missing", "file not found")])
def test_eval_pq_bad_input_is_one_line(tmp_path, bad, problem):
    true, pred, types = random_split(3, 1, size=16)
    files = {n: tmp_path / f"{n}.npy" for n in ("true", "pred", "types")}
    if bad == "pred_shape":
        pred = pred[:2]
    elif bad == "types_len":
        types = types[:2]
    elif bad == "layout":
        pred = pred[..., 0]
    for n, arr in (("true", true), ("pred", pred), ("types", types)):
        if bad == "pickle" and n == "types":
            np.save(files[n], np.array(list(types), dtype=object), allow_pickle=True)
        elif not (bad == "missing" and n == "pred"):
            np.save(files[n], arr)
    culprit = files["types"] if bad in ("types_len", "pickle") else files["pred"]
    proc = tool("tools/eval_pq.py", files["true"], files["pred"], files["types"], check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"error: {culprit}: ")
    assert problem in proc.stderr
