"""Real-data benchmark: train and score a segpc config on the real SegPC-2021 images.

    python benchmarks/real_segpc/run.py --config configs/cpu/mask_rcnn_r18_real512.py \\
        --work-dir work_dirs/real512_cpu

One command per run, all with segpc's own functions:

1. split ``<data>/train_512`` (298 real images, 512x384) into 238 train / 60 validation images
   with a fixed seed (:func:`segpc.datasets.split.split_ids`; the ids are in ``split.json`` beside
   this file) and lay it out as ``data/segpc_real512/{train,validation}/{x,y}`` (symlinks to the
   data, never copies: licence) plus ``annotations/{train,validation}.json`` and whole-cell maps
   (:func:`segpc.datasets.convert.write_coco`) and the 3-class maps of semantic configs,
   ``semantic3/{train,validation}`` (:func:`segpc.datasets.semantic.export_semantic`); skipped
   when already there for the same split;
2. train (:func:`segpc.apis.train.train`, what ``tools/train.py`` runs), validating the
   challenge's mIoU every ``val_interval`` iterations and keeping the best checkpoint;
3. test the best checkpoint (:func:`segpc.apis.test.test` with a submission folder, what
   ``tools/test.py --submission`` runs) and score the submission files with
   :func:`segpc.evaluation.miou.evaluate_dirs` (``tools/eval_miou.py``);
4. write ``<work dir>/results.md`` and ``results.json``: command, config, machine, wall times,
   the learning curve (mIoU per validation, from mmengine's ``scalars.json``), the score and, for
   semantic configs, mmseg's per-class IoU and Dice of the test.

The winning solution's other components, each an option of the same command:

* ``--aug N``: train on the training images plus N offline-augmented copies of each
  (:func:`segpc.augment.augment_dataset`, what ``tools/augment.py`` runs, with the winning
  solution's policy ``configs/augment/segpc_xlab.yaml``), written once to
  ``<root>/train_aug<N>/`` and reused (resumed if interrupted);
* ``--tta``: test with flip test-time augmentation (``tools/test.py --tta``); the outputs get a
  ``_tta`` suffix (``results_tta.md``, ``predictions_tta.json``...), so ``--skip-train --tta``
  adds the TTA score of a trained work dir beside its plain one;
* ``--score-thr T``: keep cells scored >= T at test time (``tools/test.py --score-thr``; default
  the config's, 0.5); the outputs get a ``_thr<T>`` suffix (after ``_tta``). The challenge's mIoU
  does not penalise extra cells, so a lower threshold only adds candidates;
* ``--ensemble DIR [DIR ...]``: no training; the IoU-matched majority vote
  (:func:`segpc.ensemble.ensemble_dumps`, ``tools/ensemble.py``) of those work dirs' predictions
  (the first is the reference; with ``--tta``/``--score-thr`` those predictions), scored into
  ``--work-dir``.

The second-place method, ``--bmdeep SPEC`` (a two-stage spec such as
``configs/cpu/bmdeep/two_stage_real512.py``): every stage config of the spec (the nucleus U-Net,
one cytoplasm network per scale) is trained in turn into ``<work dir>/nucleus/``,
``<work dir>/cytoplasm_<scale>/`` (what
``tools/train.py`` runs; ``--skip-train`` reuses them), the validation images are predicted with
both stages (:func:`segpc.apis.bmdeep.predict_bmdeep`, ``tools/predict_bmdeep.py``) into
``<work dir>/prediction/``, and the submission is scored, together with every scale alone and
both aggregations (:func:`segpc.apis.bmdeep.compare_aggregations`, ``tools/bmdeep_scores.py``).
With ``--tta`` (and ``--skip-train`` to reuse the networks) the prediction is flip TTA, written
to ``prediction_tta/`` and ``results_tta.md``.

The real data are looked up at ``--data``, else ``$SEGPC_REAL_DATA``, else
``<repo>/../shared/data/segpc_real``. Everything written goes to the git-ignored ``data/`` and
``work_dirs/``. Run from the repository root (configs name ``data/...`` relative to it).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path

from segpc.apis.config import DictAction
from segpc.cli import run
from segpc.io import IMAGE_EXTS, MASK_EXTS, SegPCError, split_mask_stem, write_json

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SPLIT_FILE = HERE / "split.json"
SPLITS = ("train", "validation")
AUG_POLICY = REPO / "configs" / "augment" / "segpc_xlab.yaml"


def data_root(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("SEGPC_REAL_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data" / "segpc_real"


# --------------------------------------------------------------------------- data


def image_ids(set_dir: Path) -> dict[str, Path]:
    x = set_dir / "x"
    if not x.is_dir():
        raise SegPCError(x, "no image folder: pass --data or set SEGPC_REAL_DATA")
    return {p.stem: p for p in sorted(x.iterdir()) if p.suffix.lower() in IMAGE_EXTS}


def make_split(source: Path, num_val: int, seed: int) -> dict:
    from segpc.datasets.split import split_ids

    train, val = split_ids(image_ids(source), num_val, seed)
    split = {"set": source.name, "seed": seed, "num_val": num_val, "train": train, "validation": val}
    if SPLIT_FILE.is_file():  # the committed split: the same draw must give the same ids
        ref = json.loads(SPLIT_FILE.read_text())
        same_draw = all(ref.get(k) == split[k] for k in ("set", "seed", "num_val"))
        if same_draw and (ref["train"], ref["validation"]) != (train, val):
            raise SegPCError(SPLIT_FILE, "split_ids no longer reproduces the committed split")
    return split


def check_own_links(root: Path) -> list[Path]:
    """The links a previous run made under ``root/<split>/{x,y}``; :class:`SegPCError` (nothing
    touched) if those folders hold anything else (``--root`` naming a real data set), or if an
    annotation file is there without them."""
    links = []
    for s in SPLITS:
        for sub in ("x", "y"):
            d = root / s / sub
            if d.is_symlink() or (d.exists() and not d.is_dir()):
                raise SegPCError(d, "not a folder of links made by run.py: choose another --root")
            for p in sorted(d.iterdir()) if d.is_dir() else ():
                if not p.is_symlink():
                    raise SegPCError(p, "not a link made by run.py (is --root a data set?): nothing was "
                                        "changed, choose another --root")
                links.append(p)
        ann = root / "annotations" / f"{s}.json"
        if ann.exists() and not (root / s / "x").is_dir():
            raise SegPCError(ann, "not written by run.py (no linked split beside it): choose another --root")
    return links


def prepare(source: Path, root: Path, split: dict) -> None:
    """Symlink the split's images and masks under ``root`` and convert both splits to COCO.

    Only the links of a previous run are removed: a ``root`` holding anything else is refused."""
    from segpc.datasets.convert import summarize, write_coco

    stamp = root / "split.json"
    anns = [root / "annotations" / f"{s}.json" for s in SPLITS]
    if stamp.is_file() and json.loads(stamp.read_text()) == split and all(a.is_file() for a in anns):
        print(f"data: {root} already holds this split ({len(split['train'])} / "
              f"{len(split['validation'])} images)", flush=True)
        semantic_maps(root)
        return
    images = image_ids(source)
    masks: dict[str, list[Path]] = {}
    for p in sorted((source / "y").iterdir()):
        if p.suffix.lower() in MASK_EXTS:
            masks.setdefault(split_mask_stem(p.stem)[0], []).append(p)
    for link in check_own_links(root):
        link.unlink()
    stamp.unlink(missing_ok=True)
    for s in SPLITS:
        for sub in ("x", "y"):
            (root / s / sub).mkdir(parents=True, exist_ok=True)
        for i in split[s]:
            (root / s / "x" / images[i].name).symlink_to(images[i].resolve())
            for m in masks.get(i, []):
                (root / s / "y" / m.name).symlink_to(m.resolve())
        coco = write_coco(root / s, root / "annotations" / f"{s}.json",
                          semantic_dir=root / "semantic" / s, progress=False)
        print(f"data: {s}: {summarize(coco, root / 'annotations' / f'{s}.json')}", flush=True)
        shutil.rmtree(root / "semantic3" / s, ignore_errors=True)  # maps of the previous split
    semantic_maps(root)
    write_json(split, stamp)


def semantic_maps(root: Path) -> None:
    """The 3-class maps of semantic configs, ``root/semantic3/<split>/`` (tools/export_semantic.py)."""
    from segpc.datasets.semantic import export_semantic

    for s in SPLITS:
        if not (root / "semantic3" / s).is_dir():
            counts = export_semantic(root / s, root / "semantic3" / s, progress=False)
            print(f"data: {s}: {counts['images']} 3-class maps -> {root / 'semantic3' / s}", flush=True)


def augmented_train(root: Path, num: int, workers: int) -> dict:
    """Write (once) ``num`` augmented copies of every training image, plus the originals, to
    ``<root>/train_aug<num>``; returns the config options that train on them."""
    from segpc.augment import Options, augment_dataset

    name = f"train_aug{num}"
    stats = augment_dataset(root / "annotations" / "train.json", root / "train" / "x", root / name,
                            AUG_POLICY, Options(num=num, seed=0), workers=workers)
    print(f"data: {name}: {stats['images']} images ({stats['made']} made, {stats['reused']} reused) "
          f"in {stats['seconds']:.0f} s", flush=True)
    return {"train_dataloader.dataset.ann_file": f"{name}/annotations.json",
            "train_dataloader.dataset.data_prefix.img": f"{name}/x/",
            "train_dataloader.dataset.data_prefix.seg": f"{name}/semantic/"}  # HTC/SCNet


# --------------------------------------------------------------------------- results


def read_scalars(path: Path, key: str = "segpc/mIoU") -> tuple[list[dict], float | None]:
    """The learning curve of an mmengine ``scalars.json`` (``key`` per validation, as ``mIoU``, at
    the training iteration logged last before it), and the mean seconds per training iteration."""
    curve, times, last = [], [], {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if key in rec:
            curve.append({"iter": last.get("iter", rec["step"]), "mIoU": rec[key]}
                         | ({"epoch": last["epoch"]} if "epoch" in last else {}))
        elif "loss" in rec:
            last = rec
            times.append(rec.get("time", 0.0))
    return curve, (sum(times) / len(times) if times else None)


def latest_scalars(work_dir: Path, key: str = "segpc/mIoU") -> Path | None:
    files = [p for p in work_dir.glob("*/vis_data/scalars.json") if f'"{key}"' in p.read_text()]
    return max(files, key=lambda p: p.parent.parent.name) if files else None


def machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__}
    try:
        mem = next(l for l in open("/proc/meminfo") if l.startswith("MemTotal"))
        info["ram_gib"] = round(int(mem.split()[1]) / 2**20, 1)
    except (OSError, StopIteration):
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def hardware(m: dict) -> str:
    hw = f"{m['cpu']}, {m['cores']} cores, {m.get('ram_gib', '?')} GiB RAM"
    return hw + (f", GPU {m['gpu']}" if m.get("gpu") else "")


def minutes(s: float | None) -> str:
    return "-" if s is None else f"{s / 60:.1f} min"


def markdown(res: dict) -> str:
    if res.get("stages"):
        return bmdeep_markdown(res)
    m = res["machine"]
    hw = hardware(m)

    rows = [("command", f"`{res['command']}`")]
    if res.get("members"):
        members = ", ".join(f"`{m}`" for m in res["members"])
        rows += [("ensemble", f"IoU-matched vote (min IoU {res['min_iou']}) of {members} "
                              "(the first is the reference)")]
    else:
        rows += [
            ("config", f"`{res['config']}`" + (f" + `{res['cfg_options']}`" if res["cfg_options"] else "")),
            ("data", f"{res['split']['set']}: {len(res['split']['train'])} train / "
                     f"{len(res['split']['validation'])} validation images (seed {res['split']['seed']})"
                     + (f"; trained on the originals + {res['aug']} augmented copies of each"
                        if res.get("aug") else "")),
        ]
    rows += [("machine", f"{hw}; Python {m['python']}, torch {m['torch']} ({m['torch_threads']} threads)")]
    if not res.get("members"):
        rows += [("schedule", f"{res['schedule']} at batch {res['batch_size']}"
                              + (f", {res['s_per_iter']:.2f} s/iter" if res.get("s_per_iter") else ""))]
    rows += [("wall time", f"training {minutes(res['train_s'])} (with validations), test + scoring "
                           f"{minutes(res['test_s'])}, total {minutes(res['total_s'])}")]
    if not res.get("members"):
        rows += [("best checkpoint", f"`{res['checkpoint']}`")]
    rows += [
        ("test", ("flip TTA (original + 3 flips, masks voted)" if res.get("tta") else "single pass")
                 + (f", cells scored >= {res['score_thr']:g}" if res.get("score_thr") is not None else "")),
        ("**mIoU** (validation, submission files)", f"**{res['mIoU']:.4f}** "
                                                    f"({res['num_gt']} cells, {res['num_pred']} predicted)"),
    ]
    per_class = {k: v for k, v in (res.get("metrics") or {}).items() if k.startswith(("IoU.", "Dice."))}
    if per_class:  # semantic configs: mmseg's IoUMetric per class (%)
        rows.append(("per-class IoU / Dice (%, pixels)", ", ".join(f"{k} {v:.2f}" for k, v in per_class.items())))
    lines = ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    if not res["curve"]:
        return "\n".join(lines) + "\n"
    lines += ["", "Learning curve (validation mIoU, SegPCMetric during training):", "",
              "| iteration | mIoU |", "|---:|---:|"]
    lines += [f"| {c['iter']} | {c['mIoU']:.4f} |" for c in res["curve"]]
    return "\n".join(lines) + "\n"


def bmdeep_markdown(res: dict) -> str:
    m = res["machine"]
    rows = [("command", f"`{res['command']}`"), ("spec", f"`{res['spec']}`"),
            ("data", f"{res['split']['set']}: {len(res['split']['train'])} train / "
                     f"{len(res['split']['validation'])} validation images (seed {res['split']['seed']})"),
            ("machine", f"{hardware(m)}; Python {m['python']}, torch {m['torch']} ({m['torch_threads']} threads)"),
            ("wall time", f"training {minutes(res['train_s'])} (all stages), prediction + scoring "
                          f"{minutes(res['test_s'])}, total {minutes(res['total_s'])}"),
            ("test", "flip TTA (original + 3 flips, cells matched and voted)" if res.get("tta") else "single pass"),
            ("**mIoU** (validation, submission files)",
             f"**{res['mIoU']:.4f}** ({res['num_gt']} cells, {res['num_pred']} predicted; "
             f"aggregate `{res['aggregate']}`)")]
    lines = ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    lines += ["", "Stages (each validated on its own task by mmseg's IoUMetric: mean IoU of background and "
              "nucleus maps, or of background and cell in the crops, %):", "",
              "| stage | config | schedule | s/iter | training | stage mIoU |", "|---|---|---|---:|---:|---:|"]
    for st in res["stages"]:
        spi = "-" if st["s_per_iter"] is None else f"{st['s_per_iter']:.2f}"
        miou = "-" if st["mIoU"] is None else f"{st['mIoU']:.2f}"
        lines.append(f"| {st['stage']} | `{st['config']}` | {st['schedule']} | {spi} | {minutes(st['train_s'])} | {miou} |")
    if res["variants"]:
        lines += ["", "Each scale alone and both aggregations (challenge mIoU, from the candidates file):", "",
                  "| cells from | mIoU | predicted |", "|---|---:|---:|"]
        lines += [f"| {k} | {v['mIoU']:.4f} | {v['num_pred']} |" for k, v in res["variants"].items()]
    return "\n".join(lines) + "\n"


def run_bmdeep(args, root: Path, split: dict, command: str, t0: float) -> None:
    """Train the two-stage spec's networks in turn, predict the validation images, score them."""
    from mmengine.config import Config

    from segpc.apis.bmdeep import compare_aggregations, predict_bmdeep
    from segpc.apis.config import load_config
    from segpc.apis.demo import best_checkpoint
    from segpc.apis.train import train
    from segpc.evaluation.miou import evaluate_dirs

    spec_path = Path(args.bmdeep)
    if not spec_path.is_file():
        raise SegPCError(spec_path, "two-stage spec not found")
    spec = Config.fromfile(str(spec_path))
    work_dir = Path(args.work_dir or f"work_dirs/{spec_path.stem}")
    options = {"data_root": str(root), **(args.cfg_options or {})}
    stages = [("nucleus", spec.nucleus["config"])] + [(f"cytoplasm {c['scale']:g}", c["config"])
                                                     for c in spec.cytoplasm]  # scales may share a config
    done, ckpts, train_total = [], {}, 0.0
    for stage, name in stages:
        config = spec_path.parent / name
        stage_dir = work_dir / stage.replace(" ", "_")
        timing = stage_dir / "train_time.json"  # kept for a later --skip-train
        if not args.skip_train:
            print(f"bmdeep: training {stage}: {config} -> {stage_dir}", flush=True)
            t = time.time()
            train(str(config), work_dir=str(stage_dir), cfg_options=dict(options))
            write_json({"train_s": time.time() - t}, timing)
        train_s = json.loads(timing.read_text())["train_s"] if timing.is_file() else None
        train_total += train_s or 0.0
        ckpts[stage] = best_checkpoint(str(stage_dir))
        cfg = load_config(str(config), dict(options), str(stage_dir))
        scalars = latest_scalars(stage_dir, "mIoU")  # mmseg's IoUMetric
        curve, s_per_iter = read_scalars(scalars, "mIoU") if scalars else ([], None)
        done.append({"stage": stage, "config": str(config), "train_s": train_s, "s_per_iter": s_per_iter,
                     "schedule": f"{cfg.train_cfg.max_iters} iterations at batch {cfg.train_dataloader.batch_size}",
                     "checkpoint": ckpts[stage], "mIoU": curve[-1]["mIoU"] if curve else None})

    t = time.time()
    suffix = "_tta" if args.tta else ""
    out, cand = work_dir / f"prediction{suffix}", work_dir / "candidates.json"
    cyto = {float(c["scale"]): ckpts[f"cytoplasm {c['scale']:g}"] for c in spec.cytoplasm}
    predict_bmdeep(str(spec_path), ckpts["nucleus"], cyto, str(root / "validation" / "x"), str(out),
                   overwrite=True, candidates=None if args.tta else str(cand), tta=args.tta)  # its own work dir
    score = evaluate_dirs(root / "validation", out / "submission")
    variants = {} if args.tta else {label: {"mIoU": r.mIoU, "num_pred": r.num_pred}
                                    for label, r in compare_aggregations(str(root / "validation"), str(cand))}
    res = {"command": command, "spec": str(spec_path), "aggregate": spec.get("aggregate", "filter"), "tta": args.tta,
           "split": split, "machine": machine(), "stages": done, "variants": variants,
           "train_s": train_total or None, "test_s": time.time() - t,
           "total_s": time.time() - t0 if not args.skip_train else None,
           "mIoU": score.mIoU, "num_gt": score.num_gt, "num_pred": score.num_pred, "curve": []}
    report(res, score, work_dir, suffix)


# --------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train and score a segpc config on the real SegPC images.")
    p.add_argument("--config", default="configs/cpu/mask_rcnn_r18_real512.py")
    p.add_argument("--work-dir", help="default work_dirs/<config name>_real512")
    p.add_argument("--data", help="real SegPC folder (default $SEGPC_REAL_DATA or ../shared/data/segpc_real)")
    p.add_argument("--set", default="train_512", help="set of --data to split (default train_512)")
    p.add_argument("--root", default="data/segpc_real512", help="where the split and COCO files go")
    p.add_argument("--num-val", type=int, default=60, help="validation images (default 60 of 298)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cfg-options", nargs="+", action=DictAction, metavar="KEY=VALUE",
                   help="more config overrides, e.g. train_cfg.max_iters=200")
    p.add_argument("--prepare-only", action="store_true", help="only write the split and COCO files")
    p.add_argument("--skip-train", action="store_true",
                   help="test and report the best checkpoint already in the work dir")
    p.add_argument("--aug", type=int, metavar="N",
                   help="train on the originals + N augmented copies of each training image "
                        "(written once to <root>/train_aug<N>, the winning solution's policy)")
    p.add_argument("--aug-workers", type=int, default=2, help="processes for --aug (default 2)")
    p.add_argument("--tta", action="store_true",
                   help="flip test-time augmentation; outputs get a _tta suffix")
    p.add_argument("--score-thr", type=float, metavar="T",
                   help="keep cells scored >= T (default: the config's, 0.5); outputs get a _thr<T> suffix")
    p.add_argument("--ensemble", nargs="+", metavar="WORK_DIR",
                   help="no training: vote these work dirs' predictions (the first is the reference)")
    p.add_argument("--min-iou", type=float, default=0.85, help="--ensemble's match IoU (default 0.85)")
    p.add_argument("--bmdeep", metavar="SPEC",
                   help="the second-place method: train every network of this two-stage spec (e.g. "
                        "configs/cpu/bmdeep/two_stage_real512.py), predict and score; --config is not used")
    args = p.parse_args(argv)
    if args.ensemble and (len(args.ensemble) < 2 or not args.work_dir):
        p.error("--ensemble needs at least two work dirs and --work-dir for the result")
    if args.bmdeep and (args.ensemble or args.aug or args.score_thr is not None):
        p.error("--bmdeep takes neither --ensemble, --aug nor --score-thr")
    return args


def main(argv=None):
    args = parse_args(argv)
    env = [f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY") if k in os.environ]
    command = shlex.join(env + ["python", os.path.relpath(__file__)] + sys.argv[1:])
    t0 = time.time()
    source = data_root(args.data) / args.set
    root = Path(args.root)
    split = make_split(source, args.num_val, args.seed)
    prepare(source, root, split)
    if args.prepare_only:
        return
    if args.bmdeep:
        return run_bmdeep(args, root, split, command, t0)

    from segpc.evaluation.miou import evaluate_dirs
    from segpc.structures import load_dump, save_dump, write_submission

    suffix = output_suffix(args.tta, args.score_thr)
    if args.ensemble:
        from segpc.ensemble import ensemble_dumps

        work_dir = Path(args.work_dir)
        paths = [Path(d) / f"predictions{suffix}.json" for d in args.ensemble]
        for p in paths:
            if not p.is_file():
                raise SegPCError(p, "no predictions: run run.py for this work dir first"
                                    + (f" with the same --tta/--score-thr ({suffix})" if suffix else ""))
        t = time.time()
        ens = ensemble_dumps([load_dump(p) for p in paths], min_iou=args.min_iou,
                             sources=[str(p) for p in paths])
        work_dir.mkdir(parents=True, exist_ok=True)
        save_dump(ens, work_dir / f"predictions{suffix}.json")
        sub = work_dir / f"submission{suffix}"
        write_submission(ens, sub, overwrite=True)  # its own work dir
        score = evaluate_dirs(root / "validation", sub)
        res = {"command": command, "members": [str(p) for p in paths], "min_iou": args.min_iou,
               "votes": ens["ensemble"], "tta": args.tta, "score_thr": args.score_thr, "split": split, "machine": machine(),
               "train_s": None, "test_s": time.time() - t, "total_s": None,
               "mIoU": score.mIoU, "num_gt": score.num_gt, "num_pred": score.num_pred, "curve": []}
        return report(res, score, work_dir, suffix)

    from segpc.apis.config import load_config
    from segpc.apis.demo import best_checkpoint
    from segpc.apis.test import test
    from segpc.apis.train import train

    name = Path(args.config).stem
    work_dir = Path(args.work_dir or f"work_dirs/{name}_real512")
    options = {"data_root": str(root), **(args.cfg_options or {})}
    train_options = dict(options)
    cfg = load_config(args.config, dict(options), str(work_dir))
    if args.aug:
        aug = augmented_train(root, args.aug, args.aug_workers)
        if "seg" not in cfg.train_dataloader.dataset.get("data_prefix", {}):
            del aug["train_dataloader.dataset.data_prefix.seg"]  # no semantic branch
        train_options.update(aug)

    train_s = None
    if not args.skip_train:
        t = time.time()
        train(args.config, work_dir=str(work_dir), cfg_options=dict(train_options))
        train_s = time.time() - t
    ckpt = best_checkpoint(str(work_dir))
    scalars = latest_scalars(work_dir)
    curve, s_per_iter = read_scalars(scalars) if scalars else ([], None)

    t = time.time()
    sub = work_dir / f"submission{suffix}"
    _, metrics = test(args.config, ckpt, out=str(work_dir / f"predictions{suffix}.json"), submission=str(sub),
                      work_dir=str(work_dir), cfg_options=dict(options), overwrite=True,  # its own work dir
                      tta=args.tta, score_thr=args.score_thr, details=True)
    score = evaluate_dirs(root / "validation", sub)
    test_s = time.time() - t

    loop = cfg.train_cfg
    schedule = (f"{loop.max_iters} iterations" if "max_iters" in loop else f"{loop.get('max_epochs')} epochs")
    res = {
        "command": command, "config": args.config, "cfg_options": args.cfg_options or {},
        "aug": args.aug, "tta": args.tta, "score_thr": args.score_thr,
        "split": split, "machine": machine(), "schedule": schedule,
        "batch_size": cfg.train_dataloader.batch_size, "s_per_iter": s_per_iter,
        "train_s": train_s, "test_s": test_s, "total_s": time.time() - t0 if train_s else None,
        "checkpoint": ckpt, "metrics": {k: float(v) for k, v in metrics.items()},
        "mIoU": score.mIoU, "num_gt": score.num_gt, "num_pred": score.num_pred, "curve": curve, "scalars": str(scalars) if scalars else None,
    }
    return report(res, score, work_dir, suffix)


def output_suffix(tta: bool, score_thr: float | None) -> str:
    """The suffix of a test's outputs (``results<suffix>.md``...): ``_tta``, ``_thr<T>``, both or none."""
    return ("_tta" if tta else "") + ("" if score_thr is None else f"_thr{score_thr:g}")


def report(res: dict, score, work_dir: Path, suffix: str) -> None:
    write_json(score.to_dict(), work_dir / f"miou{suffix}.json")
    write_json(res, work_dir / f"results{suffix}.json")
    (work_dir / f"results{suffix}.md").write_text(markdown(res))
    print("\n" + markdown(res))
    print(f"results: {work_dir / f'results{suffix}.md'}")


if __name__ == "__main__":
    sys.exit(run(main))
