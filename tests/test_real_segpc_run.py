"""benchmarks/real_segpc/run.py --ensemble: votes work dirs' prediction dumps and scores them."""
import json

import pytest

from helpers import cell, load_script, tool
from segpc.io import read_mask
from segpc.structures import make_dump, save_dump


@pytest.fixture(scope="module")
def root(real_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("real512")
    tool("benchmarks/real_segpc/run.py", "--data", str(real_data), "--root", str(root), "--prepare-only")
    return root


def truth_dump(val_dir, drop_every=0):
    """The validation ground truth as a prediction dump (every ``drop_every``-th cell left out)."""
    images = []
    for x in sorted((val_dir / "x").iterdir()):
        cells, masks = [], sorted((val_dir / "y").glob(f"{x.stem}_*"))
        for k, path in enumerate(masks):
            m = read_mask(path)
            if not (drop_every and k % drop_every == 0):
                cells.append(cell(m > 0, nucleus=m == 40))
        h, w = m.shape
        images.append({"name": x.stem, "img_id": int(x.stem), "height": h, "width": w, "cells": cells})
    return make_dump(images)


@pytest.mark.slow
def test_ensemble_of_work_dirs_is_voted_and_scored(real_data, root, tmp_path):
    val = root / "validation"
    dirs = [tmp_path / n for n in ("a", "b", "c")]
    for d, drop in zip(dirs, (2, 0, 0)):  # the reference misses half the cells; the others add them
        d.mkdir()
        save_dump(truth_dump(val, drop), d / "predictions.json")
    out = tmp_path / "ens"
    run = ["benchmarks/real_segpc/run.py", "--data", str(real_data), "--root", str(root)]
    tool(*run, "--ensemble", *map(str, dirs), "--work-dir", str(out))
    res = json.loads((out / "results.json").read_text())
    assert res["mIoU"] == pytest.approx(1.0) and res["num_gt"] == res["num_pred"] == 362
    assert res["votes"]["added"] > 0 and res["votes"]["voted"] > 0
    assert (out / "results.md").is_file() and len(list((out / "submission").glob("*.bmp"))) == 362

    missing = tool(*run, "--tta", "--ensemble", *map(str, dirs), "--work-dir", str(out), check=False)
    assert missing.returncode == 2 and str(dirs[0] / "predictions_tta.json") in missing.stderr


@pytest.mark.slow
def test_bmdeep_trains_every_stage_predicts_and_scores(tmp_path):
    """--bmdeep SPEC: each network of the spec trained into its own folder, the validation images
    predicted with both stages, the submission scored with every scale and both aggregations;
    --skip-train reuses the checkpoints and the recorded training times."""
    from segpc.datasets.synthetic import write_dataset

    write_dataset(tmp_path / "data" / "train_512", 10, seed=5, size=(96, 128))
    work = tmp_path / "w"
    run = ["benchmarks/real_segpc/run.py", "--data", str(tmp_path / "data"), "--root", str(tmp_path / "root"),
           "--num-val", "2", "--bmdeep", "configs/bmdeep/fixture/two_stage_tiny.py", "--work-dir", str(work)]
    tool(*run)
    res = json.loads((work / "results.json").read_text())
    assert [s["stage"] for s in res["stages"]] == ["nucleus", "cytoplasm 1.75", "cytoplasm 3"]
    for st, sub in zip(res["stages"], ("nucleus", "cytoplasm_1.75", "cytoplasm_3")):
        assert st["checkpoint"] == str(work / sub / "iter_40.pth") and st["train_s"] > 0
        assert st["mIoU"] is not None and st["s_per_iter"] > 0
    assert res["num_gt"] > 0 and res["num_pred"] > 0
    assert set(res["variants"]) == {"scale 1.75", "scale 3", "filter", "select"}
    assert res["variants"]["filter"]["mIoU"] == pytest.approx(res["mIoU"])  # the spec's aggregate
    assert res["variants"]["filter"]["num_pred"] == res["num_pred"] == len(list((work / "prediction" / "submission").iterdir()))
    assert res["train_s"] == pytest.approx(sum(s["train_s"] for s in res["stages"]))

    tool(*run, "--skip-train")
    again = json.loads((work / "results.json").read_text())
    assert again["mIoU"] == res["mIoU"] and [s["train_s"] for s in again["stages"]] == [s["train_s"] for s in res["stages"]]

    tool(*run, "--skip-train", "--tta")  # beside the single pass, which stays
    tta = json.loads((work / "results_tta.json").read_text())
    assert tta["tta"] and tta["variants"] == {} and tta["num_gt"] == res["num_gt"]
    assert tta["num_pred"] == len(list((work / "prediction_tta" / "submission").iterdir()))
    assert json.loads((work / "results.json").read_text()) == again

    bad = tool(*run[:-4], "--bmdeep", str(tmp_path / "none.py"), "--work-dir", str(work), check=False)
    assert bad.returncode == 2 and "none.py" in bad.stderr


def test_test_variants_write_beside_each_other():
    """--tta and --score-thr outputs get their own suffix, so one work dir holds every variant."""
    bench = load_script("benchmarks/real_segpc/run.py")
    assert [bench.output_suffix(t, s) for t, s in ((False, None), (True, None), (False, 0.05), (True, 0.3))] == \
        ["", "_tta", "_thr0.05", "_tta_thr0.3"]
    with pytest.raises(SystemExit):  # the two-stage method has its own test path
        bench.parse_args(["--bmdeep", "configs/cpu/bmdeep/two_stage_real512.py", "--score-thr", "0.1"])
