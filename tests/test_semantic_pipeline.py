"""The semantic path end to end: LabelMe → SegPC split → 3-class maps → U-Net (train.py) →
test.py (cells recovered from the maps, dump, submission) → eval_miou.py."""
import json

import pytest

from helpers import labelme_from_split, printed_miou, tool
from segpc.datasets.synthetic import write_splits

UNET_MICRO = "configs/fixture/unet_micro.py"


@pytest.mark.slow
def test_labelme_to_unet_submission(tmp_path):
    write_splits(tmp_path / "syn", {"train": 8, "validation": 4}, seed=5, size=(96, 128))
    data = tmp_path / "data"
    for split, rings in (("train", False), ("validation", True)):
        labelme_from_split(tmp_path / "syn" / split, tmp_path / "labelme" / split,
                           embed=split == "train", cytoplasm_rings=rings)
        tool("tools/convert_labelme.py", tmp_path / "labelme" / split, data / split, "--no-progress")
        tool("tools/export_semantic.py", data / split, data / "semantic3" / split, "--no-progress")

    work = tmp_path / "work"
    tool("tools/train.py", UNET_MICRO, "--work-dir", work, "--cfg-options", f"data_root={data}")
    ckpts = sorted(work.glob("best_segpc_mIoU_iter_*.pth"))
    assert len(ckpts) == 1
    scalars = [json.loads(line) for line in next(work.glob("*/vis_data/scalars.json")).read_text().splitlines()]
    val = [r for r in scalars if "segpc/mIoU" in r]
    assert len(val) == 2 and {"mIoU", "mDice", "IoU.nucleus", "Dice.cytoplasm"} <= set(val[-1])

    sub, dump = tmp_path / "submission", tmp_path / "pred.json"
    proc = tool("tools/test.py", UNET_MICRO, ckpts[0], "--out", dump, "--submission", sub,
                "--work-dir", work, "--cfg-options", f"data_root={data}")
    masks = sorted(sub.glob("*.bmp"))
    assert masks and all(m.stem.split("_")[0] in {"9", "10", "11", "12"} for m in masks)
    ev = tool("tools/eval_miou.py", data / "validation", sub)
    assert printed_miou(proc.stdout) == printed_miou(ev.stdout)
    assert printed_miou(tool("tools/eval_miou.py", data / "validation", dump).stdout) == printed_miou(ev.stdout)
    assert float(printed_miou(ev.stdout)) > 0.3
