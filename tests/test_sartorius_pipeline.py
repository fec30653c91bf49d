"""The Sartorius path through the real tools: CSV → COCO → train (fixture) → test (+ flip TTA) →
prediction dump and submission CSV → eval_kaggle_ap, which must print the metric's own score."""
import csv
import re

import pytest

from helpers import tool
from segpc.datasets.sartorius_synthetic import write_sartorius_synthetic
from segpc.structures import load_dump

pytestmark = pytest.mark.slow
CONFIG = "configs/sartorius/mask_rcnn_fixture.py"


def printed_score(stdout: str) -> str:
    return re.findall(r"^score: ([0-9.]+)$", stdout, re.M)[-1]


def test_csv_coco_train_predict_submission_score(tmp_path):
    root = tmp_path / "data"
    write_sartorius_synthetic(root, 4, seed=0, split="train", max_cells=12)
    val_ids = write_sartorius_synthetic(root, 2, seed=1, split="val", max_cells=12)
    for split in ("train", "val"):
        tool("tools/convert_sartorius.py", root / f"{split}.csv", root / split,
             root / "annotations" / f"{split}.json")
    work = tmp_path / "work"
    opts = ["--cfg-options", f"data_root={root}"]
    tool("tools/train.py", CONFIG, "--work-dir", work, *opts)
    assert list(work.glob("best_sartorius_AP_iter_*.pth")), "best checkpoint by sartorius/AP"

    pred, sub = tmp_path / "pred.json", tmp_path / "sub.csv"
    out = tool("tools/test.py", CONFIG, work / "iter_4.pth", "--out", pred, "--submission", sub,
               "--score-thr", "0.0", *opts)
    score = printed_score(out.stdout)
    dump = load_dump(pred)
    assert sorted(img["name"] for img in dump["images"]) == sorted(val_ids)
    assert all(c["category"] in ("shsy5y", "astro", "cort") for img in dump["images"] for c in img["cells"])
    rows = list(csv.DictReader(open(sub)))
    assert {r["id"] for r in rows} == set(val_ids)

    # The submission scores what the metric reported; the dump gives the same submission.
    ev = tool("tools/eval_kaggle_ap.py", root / "val.csv", sub)
    assert printed_score(ev.stdout) == score
    sub2 = tmp_path / "sub2.csv"
    tool("tools/sartorius_submission.py", pred, sub2, "--score-thr", "0")
    assert sub2.read_bytes() == sub.read_bytes()

    # Flip TTA runs on the same checkpoint and writes a dump of the same images.
    tta = tmp_path / "tta.json"
    out = tool("tools/test.py", CONFIG, work / "iter_4.pth", "--tta", "--out", tta, *opts)
    assert printed_score(out.stdout)
    assert sorted(img["name"] for img in load_dump(tta)["images"]) == sorted(val_ids)
