"""The CPU-side parts of the GPU check (benchmarks/gpu/) and of `make setup`'s CUDA path."""
import json
import subprocess
import sys
import types

import pytest
from mmengine.config import ConfigDict

from helpers import load_script


@pytest.fixture(scope="module")
def bench(repo_root):
    return load_script("benchmarks/gpu/bench_gpu.py")


@pytest.fixture(scope="module")
def cuda_toolkit(repo_root):
    return load_script("scripts/cuda_toolkit.py")


def _rec(step, time, data_time, memory=None, loss=1.0):
    r = {"lr": 0.02, "data_time": data_time, "loss": loss, "time": time, "iter": step, "step": step}
    return r | ({"memory": memory} if memory is not None else {})


def test_scalars_stats_drops_the_warmup_window(bench, tmp_path):
    recs = [_rec(10, 0.9, 0.5, 3000), _rec(20, 0.25, 0.05, 5120), {"segpc/mIoU": 0.1, "step": 20},
            _rec(30, 0.15, 0.03, 4096, loss=0.75)]
    path = tmp_path / "scalars.json"
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    s = bench.scalars_stats(path, batch_size=2)
    assert s["s_per_iter"] == pytest.approx(0.2)  # windows 2 and 3 only
    assert s["data_s_per_iter"] == pytest.approx(0.04)
    assert s["images_per_s"] == pytest.approx(10.0)
    assert s["peak_mem_mib"] == 5120  # the warm-up window's memory counts, not its time
    assert (s["iters_logged"], s["iters_timed"], s["last_loss"]) == (30, [20, 30], 0.75)


def test_scalars_stats_single_window_and_cpu(bench, tmp_path):
    path = tmp_path / "scalars.json"
    path.write_text(json.dumps(_rec(2, 0.5, 0.1)) + "\n")
    s = bench.scalars_stats(path, batch_size=4)
    assert (s["s_per_iter"], s["images_per_s"], s["peak_mem_mib"]) == (0.5, 8.0, None)
    path.write_text(json.dumps({"segpc/mIoU": 0.0, "step": 1}) + "\n")
    assert bench.scalars_stats(path, 2) == {"iters_logged": 0}


def test_train_options_fix_the_iterations(bench):
    epochs = ConfigDict(train_cfg=dict(type="EpochBasedTrainLoop", max_epochs=12, val_interval=1),
                        train_dataloader=dict(batch_size=2))
    o = bench.train_options(epochs, 30, "data/x", 10)
    assert o["train_dataloader.dataset.indices"] == 60 and o["train_cfg.max_epochs"] == 1
    assert o["train_cfg.val_begin"] == 2 and o["model.backbone.init_cfg"] is None  # no validation
    iters = ConfigDict(train_cfg=dict(max_iters=4, val_interval=2), train_dataloader=dict(batch_size=2))
    o = bench.train_options(iters, 3, "data/x", 1)
    assert (o["train_cfg.max_iters"], o["train_cfg.val_begin"], o["data_root"]) == (3, 4, "data/x")
    assert "train_dataloader.dataset.indices" not in o
    assert bench.cfg_args({"a.b": None, "c": 2}) == ["--cfg-options", "a.b=None", "c=2"]


def test_parse_miou_and_budget(bench, tmp_path):
    assert bench.parse_miou("x\nmIoU: 0.812500\nnum_gt: 16  num_pred: 20\n") == \
        {"mIoU": 0.8125, "num_gt": 16, "num_pred": 20}
    log = tmp_path / "log"
    rc, dt, out = bench.run_logged([sys.executable, "-c", "print(1)"], log, timeout=2)
    assert (rc, dt, out) == (None, 0.0, "") and "skipped" in log.read_text()  # no time left: not run
    rc, _, out = bench.run_logged([sys.executable, "-c", "print('hi')"], log, timeout=60)
    assert rc == 0 and out.strip() == "hi" and "[rc=0" in log.read_text()


def test_bench_arguments(bench):
    a = bench.parse_args(["--out-dir", "o", "--dry-run"])
    assert (a.models, a.iters, a.log_interval, a.test_images) == ([bench.DRY_MODEL], 2, 1, 2)
    a = bench.parse_args(["--out-dir", "o"])
    assert (a.models, a.iters, a.log_interval, a.test_images) == (bench.ZOO, 30, 10, None)
    with pytest.raises(SystemExit):
        bench.parse_args(["--out-dir", "o", "--iters", "0"])


@pytest.mark.parametrize("args", [[], ["bogus"], ["run"], ["dry-run", "--out", "x", "--jobs", "0"],
                                  ["run", "--out", "x", "--budget", "soon"], ["run", "--out", "x", "--nope"]])
def test_check_sh_rejects_bad_arguments(repo_root, tmp_path, args):
    args = [a if a != "x" else str(tmp_path / "out") for a in args]
    p = subprocess.run(["bash", str(repo_root / "benchmarks/gpu/check.sh"), *args],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "check.sh" in p.stderr
    assert not (tmp_path / "out").exists()


def test_cuda_toolkit_cpu_path_prints_nothing(cuda_toolkit, monkeypatch, capsys):
    cpu = types.SimpleNamespace(version=types.SimpleNamespace(cuda=None),
                                cuda=types.SimpleNamespace(is_available=lambda: False))
    gpu_build = types.SimpleNamespace(version=types.SimpleNamespace(cuda="13.0"),
                                      cuda=types.SimpleNamespace(is_available=lambda: False))
    monkeypatch.setenv("FORCE_CUDA", "1")
    assert not cuda_toolkit.wants_cuda(cpu)  # a CPU build never takes the CUDA path
    assert cuda_toolkit.wants_cuda(gpu_build)
    monkeypatch.delenv("FORCE_CUDA")
    assert not cuda_toolkit.wants_cuda(gpu_build)  # CUDA torch on a machine without a GPU
    monkeypatch.setitem(sys.modules, "torch", cpu)
    assert cuda_toolkit.main() == 0 and capsys.readouterr().out == ""


def test_cuda_toolkit_reads_torchs_pin(cuda_toolkit, monkeypatch):
    reqs = ['filelock', 'cuda-toolkit[cublas,cudart,cufft]==13.0.3; platform_system == "Linux"']
    monkeypatch.setattr(cuda_toolkit.metadata, "requires", lambda name: reqs)
    assert cuda_toolkit.toolkit_requirement() == "==13.0.3"
    monkeypatch.setattr(cuda_toolkit.metadata, "requires", lambda name: ["nvidia-cuda-runtime-cu12==12.8.90"])
    assert cuda_toolkit.toolkit_requirement() is None
