"""The dump ensemble (:mod:`segpc.ensemble`) done the straightforward way, on dense full frames.

Every cell and nucleus is decoded to its full image frame, every reference/other pair is
compared whole and every vote is counted on whole frames. Slow on purpose: the yardstick of
``tests/test_ensemble.py`` and ``benchmarks/bench_ensemble.py`` (same output, bit for bit).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from segpc.ensemble import DEFAULT_MIN_IOU, ensemble_dumps, mean_score, sort_cells, with_category
from segpc.structures import bbox_xyxy, decode, encode


def dense_image(models: list[list[dict]], min_iou: float, quorum: int, tie: str, stats: dict) -> list[dict]:
    """:func:`segpc.ensemble.ensemble_image` on full-frame arrays."""
    def frames(cells, key):
        out = []
        for c in cells:
            if c.get(key) is None:
                h, w = c["cell"]["size"]
                out.append(np.zeros((h, w), dtype=bool))
            else:
                out.append(decode(c[key]).astype(bool))
        return out

    cells = [frames(m, "cell") for m in models]
    nuclei = [frames(m, "nucleus") for m in models]

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        inter = int(np.count_nonzero(a & b))
        union = int(np.count_nonzero(a)) + int(np.count_nonzero(b)) - inter
        return inter / union if inter else 0.0

    ref = cells[0]
    n_other = len(models) - 1
    # ious[j][r][i]: reference cell r against cell i of other model j
    ious = [[[iou(r, o) for o in cells[j + 1]] for r in ref] for j in range(n_other)]
    contributors = []
    for r in range(len(ref)):
        found = []
        for j in range(n_other):
            row = ious[j][r]
            if row:
                best = max(range(len(row)), key=lambda i: (row[i], -i))  # first of the highest
                if row[best] >= min_iou:
                    found.append((j, best))
        contributors.append(found)
    voted = [len(c) >= quorum for c in contributors]
    matched = [[any(ious[j][r][i] >= min_iou for r in range(len(ref))) for i in range(len(cells[j + 1]))]
               for j in range(n_other)]

    def majority(stack: list[np.ndarray]) -> np.ndarray:
        votes = np.sum(np.stack(stack), axis=0)
        n = len(stack)
        tie_in = stack[0] if tie == "reference" else np.zeros_like(stack[0])
        return (2 * votes > n) | ((2 * votes == n) & tie_in)

    out = []
    for r, cell in enumerate(models[0]):
        new = None
        if voted[r]:
            voters = [(0, r)] + [(j + 1, i) for j, i in contributors[r]]
            c = majority([cells[m][i] for m, i in voters])
            if c.any():
                nuc = majority([nuclei[m][i] for m, i in voters]) & c
                new = with_category({"score": mean_score([models[m][i]["score"] for m, i in voters]),
                                     "bbox": bbox_xyxy(encode(c)),
                                     "cell": encode(c),
                                     "nucleus": encode(nuc) if nuc.any() else None}, cell)
        if new is None:
            out.append(cell)
            stats["kept"] += 1
        else:
            out.append(new)
            stats["voted"] += 1
    added: list[list[int]] = []
    for j in range(1, len(models)):
        mine = []
        for i, c in enumerate(cells[j]):
            if matched[j - 1][i]:
                continue
            if any(iou(c, cells[jj + 1][k]) >= min_iou for jj, idx in enumerate(added) for k in idx):
                stats["duplicates"] += 1
                continue
            out.append(models[j][i])
            mine.append(i)
            stats["added"] += 1
        added.append(mine)
    return sort_cells(out)


def dense_reference_ensemble_dumps(dumps: Sequence[dict], min_iou: float = DEFAULT_MIN_IOU,
                                   quorum: Optional[int] = None, sources: Optional[Sequence[str]] = None,
                                   tie: str = "out") -> dict:
    """:func:`segpc.ensemble.ensemble_dumps` with :func:`dense_image` as the per-image scheme."""
    return ensemble_dumps(dumps, min_iou, quorum, sources, tie, merge=dense_image)
