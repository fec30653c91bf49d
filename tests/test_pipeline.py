"""The fixtures through the real tools: train → checkpoint → resume → test → submission → eval_miou
(Mask R-CNN, HTC, SCNet, TTA on a cascade), reproducibility per seed, and a 2-process distributed
run on CPU (gloo) with a distributed validation."""
import json
import os
import subprocess
import sys

import pytest
from mmengine.config import Config

from helpers import MICRO_CONFIG as CONFIG, printed_miou, synthetic_coco, tool
from segpc.structures import load_dump

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    return synthetic_coco(tmp_path_factory.mktemp("synthetic"), {"train": 8, "validation": 4}, seed=3)


@pytest.fixture(scope="module")
def semantic_root(tmp_path_factory):
    return synthetic_coco(tmp_path_factory.mktemp("semantic"), {"train": 4, "validation": 3}, seed=4,
                          semantic=True, empty_prob=0.0)


def scalars(work, run=None) -> list[dict]:
    """mmengine's ``<timestamp>/vis_data/scalars.json`` records of a work dir (of its ``run``-th run)."""
    runs = sorted(p for p in work.iterdir() if (p / "vis_data" / "scalars.json").is_file())
    files = runs if run is None else [runs[run]]
    return [json.loads(line) for f in files for line in (f / "vis_data" / "scalars.json").read_text().splitlines()]


def train_losses(records) -> dict[int, float]:
    return {r["iter"]: r["loss"] for r in records if "loss" in r}


def val_mious(records) -> dict[int, float]:
    return {r["step"]: r["segpc/mIoU"] for r in records if "segpc/mIoU" in r}


def test_train_resume_test_submission_eval(repo_root, synthetic_root, tmp_path):
    work = tmp_path / "work"
    opts = ["--cfg-options", f"data_root={synthetic_root}"]
    tool("tools/train.py", CONFIG, "--work-dir", str(work), *opts)
    for name in ("iter_2.pth", "iter_4.pth", "last_checkpoint"):
        assert (work / name).is_file(), name
    assert list(work.glob("best_segpc_mIoU_iter_*.pth")), "best checkpoint by segpc/mIoU"
    assert sorted(train_losses(scalars(work))) == [1, 2, 3, 4]
    assert sorted(val_mious(scalars(work))) == [2, 4]

    # torch >= 2.6 loads weights-only: mmengine's own checkpoints need segpc's allow-list.
    load = "import torch, sys; ck = torch.load(sys.argv[1]); print(ck['meta']['iter'])"
    plain = tool("-c", load, str(work / "iter_4.pth"), check=False)
    assert plain.returncode != 0 and "weights_only" in plain.stderr
    ok = tool("-c", "import segpc.register; " + load, str(work / "iter_4.pth"))
    assert ok.stdout.strip() == "4"

    # Resume continues from iteration 4 (not from scratch) up to the new max_iters; the
    # checkpoint hook keeps its last two checkpoints across the resume.
    tool("tools/train.py", CONFIG, "--work-dir", str(work), "--resume",
         *opts, "train_cfg.max_iters=6")
    assert sorted(train_losses(scalars(work, run=-1))) == [5, 6]
    assert sorted(p.name for p in work.glob("iter_*.pth")) == ["iter_4.pth", "iter_6.pth"]

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
    assert printed_miou(ev.stdout) == f"{miou_test:.6f}"
    res = json.loads(js.read_text())
    gt_files = list((synthetic_root / "validation" / "y").iterdir())
    with_gt = {f.stem.rsplit("_", 1)[0] for f in gt_files}  # images without cells are not scored
    assert res["num_gt"] == len(gt_files)
    assert res["num_pred"] == sum(len(img["cells"]) for img in dump["images"] if img["name"] in with_gt)
    ev_dump = tool("tools/eval_miou.py", str(synthetic_root / "validation"), str(pred))
    assert printed_miou(ev_dump.stdout) == f"{miou_test:.6f}"


def test_training_is_reproducible_per_seed(synthetic_root, tmp_path):
    """Same seed: the same losses at every iteration and the same validation mIoU; another seed
    changes them (so the equality is not vacuous)."""
    opts = ["--cfg-options", f"data_root={synthetic_root}", "val_evaluator.score_thr=0.0"]
    runs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        tool("tools/train.py", CONFIG, "--work-dir", tmp_path / name, *opts, f"randomness.seed={seed}")
        records = scalars(tmp_path / name)
        runs.append((train_losses(records), val_mious(records)))
    assert sorted(runs[0][0]) == [1, 2, 3, 4] and sorted(runs[0][1]) == [2, 4]
    assert runs[0] == runs[1]
    assert runs[2][0] != runs[0][0]


@pytest.mark.parametrize("family", ["htc", "scnet"])
def test_cascade_train_test_tta(family, semantic_root, tmp_path):
    """HTC and SCNet (semantic branch on the converter's whole-cell maps) through the tools, and
    flip TTA on HTC (a cascade); every printed mIoU is what eval_miou.py gives on the files."""
    config, env = "configs/fixture/cascade_micro.py", {"SEGPC_CASCADE": family}
    opts = ["--cfg-options", f"data_root={semantic_root}"]
    work = tmp_path / "work"
    tool("tools/train.py", config, "--work-dir", work, *opts, "val_evaluator.score_thr=0.0", env=env)
    assert Config.fromfile(str(work / "cascade_micro.py")).model.type == {"htc": "HybridTaskCascade", "scnet": "SCNet"}[family]
    assert sorted(train_losses(scalars(work))) == [1, 2, 3, 4]
    losses = [r for r in scalars(work) if "loss" in r]
    assert all(r["loss_semantic_seg"] > 0 for r in losses), "the semantic branch learns"
    ckpt = work / "iter_4.pth"
    for extra in ([], ["--tta"]) if family == "htc" else ([],):
        pred, sub = tmp_path / f"pred{len(extra)}.json", tmp_path / f"sub{len(extra)}"
        out = tool("tools/test.py", config, ckpt, *extra, "--out", pred, "--submission", sub,
                   "--score-thr", "0", "--work-dir", tmp_path / "test", *opts, env=env)
        dump = load_dump(pred)
        assert [img["name"] for img in dump["images"]] == ["5", "6", "7"]
        n = sum(len(img["cells"]) for img in dump["images"])
        assert n > 0 and len(list(sub.glob("*.bmp"))) == n
        ev = tool("tools/eval_miou.py", semantic_root / "validation", sub)
        assert printed_miou(ev.stdout) == printed_miou(out.stdout) and float(printed_miou(out.stdout)) > 0
    if family == "htc":  # the flipped views changed the predictions
        assert load_dump(tmp_path / "pred1.json")["images"] != load_dump(tmp_path / "pred0.json")["images"]


def test_distributed_two_processes_on_cpu(repo_root, synthetic_root, tmp_path):
    """torchrun with 2 gloo processes trains and validates: each rank predicts half of the
    validation images, SegPCMetric gathers them and rank 0 writes the dump; the mIoU equals a
    single-process test of the checkpoint saved with it."""
    work, dist_pred = tmp_path / "dist", tmp_path / "dist.json"
    port = str(29500 + os.getpid() % 1000)
    proc = subprocess.run(
        ["bash", "tools/dist_train.sh", CONFIG, "2", "--work-dir", str(work),
         "--cfg-options", f"data_root={synthetic_root}", "train_cfg.val_interval=4",
         "val_evaluator.score_thr=0.0", f"val_evaluator.outfile={dist_pred}"],
        cwd=repo_root, capture_output=True, text=True,
        env={**os.environ, "PYTHON": sys.executable, "PORT": port, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    dumped = Config.fromfile(str(work / "mask_rcnn_micro.py"))  # the config as the runner saw it
    assert dumped.launcher == "pytorch" and dumped.env_cfg.dist_cfg.backend == "gloo"
    assert dumped.model_wrapper_cfg.device_ids is None
    assert sorted(train_losses(scalars(work))) == [1, 2, 3, 4]
    (dist_miou,) = val_mious(scalars(work)).values()
    dist_dump = load_dump(dist_pred)
    assert [img["name"] for img in dist_dump["images"]] == ["9", "10", "11", "12"]  # both ranks' images

    (best,) = work.glob("best_segpc_mIoU_iter_4.pth")
    pred = tmp_path / "single.json"
    out = tool("tools/test.py", CONFIG, best, "--out", pred, "--score-thr", "0.0",
               "--work-dir", tmp_path / "test", "--cfg-options", f"data_root={synthetic_root}")
    assert printed_miou(out.stdout) == f"{dist_miou:.6f}"
    assert load_dump(pred)["images"] == dist_dump["images"]


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
