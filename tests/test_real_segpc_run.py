"""benchmarks/real_segpc/run.py --ensemble: votes work dirs' prediction dumps and scores them."""
import json

import pytest

from helpers import cell, tool
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
