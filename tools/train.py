"""Train a segpc config: python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]."""
import argparse
import sys

from segpc.apis.config import DictAction
from segpc.cli import run


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train a segpc config (MMDetection instance or MMSegmentation semantic model).")
    p.add_argument("config", help="config file, e.g. configs/htc_resnest50.py")
    p.add_argument("--work-dir", help="where logs and checkpoints go (default work_dirs/<config name>)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CKPT",
                   help="resume from CKPT, or from the latest checkpoint of the work dir if none given")
    p.add_argument("--amp", action="store_true", help="mixed-precision training (CUDA only)")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, metavar="KEY=VALUE",
                   help="override config settings, e.g. data_root=/data/segpc train_cfg.max_epochs=20")
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
                   help="job launcher (tools/dist_train.sh sets pytorch)")
    p.add_argument("--local-rank", "--local_rank", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from segpc.apis.train import train

    train(args.config, work_dir=args.work_dir, resume=args.resume, amp=args.amp,
          cfg_options=args.cfg_options, launcher=args.launcher)


if __name__ == "__main__":
    sys.exit(run(main))
