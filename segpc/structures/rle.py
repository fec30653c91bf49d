"""The RLE codec: COCO run-length encoding of binary masks, the one place that writes or reads it.

An RLE is pycocotools' compressed RLE dict, ``{"size": [H, W], "counts": str}``, with ``counts``
as ``str`` so that it is plain data (JSON). COCO runs are column-major (Fortran order): the
counts alternate zeros and ones, starting with zeros (possibly a count of 0).

Encoders: :func:`encode` / :func:`encode_many` (dense masks, by pycocotools),
:func:`encode_crop` (a crop placed in a frame: runs found on the crop only) and
:func:`encode_positions` (the sorted column-major indices of the set pixels). All of them give
the very string ``pycocotools.mask.encode`` gives for the dense mask (canonical counts).
Readers: :func:`decode`, :func:`area`, :func:`bbox_xyxy`, :func:`intersect`, :func:`rle_iou` (by
pycocotools) and :func:`decode_counts` (the counts as integers, vectorised, for painting runs
into a crop without a dense frame: :meth:`segpc.structures.CropMask.from_rle`).

Kaggle's run-length text (Sartorius, Data Science Bowl 2018: ``"start length ..."``, 1-indexed,
row-major) is read and written here too (:func:`kaggle_runs` and the ``kaggle_*`` functions).

Light: numpy and pycocotools.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from pycocotools import mask as mask_utils


def as_coco(rle: dict) -> dict:
    """The RLE in the form pycocotools' functions take (``bytes`` counts; uncompressed RLEs,
    ``counts`` as a list, are compressed)."""
    counts = rle["counts"]
    if isinstance(counts, str):
        return {"size": rle["size"], "counts": counts.encode("ascii")}
    if isinstance(counts, list):
        h, w = rle["size"]
        return mask_utils.frPyObjects(rle, h, w)
    return rle


def _plain(rle: dict) -> dict:
    """A pycocotools RLE → ours: ``counts`` as ``str``, ``size`` as a list of ints."""
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def compressed(rle: dict) -> dict:
    """Any COCO RLE (counts as ``str``, ``bytes`` or an uncompressed list) → ours."""
    if isinstance(rle["counts"], str):
        return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"]}
    return _plain(as_coco(rle))


# --------------------------------------------------------------------------- encoding


def encode(mask: np.ndarray) -> dict:
    """Binary ``(H, W)`` mask (nonzero = in) → compressed RLE with ``str`` counts."""
    return _plain(mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8)))


def encode_many(masks: np.ndarray) -> list[dict]:
    """``(N, H, W)`` binary masks → list of RLEs (one C call for all of them)."""
    if len(masks) == 0:
        return []
    return [_plain(r) for r in
            mask_utils.encode(np.asfortranarray(np.transpose(masks, (1, 2, 0)), dtype=np.uint8))]


def encode_runs(starts: np.ndarray, ends: np.ndarray, size: Sequence[int]) -> dict:
    """RLE of the mask whose pixels are the runs ``[starts[i], ends[i])`` of column-major flat
    positions in a ``size = (H, W)`` frame (sorted, disjoint; touching runs are joined)."""
    h, w = int(size[0]), int(size[1])
    total = h * w
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if len(starts) == 0:
        counts = [total]
    else:
        touching = starts[1:] == ends[:-1]  # e.g. a run that goes on at the top of the next column
        if touching.any():
            keep = ~touching
            starts = np.concatenate((starts[:1], starts[1:][keep]))
            ends = np.concatenate((ends[:-1][keep], ends[-1:]))
        edges = np.empty(2 * len(starts) + 2, dtype=np.int64)
        edges[0], edges[-1] = 0, total
        edges[1:-1:2] = starts
        edges[2:-1:2] = ends
        counts = np.diff(edges)
        if counts[-1] == 0:  # pycocotools writes no trailing run of zeros after the last one
            counts = counts[:-1]
        counts = counts.tolist()
    return _plain(mask_utils.frPyObjects({"counts": counts, "size": [h, w]}, h, w))


def encode_crop(crop: np.ndarray, y0: int, x0: int, size: Sequence[int]) -> dict:
    """RLE of a binary ``crop`` placed at ``(y0, x0)`` in a ``size = (H, W)`` frame.

    Equal to :func:`encode` of the full frame, but the runs are found on the crop only.
    """
    h = int(size[0])
    ch, cw = crop.shape
    cols = np.zeros((cw, ch + 2), dtype=np.int8)  # column-major, a 0 above and below every column
    cols[:, 1:-1] = crop.T
    d = np.diff(cols.ravel())
    starts, ends = np.flatnonzero(d == 1) + 1, np.flatnonzero(d == -1) + 1  # ends exclusive
    c_s, r_s = np.divmod(starts, ch + 2)
    c_e, r_e = np.divmod(ends, ch + 2)
    # frame positions; rows are shifted by the padding row
    return encode_runs((x0 + c_s) * h + (y0 - 1) + r_s, (x0 + c_e) * h + (y0 - 1) + r_e, size)


def encode_positions(pos: np.ndarray, size: Sequence[int]) -> dict:
    """RLE of the mask whose set pixels are the sorted column-major (Fortran) flat indices ``pos``."""
    pos = np.asarray(pos, dtype=np.int64)
    if len(pos) == 0:
        return encode_runs(pos, pos, size)
    br = np.flatnonzero(np.diff(pos) != 1)
    starts = pos[np.concatenate(([0], br + 1))]
    ends = pos[np.concatenate((br, [len(pos) - 1]))] + 1
    return encode_runs(starts, ends, size)


# --------------------------------------------------------------------------- reading


def decode(rle: dict) -> np.ndarray:
    """RLE → ``(H, W)`` uint8 0/1 mask."""
    return mask_utils.decode(as_coco(rle))


def area(rle: dict) -> int:
    return int(mask_utils.area(as_coco(rle)))


def bbox_xyxy(rle: dict) -> list[int]:
    """Tight box ``[x1, y1, x2, y2]`` (x2, y2 exclusive) of an RLE; zeros if empty."""
    x, y, w, h = (int(v) for v in mask_utils.toBbox(as_coco(rle)))
    return [x, y, x + w, y + h]


def intersect(a: dict, b: dict) -> dict:
    """RLE of ``a ∩ b``."""
    return _plain(mask_utils.merge([as_coco(a), as_coco(b)], intersect=True))


def rle_iou(a: Sequence[dict], b: Sequence[dict]) -> np.ndarray:
    """IoUs ``len(a) x len(b)`` (pycocotools: pairs whose boxes do not overlap are not counted)."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    ious = mask_utils.iou([as_coco(r) for r in a], [as_coco(r) for r in b], [0] * len(b))
    return np.asarray(ious, dtype=np.float64).reshape(len(a), len(b))


def decode_counts(counts) -> np.ndarray:
    """RLE counts → int64 array; decodes pycocotools' compressed string, vectorised.

    The compressed format (pycocotools ``rleFrString``): each count is a little-endian run of
    5-bit chunks stored as ``chr(48 + chunk)``, bit 0x20 of a char meaning "more chunks follow",
    bit 0x10 of the last one the sign; counts from the third on are stored as deltas to the
    count two before. A list (uncompressed RLE) is returned as an array.
    """
    if isinstance(counts, (list, tuple, np.ndarray)):
        out = np.asarray(counts, dtype=np.int64).reshape(-1)
        if np.any(out < 0):
            raise ValueError("negative RLE count")
        return out
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    v = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48
    if len(v) == 0:
        return np.zeros(0, dtype=np.int64)
    if np.any((v < 0) | (v > 63)):
        raise ValueError("not a compressed RLE string")
    last = np.flatnonzero((v & 0x20) == 0)  # last chunk of every value
    if len(last) == 0 or last[-1] != len(v) - 1:
        raise ValueError("truncated compressed RLE string")
    first = np.concatenate(([0], last[:-1] + 1))
    nchunks = last - first + 1
    pos = np.arange(len(v)) - np.repeat(first, nchunks)
    x = np.add.reduceat((v & 0x1F) << (5 * pos), first)
    neg = (v[last] & 0x10) != 0
    x[neg] |= -(np.int64(1) << (5 * nchunks[neg]))
    x[1::2] = np.cumsum(x[1::2])  # undo the delta coding: x[m] += x[m-2] for m > 2
    x[2::2] = np.cumsum(x[2::2])
    if np.any(x < 0):
        raise ValueError("negative RLE count")
    return x


def polygons_to_rle(polygons: list, size: Sequence[int]) -> dict:
    """COCO polygons (a list of ``[x1, y1, x2, y2, ...]``) → the RLE of their union."""
    h, w = int(size[0]), int(size[1])
    return _plain(mask_utils.merge(mask_utils.frPyObjects(polygons, h, w)))


# --------------------------------------------------------------------------- Kaggle run-length
#
# Kaggle's cell competitions (Sartorius, the Data Science Bowl 2018) write a mask as
# "start length start length ...": starts 1-indexed, pixels numbered row by row (the mask
# flattened in C order). Read with :func:`kaggle_runs` (checked), write with :func:`kaggle_encode`.


def kaggle_runs(text: str, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Kaggle run-length text → 0-indexed ``(starts, ends)`` (end exclusive, row-major pixels).

    Runs come back sorted, adjacent runs joined. Raises ``ValueError`` (one line) on an odd
    number of values, a value that is not an integer, a start below 1, a length below 1, a
    run past the ``height x width`` image, or overlapping runs. An empty text is an empty mask.
    """
    parts = text.split()
    if len(parts) % 2:
        raise ValueError(f"odd number of run-length values ({len(parts)})")
    try:
        v = np.array(parts, dtype=np.int64)
    except ValueError:
        bad = next(p for p in parts if not p.lstrip("-").isdigit())
        raise ValueError(f"run-length value {bad!r} is not an integer") from None
    starts, lengths = v[0::2] - 1, v[1::2]
    if len(starts) and starts.min() < 0:
        raise ValueError(f"run start {int(starts.min()) + 1} is below 1 (starts are 1-indexed)")
    if len(lengths) and lengths.min() < 1:
        raise ValueError(f"run length {int(lengths.min())} is below 1")
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], starts[order] + lengths[order]
    n = int(height) * int(width)
    if len(ends) and ends.max() > n:
        i = int(np.argmax(ends))
        raise ValueError(f"run {int(starts[i]) + 1} {int(ends[i] - starts[i])} ends past the "
                         f"{width}x{height} image ({n} pixels)")
    if np.any(starts[1:] < ends[:-1]):
        i = int(np.flatnonzero(starts[1:] < ends[:-1])[0])
        raise ValueError(f"runs {int(starts[i]) + 1} and {int(starts[i + 1]) + 1} overlap")
    keep = np.concatenate(([True], starts[1:] != ends[:-1])) if len(starts) else np.zeros(0, bool)
    last = np.concatenate((keep[1:], [True])) if len(starts) else keep
    return starts[keep], ends[last]


def kaggle_decode(text: str, height: int, width: int) -> np.ndarray:
    """Kaggle run-length text → ``(height, width)`` uint8 0/1 mask."""
    starts, ends = kaggle_runs(text, height, width)
    flat = np.zeros(int(height) * int(width), dtype=np.uint8)
    for s, e in zip(starts.tolist(), ends.tolist()):
        flat[s:e] = 1
    return flat.reshape(int(height), int(width))


def kaggle_encode(mask: np.ndarray) -> str:
    """Binary ``(H, W)`` mask → Kaggle run-length text (1-indexed starts, row-major)."""
    flat = np.asarray(mask).reshape(-1) != 0
    edges = np.flatnonzero(np.diff(np.concatenate(([False], flat, [False])).view(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    out = np.empty(2 * len(starts), dtype=np.int64)
    out[0::2], out[1::2] = starts + 1, ends - starts
    return " ".join(map(str, out.tolist()))


def kaggle_to_rle(text: str, height: int, width: int) -> dict:
    """Kaggle run-length text → the mask's compressed RLE (as :func:`encode` gives it)."""
    return encode(kaggle_decode(text, height, width))


def rle_to_kaggle(rle: dict) -> str:
    """Compressed (or uncompressed) RLE → Kaggle run-length text."""
    return kaggle_encode(decode(rle))


def kaggle_to_rle_t(text: str, height: int, width: int) -> dict:
    """Kaggle run-length text → compressed RLE of the **transposed** ``(width, height)`` mask.

    Row-major runs of a mask are the column-major (COCO) runs of its transpose, so this needs
    no decoding. Areas and IoUs are the same as the mask's, which is all a metric needs; both
    sides of a comparison must then be transposed.
    """
    starts, ends = kaggle_runs(text, height, width)
    return encode_runs(starts, ends, (int(width), int(height)))
