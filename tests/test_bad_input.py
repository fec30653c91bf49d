"""Bad input ends in one line naming the file (segpc.io.SegPCError → exit 2), never a traceback."""
import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from segpc.io import SegPCError


def _raise_bad(path):
    raise SegPCError(path, "cannot read image (missing, corrupt or unsupported format)")


def test_segpc_error_pickles():
    for e in (SegPCError("a/b.png", "broken"), SegPCError(None, "no path")):
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is SegPCError and (back.path, back.problem, str(back)) == (e.path, e.problem, str(e))


def test_segpc_error_raised_in_a_worker_process_arrives_whole():
    with ProcessPoolExecutor(1) as pool:
        with pytest.raises(SegPCError) as e:
            pool.submit(_raise_bad, "x/1.jpg").result()
    assert e.value.path == "x/1.jpg" and str(e.value).startswith("x/1.jpg: cannot read image")


class _BadDataset:
    def __len__(self):
        return 2

    def __getitem__(self, i):
        _raise_bad(f"x/{i}.jpg")


def test_segpc_error_raised_in_a_dataloader_worker_stays_one_line():
    from torch.utils.data import DataLoader

    with pytest.raises(SegPCError) as e:
        next(iter(DataLoader(_BadDataset(), num_workers=1)))
    assert str(e.value) == "x/0.jpg: cannot read image (missing, corrupt or unsupported format)"
