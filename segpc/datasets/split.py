"""A fixed, reproducible train/validation split of image ids (the real-data benchmark's 238/60)."""
from __future__ import annotations

import random
from typing import Iterable


def _key(image_id: str) -> tuple:
    """Numeric ids in numeric order (``'9' < '10'``), others after them in text order."""
    return (0, int(image_id), image_id) if image_id.isascii() and image_id.isdigit() else (1, 0, image_id)


def split_ids(ids: Iterable[str], num_val: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``(train, validation)``: ``num_val`` ids drawn at random with ``seed``, the rest for training.

    The draw depends only on the set of ids, ``num_val`` and ``seed`` (not on their order);
    both lists come back sorted (numeric ids numerically).
    """
    pool = sorted(set(str(i) for i in ids), key=_key)
    if not 0 <= num_val <= len(pool):
        raise ValueError(f"num_val={num_val} but there are {len(pool)} ids")
    val = set(random.Random(seed).sample(pool, num_val))
    return [i for i in pool if i not in val], [i for i in pool if i in val]
