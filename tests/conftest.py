import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _real_data_root() -> Path:
    """Real SegPC samples: $SEGPC_REAL_DATA, else ../shared/data/segpc_real beside the repo."""
    env = os.environ.get("SEGPC_REAL_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data" / "segpc_real"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def real_data() -> Path:
    root = _real_data_root()
    if not (root / "train_512" / "x").is_dir():
        pytest.skip(f"real SegPC data not found at {root} (set SEGPC_REAL_DATA); licence forbids shipping it")
    return root
