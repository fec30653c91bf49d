"""The fixture through the real tools: train → checkpoint → resume → test → submission → eval_miou,
and a 2-process distributed run on CPU (gloo)."""
import json
import os
import subprocess
import sys

import pytest

from helpers import MICRO_CONFIG as CONFIG, printed_miou, synthetic_coco, tool
from segpc.structures import load_dump

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    return synthetic_coco(tmp_path_factory.mktemp("synthetic"), {"train": 8, "validation": 4}, seed=3)


def test_train_resume_test_submission_eval(repo_root, synthetic_root, tmp_path):
    work = tmp_path / "work"
    opts = ["--cfg-options", f"data_root={synthetic_root}"]
    tool("tools/train.py", CONFIG, "--work-dir", str(work), *opts)
    for name in ("iter_2.pth", "iter_4.pth", "last_checkpoint"):
        assert (work / name).is_file(), name
    assert list(work.glob("best_segpc_mIoU_iter_*.pth")), "best checkpoint by segpc/mIoU"

    # torch >= 2.6 loads weights-only: mmengine's own checkpoints need segpc's allow-list.
    load = "import torch, sys; ck = torch.load(sys.argv[1]); print(ck['meta']['iter'])"
    plain = tool("-c", load, str(work / "iter_4.pth"), check=False)
    assert plain.returncode != 0 and "weights_only" in plain.stderr
    ok = tool("-c", "import segpc.register; " + load, str(work / "iter_4.pth"))
    assert ok.stdout.strip() == "4"

    # Resume continues from iteration 4 (not from scratch) up to the new max_iters.
    tool("tools/train.py", CONFIG, "--work-dir", str(work), "--resume",
         *opts, "train_cfg.max_iters=6")
    log = "\n".join(p.read_text() for p in work.glob("*/*.log"))
    assert "resumed epoch: 0, iter: 4" in log
    assert (work / "iter_6.pth").is_file()
    assert not (work / "iter_2.pth").exists() or (work / "iter_6.pth").stat().st_mtime > 0

    pred, sub = tmp_path / "pred.json", tmp_path / "submission"
    out = tool("tools/test.py", CONFIG, str(work / "iter_6.pth"), "--out", str(pred),
               "--submission", str(sub), "--score-thr", "0.0", *opts)
    miou_test = float(printed_miou(out.stdout))
    dump = load_dump(pred)
    assert [img["name"] for img in dump["images"]] == ["9", "10", "11", "12"]
    n_cells = sum(len(img["cells"]) for img in dump["images"])
    assert len(list(sub.glob("*.bmp"))) == n_cells
    for img in dump["images"]:
        for k, cell in enumerate(img["cells"], start=1):
            assert (sub / f"{img['name']}_{k}.bmp").is_file()
            assert cell["nucleus"] is None or cell["nucleus"]["size"] == [96, 128]

    # The submission files and the dump score exactly what the metric reported.
    js = tmp_path / "miou.json"
    ev = tool("tools/eval_miou.py", str(synthetic_root / "validation"), str(sub), "--json", str(js))
    assert f"mIoU: {miou_test:.6f}" in ev.stdout
    res = json.loads(js.read_text())
    gt_files = list((synthetic_root / "validation" / "y").iterdir())
    with_gt = {f.stem.rsplit("_", 1)[0] for f in gt_files}  # images without cells are not scored
    assert res["num_gt"] == len(gt_files)
    assert res["num_pred"] == sum(len(img["cells"]) for img in dump["images"] if img["name"] in with_gt)
    ev_dump = tool("tools/eval_miou.py", str(synthetic_root / "validation"), str(pred))
    assert f"mIoU: {miou_test:.6f}" in ev_dump.stdout


def test_distributed_two_processes_on_cpu(repo_root, synthetic_root, tmp_path):
    work = tmp_path / "dist"
    port = str(29500 + os.getpid() % 1000)
    proc = subprocess.run(
        ["bash", "tools/dist_train.sh", CONFIG, "2", "--work-dir", str(work),
         "--cfg-options", f"data_root={synthetic_root}", "train_cfg.val_interval=100"],
        cwd=repo_root, capture_output=True, text=True,
        env={**os.environ, "PYTHON": sys.executable, "PORT": port, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = "\n".join(p.read_text() for p in work.glob("*/*.log"))
    assert "Distributed training: True" in log and "GPU number: 2" in log  # i.e. world size 2
    assert "dist_cfg: {'backend': 'gloo'}" in log
    assert "Iter(train) [4/4]" in log
    assert (work / "iter_4.pth").is_file()


@pytest.mark.parametrize("config", ["configs/mask_rcnn_resnet50.py", "configs/htc_resnest50.py"])
def test_train_without_data_is_one_line(config, tmp_path):
    proc = tool("tools/train.py", config,
                "--work-dir", str(tmp_path / "w"), "--cfg-options", f"data_root={tmp_path}/nowhere",
                check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {tmp_path}/nowhere/annotations/train.json: annotation file not found")
    assert "make demo" in lines[0]
