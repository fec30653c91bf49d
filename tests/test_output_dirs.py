"""Output folders: a tool replaces only what it wrote itself (segpc.io.check_output_dir), and the
real-data benchmark removes only its own links; the user's files survive, byte for byte."""
import os
from pathlib import Path

import pytest
import torch

from helpers import cell, load_script, rect, synthetic_coco, tool
from segpc.apis.predict import write_outputs
from segpc.cli import run
from segpc.io import SUBMISSION_FILES, SegPCError, atomic_dir, check_output_dir
from segpc.structures import make_dump, save_dump, write_submission

REPO = Path(__file__).resolve().parents[1]
CKPT = "best_segpc_mIoU_epoch_12.pth"
PAYLOAD = b"weights\x00\x01 a user's checkpoint"


def dump(name="1"):
    return make_dump([{"name": name, "img_id": 1, "height": 40, "width": 60,
                       "cells": [cell(rect(2, 12, 2, 12), 0.9, rect(4, 9, 4, 9))]}])


def user_folder(path: Path) -> Path:
    """A folder the user owns: a checkpoint beside a file that looks like a submission's."""
    path.mkdir(parents=True)
    (path / CKPT).write_bytes(PAYLOAD)
    (path / "1_1.bmp").write_bytes(b"old")
    return path


def assert_untouched(path: Path):
    assert sorted(p.name for p in path.iterdir()) == ["1_1.bmp", CKPT]
    assert (path / CKPT).read_bytes() == PAYLOAD and (path / "1_1.bmp").read_bytes() == b"old"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary left beside it


@pytest.mark.parametrize("overwrite", [False, True])
def test_submission_never_replaces_a_folder_with_other_files(tmp_path, overwrite):
    d = user_folder(tmp_path / "d")
    with pytest.raises(SegPCError) as e:
        write_submission(dump(), d, overwrite=overwrite)
    assert e.value.path == str(d) and CKPT in e.value.problem
    assert_untouched(d)


def test_previous_submission_replaced_only_with_overwrite(tmp_path):
    d = tmp_path / "sub"
    assert write_submission(dump("7"), d) == 1
    with pytest.raises(SegPCError, match="--overwrite"):
        write_submission(dump("8"), d)
    assert [p.name for p in d.iterdir()] == ["7_1.bmp"]
    write_submission(dump("8"), d, overwrite=True)
    assert [p.name for p in d.iterdir()] == ["8_1.bmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]  # no temporaries left
    (tmp_path / "empty").mkdir()
    assert write_submission(dump(), tmp_path / "empty") == 1  # an empty folder is fine


def test_check_output_dir_nested_patterns(tmp_path):
    owns = (r"a\.csv", r"sub/[0-9]+\.png")
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "a.csv").write_text("")
    (d / "sub" / "3.png").write_text("")
    check_output_dir(d, owns, overwrite=True)
    (d / "sub" / "notes.txt").write_text("mine")
    with pytest.raises(SegPCError, match="sub/notes.txt"):
        check_output_dir(d, owns, overwrite=True)
    (d / "sub" / "notes.txt").unlink()
    (d / "other").mkdir()  # an empty folder no pattern names is the user's too
    with pytest.raises(SegPCError, match="'other'"):
        check_output_dir(d, owns, overwrite=True)
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(SegPCError, match="not a folder"):
        check_output_dir(f, owns, overwrite=True)


def test_atomic_dir_rechecks_before_the_swap(tmp_path):
    d = tmp_path / "sub"
    write_submission(dump(), d)
    with pytest.raises(SegPCError):
        with atomic_dir(d, SUBMISSION_FILES, overwrite=True) as tmp:
            (tmp / "2_1.bmp").write_bytes(b"new")
            (d / CKPT).write_bytes(PAYLOAD)  # the user saves a file there meanwhile
    assert (d / CKPT).read_bytes() == PAYLOAD and (d / "1_1.bmp").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


def test_predict_outputs_and_metric_refuse_a_user_folder(tmp_path):
    from segpc.evaluation.metric import SegPCMetric

    d = user_folder(tmp_path / "d")
    with pytest.raises(SegPCError):
        write_outputs(dump(), {}, d, overwrite=True)
    with pytest.raises(SegPCError):
        SegPCMetric(format_only=True, submission_dir=str(d), overwrite=True)
    assert_untouched(d)


def test_ensemble_cli_refuses_before_any_work(tmp_path):
    p = tmp_path / "a.json"
    save_dump(dump(), p)
    d = user_folder(tmp_path / "d")
    proc = tool("tools/ensemble.py", p, p, "--out", tmp_path / "e.json", "--submission", d, "--overwrite",
                check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and str(d) in proc.stderr
    assert_untouched(d)
    assert not (tmp_path / "e.json").exists()


def test_worst_cells_cli_refuses_a_user_folder(tmp_path):
    root = synthetic_coco(tmp_path / "s", {"validation": 2}, seed=0, size=(64, 96))
    d = user_folder(tmp_path / "d")
    worst_cells = load_script("tools/worst_cells.py")
    assert run(worst_cells.main, [str(root / "validation"), str(root / "validation" / "y"), str(d),
                                  "--overwrite"]) == 2
    assert_untouched(d)
    out = tmp_path / "report"
    assert run(worst_cells.main, [str(root / "validation"), str(root / "validation" / "y"), str(out)]) == 0
    assert run(worst_cells.main, [str(root / "validation"), str(root / "validation" / "y"), str(out)]) == 2
    assert run(worst_cells.main, [str(root / "validation"), str(root / "validation" / "y"), str(out),
                                  "--overwrite"]) == 0
    assert {p.name for p in out.iterdir()} == {"crops", "index.csv", "index.md"}


@pytest.mark.slow
def test_test_cli_refuses_a_user_folder(tmp_path):
    root = synthetic_coco(tmp_path / "s", {"validation": 1}, seed=0, size=(64, 96))
    d = user_folder(tmp_path / "d")
    ckpt = tmp_path / "model.pth"
    torch.save({"state_dict": {}}, ckpt)  # a valid file, never loaded: the folder is refused first
    proc = tool("tools/test.py", "configs/fixture/mask_rcnn_micro.py", ckpt, "--submission", d, "--overwrite",
                "--work-dir", tmp_path / "work", "--cfg-options", f"data_root={root}", check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.splitlines()[-1].startswith(f"error: {d}: ") and "Traceback" not in proc.stderr
    assert_untouched(d)


# --------------------------------------------------------------------------- benchmarks/real_segpc/run.py


def test_real_segpc_prepare_keeps_a_real_data_set(tmp_path):
    bench = load_script("benchmarks/real_segpc/run.py")
    source = synthetic_coco(tmp_path / "src", {"set": 4}, seed=0, size=(64, 96)) / "set"
    split = {"set": "set", "seed": 0, "num_val": 1, "train": ["1", "2", "3"], "validation": ["4"]}

    # --root naming a user's data set (real files in train/x): refused, nothing deleted
    user = tmp_path / "segpc"
    (user / "train" / "x").mkdir(parents=True)
    (user / "train" / "x" / "1.bmp").write_bytes(PAYLOAD)
    with pytest.raises(SegPCError) as e:
        bench.prepare(source, user, split)
    assert e.value.path == str(user / "train" / "x" / "1.bmp")
    assert (user / "train" / "x" / "1.bmp").read_bytes() == PAYLOAD
    assert sorted(p.relative_to(user).as_posix() for p in user.rglob("*")) == ["train", "train/x", "train/x/1.bmp"]

    # its own links are replaced; what they point to survives
    root = tmp_path / "root"
    bench.prepare(source, root, split)
    assert all(p.is_symlink() for p in (root / "train" / "x").iterdir())
    split2 = {**split, "train": ["1", "2", "4"], "validation": ["3"]}
    bench.prepare(source, root, split2)
    assert sorted(p.name for p in (root / "validation" / "x").iterdir()) == ["3.bmp"]
    assert sorted(p.name for p in (source / "x").iterdir()) == ["1.bmp", "2.bmp", "3.bmp", "4.bmp"]
    assert all(os.path.getsize(p) > 0 for p in (source / "x").iterdir())
