"""Training speed and memory of the zoo on a GPU, then flip-TTA testing: part of ``check.sh``.

    python benchmarks/gpu/bench_gpu.py --out-dir OUT [--iters 30] [--models mask_rcnn_resnet50 ...]
    python benchmarks/gpu/bench_gpu.py --dry-run --out-dir /tmp/gpu_dry   # the plumbing, on a CPU

1. lays out the real ``train_512`` split (238 train / 60 validation images, the committed
   ``benchmarks/real_segpc/split.json``) with ``benchmarks/real_segpc/run.py --prepare-only``;
2. trains every ``--models`` config from scratch (``model.backbone.init_cfg=None``) at the
   config's own scale (1333x800) and batch for exactly ``--iters`` iterations, once without and
   once with ``--amp``: one ``tools/train.py`` process per run (epoch-based configs run one epoch
   over the first ``iters x batch`` training images; no validation);
3. reads each run's mmengine ``scalars.json``: seconds per iteration and data seconds per
   iteration (mean of the logged windows after the first, which holds the warm-up), images per
   second (batch / s per iteration) and the peak GPU memory (the largest ``memory`` mmengine
   logged: ``torch.cuda.max_memory_allocated``, MiB, reset at every log);
4. then tests each run without AMP on the validation split with ``tools/test.py --tta`` (mIoU,
   wall time: a from-scratch model after a few iterations scores near 0; this checks the path);
   with ``--budget``, commands that would start after it are skipped and recorded as such;
5. writes ``OUT/gpu_check.json`` and ``OUT/gpu_check.md``; every command's output is appended to
   ``OUT/gpu_check.log``.

``--dry-run`` runs the same steps on a CPU in a few minutes: the test suite's micro Mask R-CNN
(``configs/fixture/mask_rcnn_micro.py``), 2 iterations, no AMP (CUDA only), the TTA test on 2
validation images.
Exit status 1 when a run failed (the JSON says which).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ZOO = ["mask_rcnn_resnet50", "htc_resnet50", "scnet_resnet50"]
DRY_MODEL = "fixture/mask_rcnn_micro"


def scalars_stats(path: Path, batch_size: int) -> dict:
    """Speed and memory of one training run from its mmengine ``scalars.json``.

    Training records are the lines with a ``loss``; each ``time``/``data_time`` is the mean over
    one logging window. The first window is left out when there are more (warm-up: cuDNN
    autotuning, the allocator, the first batches); ``memory`` (MiB, CUDA only) is a peak per
    window, so the run's peak is their maximum.
    """
    recs = [r for r in map(json.loads, path.read_text().splitlines()) if "loss" in r]
    if not recs:
        return {"iters_logged": 0}
    timed = recs[1:] if len(recs) > 1 else recs
    s_iter = sum(r["time"] for r in timed) / len(timed)
    data_s = sum(r.get("data_time", 0.0) for r in timed) / len(timed)
    mem = [r["memory"] for r in recs if "memory" in r]
    return {
        "iters_logged": recs[-1].get("iter", recs[-1].get("step")),
        "iters_timed": [timed[0].get("step"), timed[-1].get("step")],
        "s_per_iter": round(s_iter, 4),
        "data_s_per_iter": round(data_s, 4),
        "images_per_s": round(batch_size / s_iter, 2) if s_iter > 0 else None,
        "peak_mem_mib": max(mem) if mem else None,
        "last_loss": recs[-1]["loss"],
    }


def latest_scalars(work_dir: Path) -> Path | None:
    files = sorted(work_dir.glob("*/vis_data/scalars.json"), key=lambda p: p.parent.parent.name)
    return files[-1] if files else None


def train_options(cfg, iters: int, data_root: str, log_interval: int) -> dict:
    """``--cfg-options`` that make ``cfg`` train for exactly ``iters`` iterations, no validation."""
    opts = {"data_root": data_root, "model.backbone.init_cfg": None, "randomness.seed": 0,
            "default_hooks.logger.interval": log_interval}
    # mmengine's loops validate at the last epoch/iteration whatever val_interval says: a
    # val_begin after the end is what turns validation off.
    if "max_epochs" in cfg.train_cfg:  # the zoo: one epoch over the first iters x batch images
        opts |= {"train_cfg.max_epochs": 1, "train_cfg.val_begin": 2,
                 "train_dataloader.dataset.indices": iters * cfg.train_dataloader.batch_size,
                 "default_hooks.checkpoint.interval": 1}
    else:
        opts |= {"train_cfg.max_iters": iters, "train_cfg.val_begin": iters + 1,
                 "default_hooks.checkpoint.interval": iters}
    return opts


def cfg_args(opts: dict) -> list[str]:
    return ["--cfg-options"] + [f"{k}={v}" for k, v in opts.items()]


class Clock:
    """Per-command timeouts inside an overall budget (None: no budget)."""

    def __init__(self, timeout: float, budget: float | None):
        self.t0, self.timeout, self.budget = time.time(), timeout, budget

    def left(self) -> float:
        if self.budget is None:
            return self.timeout
        return min(self.timeout, self.budget - (time.time() - self.t0))


def run_logged(cmd: list[str], log: Path, timeout: float) -> tuple[int, float, str]:
    """Run ``cmd`` from the repo root, appending its output to ``log``; (rc, seconds, output).

    rc 124: stopped at ``timeout``; rc None: not started (no time left)."""
    if timeout <= 5:
        with log.open("a") as f:
            f.write(f"\n$ {shlex.join(cmd)}\n[skipped: no time left in the budget]\n")
        return None, 0.0, ""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               PYTHONUNBUFFERED="1")
    t = time.time()
    try:
        p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = 124, (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
    dt = time.time() - t
    with log.open("a") as f:
        f.write(f"\n$ {shlex.join(cmd)}\n{out}\n[rc={rc} wall={dt:.1f}s]\n")
    return rc, dt, out


def parse_miou(out: str) -> dict:
    res = {}
    for line in out.splitlines():
        if line.startswith("mIoU:"):
            res["mIoU"] = float(line.split()[1])
        elif line.startswith("num_gt:"):
            f = line.split()
            res["num_gt"], res["num_pred"] = int(f[1]), int(f[3])
    return res


def environment() -> dict:
    import torch

    env = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
           "cores": os.cpu_count()}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env |= {"gpu": p.name, "gpu_mem_gib": round(p.total_memory / 2**30, 1), "gpu_cc": f"{p.major}.{p.minor}"}
    for mod in ("mmcv", "mmengine", "mmdet", "numpy"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception as e:  # recorded, not fatal: the runs say what fails
            env[mod] = f"not importable: {e}"
    return env


def status(rc: int | None) -> str:
    return {None: "skipped (budget)", 124: "124 (timeout)"}.get(rc, str(rc))


def markdown(res: dict) -> str:
    e = res["environment"]
    lines = [f"GPU check, {res['date']}: {e.get('gpu', 'no GPU')}, {e['cores']} cores; Python {e['python']}, "
             f"torch {e['torch']} (CUDA {e['cuda']}), mmcv {e['mmcv']}, mmdet {e['mmdet']}, numpy {e['numpy']}.",
             f"Data: {res['data']}; {res['iters']} iterations per run, from scratch; TTA test on "
             f"{res.get('test_images') or 'all'} validation images.", "",
             "| config | AMP | batch | s/iter | data s/iter | images/s | peak GPU MiB | last loss | wall s | rc |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["train"]:
        def f(k, fmt="{}"):
            return "-" if r.get(k) is None else fmt.format(r[k])
        lines.append(f"| {r['config']} | {'yes' if r['amp'] else 'no'} | {r['batch']} | {f('s_per_iter', '{:.3f}')} | "
                     f"{f('data_s_per_iter', '{:.3f}')} | {f('images_per_s', '{:.1f}')} | {f('peak_mem_mib')} | "
                     f"{f('last_loss', '{:.3f}')} | {r['wall_s']:.0f} | {status(r['rc'])} |")
    if res["tta"]:
        lines += ["", "| flip-TTA test (validation) | mIoU | cells / predicted | wall s | rc |", "|---|---:|---|---:|---:|"]
        for r in res["tta"]:
            miou = "-" if r.get("mIoU") is None else f"{r['mIoU']:.4f}"
            lines.append(f"| {r['config']} | {miou} | {r.get('num_gt', '-')} / {r.get('num_pred', '-')} | "
                         f"{r['wall_s']:.0f} | {status(r['rc'])} |")
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Zoo training speed/memory on a GPU, then flip-TTA testing.")
    p.add_argument("--out-dir", required=True, help="gpu_check.{json,md,log} go here")
    p.add_argument("--models", nargs="+", help=f"configs under configs/ (default: {' '.join(ZOO)})")
    p.add_argument("--iters", type=int, help="training iterations per run (default 30; dry run 2)")
    p.add_argument("--log-interval", type=int, help="iterations per logged window (default 10; dry run 1)")
    p.add_argument("--no-amp", action="store_true", help="skip the --amp runs (always on a CPU)")
    p.add_argument("--no-tta", action="store_true", help="skip the tools/test.py --tta runs")
    p.add_argument("--test-images", type=int, help="test the first N validation images only (default: "
                   "all 60; dry run 2)")
    p.add_argument("--data", help="real SegPC folder holding train_512 (default: run.py's lookup)")
    p.add_argument("--root", default="data/segpc_real512", help="where the split and COCO files go")
    p.add_argument("--work-dir", default="work_dirs/gpu_check", help="the runs' work dirs go under it")
    p.add_argument("--timeout", type=float, default=600, help="seconds per command at most (default 600)")
    p.add_argument("--budget", type=float, help="seconds for everything: commands that would start "
                   "after it are skipped (recorded), a running one is stopped at it")
    p.add_argument("--extra", help="a JSON file (check.sh's build and op check) merged into the result")
    p.add_argument("--dry-run", action="store_true", help=f"the plumbing on a CPU: {DRY_MODEL}, 2 iterations")
    args = p.parse_args(argv)
    if args.iters is not None and args.iters < 1:
        p.error("--iters must be at least 1")
    if args.dry_run:
        args.models = args.models or [DRY_MODEL]
        args.iters = args.iters or 2
        args.log_interval = args.log_interval or 1
        args.test_images = args.test_images or 2
    args.models = args.models or ZOO
    args.iters = args.iters or 30
    args.log_interval = args.log_interval or 10
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from segpc.apis.config import load_config

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "gpu_check.log"
    py = sys.executable
    amp_modes = [False] if args.no_amp or not torch.cuda.is_available() else [False, True]
    res = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "environment": environment(),
           "iters": args.iters, "test_images": args.test_images, "train": [], "tta": [],
           "amp_skipped": None if len(amp_modes) == 2 else ("--no-amp" if args.no_amp else "no CUDA device")}
    if args.extra and Path(args.extra).is_file():
        res |= json.loads(Path(args.extra).read_text())

    clock = Clock(args.timeout, args.budget)
    prep = [py, "benchmarks/real_segpc/run.py", "--prepare-only", "--root", args.root]
    rc, dt, text = run_logged(prep + (["--data", args.data] if args.data else []), log, clock.left())
    res["data"] = f"real train_512, split in {args.root} (prepared in {dt:.0f} s, rc {rc})"
    if rc != 0:
        print(text[-2000:], file=sys.stderr)
        (out / "gpu_check.json").write_text(json.dumps(res, indent=1))
        return 1

    failed, tested, cfgs = False, [], {}
    for model in args.models:
        config = f"configs/{model}.py"
        cfg = load_config(str(REPO / config))
        cfgs[model] = (config, cfg.train_dataloader.batch_size,
                       train_options(cfg, args.iters, args.root, args.log_interval))
    # Every model without AMP first, then with AMP, then the TTA tests: what a tight budget skips
    # comes last.
    for amp in amp_modes:
        for model, (config, batch, opts) in cfgs.items():
            work = Path(args.work_dir) / (model.replace("/", "_") + ("_amp" if amp else ""))
            cmd = [py, "tools/train.py", config, "--work-dir", str(work)] + (["--amp"] if amp else []) + cfg_args(opts)
            print(f"train: {model}{' --amp' if amp else ''}, {args.iters} iterations", flush=True)
            rc, dt, _ = run_logged(cmd, log, clock.left())
            scalars = latest_scalars(REPO / work)
            row = {"config": model, "amp": amp, "batch": batch, "rc": rc, "wall_s": round(dt, 1),
                   "command": shlex.join(cmd[1:])}
            row |= scalars_stats(scalars, batch) if scalars and rc is not None else {}
            res["train"].append(row)
            failed |= rc != 0
            print(f"  rc {status(rc)}, {dt:.0f} s, {row.get('s_per_iter')} s/iter, {row.get('peak_mem_mib')} MiB",
                  flush=True)
            if not amp and rc == 0:
                tested.append((model, config, work))
    for model, config, work in [] if args.no_tta else tested:
        last = REPO / work / "last_checkpoint"
        ckpt = last.read_text().strip() if last.is_file() else str(work / "missing_checkpoint.pth")
        subset = [f"test_dataloader.dataset.indices={args.test_images}"] if args.test_images else []
        cmd = [py, "tools/test.py", config, ckpt, "--tta", "--work-dir", str(work / "tta"),
               "--cfg-options", f"data_root={args.root}"] + subset
        print(f"test --tta: {model}", flush=True)
        rc, dt, text = run_logged(cmd, log, clock.left())
        res["tta"].append({"config": model, "rc": rc, "wall_s": round(dt, 1), "command": shlex.join(cmd[1:]),
                           **parse_miou(text)})
        failed |= rc != 0
        print(f"  rc {status(rc)}, {dt:.0f} s, mIoU {res['tta'][-1].get('mIoU')}", flush=True)

    (out / "gpu_check.json").write_text(json.dumps(res, indent=1))
    (out / "gpu_check.md").write_text(markdown(res))
    print("\n" + markdown(res))
    return 1 if failed else 0


if __name__ == "__main__":
    from segpc.cli import run

    sys.exit(run(main))
