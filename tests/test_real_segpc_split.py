"""segpc.datasets.split.split_ids: the real-data benchmark's fixed train/validation split."""
import json

import pytest

from segpc.datasets.split import split_ids


def test_split_is_deterministic_and_order_free():
    ids = [str(i) for i in range(1, 51)] + ["a", "b"]
    train, val = split_ids(ids, 10, seed=3)
    assert (train, val) == split_ids(list(reversed(ids)), 10, seed=3)
    assert len(val) == 10 and len(train) == 42 and not set(train) & set(val)
    assert set(train) | set(val) == set(ids)
    assert train == sorted(train, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
    assert split_ids(ids, 10, seed=4)[1] != val
    with pytest.raises(ValueError):
        split_ids(ids, 53)


def test_committed_benchmark_split_is_reproduced(repo_root):
    ref = json.loads((repo_root / "benchmarks" / "real_segpc" / "split.json").read_text())
    assert (len(ref["train"]), len(ref["validation"])) == (238, 60)
    assert split_ids(ref["train"] + ref["validation"], ref["num_val"], ref["seed"]) == \
        (ref["train"], ref["validation"])
