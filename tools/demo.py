"""The whole pipeline on synthetic data, on a CPU (what `make demo` runs)."""
import argparse
import sys

from segpc.cli import run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--work-dir", default="work_dirs/demo")
    p.add_argument("--data-root", default="data/synthetic")
    p.add_argument("--num-train", type=int, default=160)
    p.add_argument("--num-val", type=int, default=40)
    p.add_argument("--max-iters", type=int, help="training iterations (default: the config's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and of training")
    args = p.parse_args(argv)
    from segpc.apis.demo import run_demo

    run_demo(args.work_dir, args.data_root, num_train=args.num_train, num_val=args.num_val,
             seed=args.seed, max_iters=args.max_iters)


if __name__ == "__main__":
    sys.exit(run(main))
