"""Random PanNuke-layout ground truth and predictions for the metric tests."""
import numpy as np

from segpc.datasets.pannuke import synthetic_image
from segpc.evaluation.pq import TISSUES


def perturb(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible prediction of a PanNuke (H, W, 6) mask: shifted, eroded or grown instances,
    dropped ones, wrong classes, merged neighbours and spurious blobs; no two instances overlap."""
    h, w = mask.shape[:2]
    canvas = np.zeros((h, w), np.int64)
    classes = []
    for c in range(5):
        for i in np.unique(mask[..., c]):
            if i == 0 or rng.random() < 0.15:
                continue
            m = mask[..., c] == i
            m = np.roll(m, (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), axis=(0, 1))
            if rng.random() < 0.3:  # grow or shrink by one pixel (4-neighbourhood)
                pad = np.pad(m, 1)
                nbrs = (pad[:-2, 1:-1], pad[2:, 1:-1], pad[1:-1, :-2], pad[1:-1, 2:])
                m = (m | np.logical_or.reduce(nbrs)) if rng.random() < 0.5 else (m & np.logical_and.reduce(nbrs))
            free = m & (canvas == 0)
            if not free.any():
                continue
            if classes and rng.random() < 0.05:  # merged into the previous instance
                canvas[free] = len(classes)
                continue
            classes.append(int(rng.integers(0, 5)) if rng.random() < 0.2 else c)
            canvas[free] = len(classes)
    for _ in range(int(rng.integers(0, 4))):  # spurious detections
        y, x = rng.integers(0, h - 6), rng.integers(0, w - 6)
        free = np.zeros((h, w), bool)
        free[y:y + int(rng.integers(2, 7)), x:x + int(rng.integers(2, 7))] = True
        free &= canvas == 0
        if free.any():
            classes.append(int(rng.integers(0, 5)))
            canvas[free] = len(classes)
    out = np.zeros((h, w, 6))
    ids = rng.permutation(np.arange(1, 3000))[: len(classes)]
    for k, c in enumerate(classes, start=1):
        out[..., c][canvas == k] = ids[k - 1]
    out[..., 5] = canvas == 0
    return out


def random_split(n, seed, size=64, tissues=TISSUES[:4]):
    rng = np.random.default_rng(seed)
    true = np.zeros((n, size, size, 6))
    pred = np.zeros((n, size, size, 6))
    for i in range(n):
        _, true[i] = synthetic_image(rng, size, max_nuclei=int(rng.integers(1, 25)), empty_prob=0.1)
        pred[i] = perturb(true[i], rng) if rng.random() > 0.05 else 0  # some empty predictions
    types = np.array([tissues[j] for j in rng.integers(0, len(tissues), n)])
    return true, pred, types
