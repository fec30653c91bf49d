"""Load mmengine checkpoints under torch >= 2.6, where ``torch.load`` defaults to ``weights_only``.

mmengine 0.10.7 calls ``torch.load(path)`` without ``weights_only``; its own checkpoints hold,
besides tensors, the message hub's :class:`~mmengine.logging.HistoryBuffer` (numpy arrays) and
numpy scalars, which the weights-only unpickler refuses. Rather than switch the safe loader off,
segpc allows exactly those types (``torch.serialization.add_safe_globals``), so checkpoints from
untrusted sources still cannot run arbitrary code.

A HistoryBuffer pickles its statistics methods as ``getattr(HistoryBuffer, 'mean')``; rather than
allow ``getattr`` itself, :func:`history_buffer_getattr` is registered under that name and
resolves nothing but those methods.
"""
from __future__ import annotations

import os
import pickle
import zipfile
import zlib

import numpy as np
import torch

from segpc.io import SegPCError


def history_buffer_getattr(obj, name: str):
    """``getattr`` restricted to HistoryBuffer's methods (all that mmengine pickles with it)."""
    from mmengine.logging import HistoryBuffer

    if obj is HistoryBuffer and isinstance(name, str) and not name.startswith("_") \
            and callable(getattr(HistoryBuffer, name, None)):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f"checkpoint asks for getattr({obj!r}, {name!r}): not allowed")


def mmengine_safe_globals() -> list:
    """The non-tensor types that mmengine/mmdet checkpoints pickle."""
    from mmengine.logging import HistoryBuffer

    # numpy < 2 keeps these in numpy.core; numpy >= 2 in numpy._core (reachable via numpy.core).
    multiarray = np.core.multiarray
    dtype_classes = {type(np.dtype(t)) for t in np.sctypeDict.values()}
    return [
        HistoryBuffer,
        (history_buffer_getattr, "builtins.getattr"),
        np.ndarray,
        np.dtype,
        multiarray._reconstruct,
        multiarray.scalar,
        *sorted(dtype_classes, key=lambda c: c.__name__),
    ]


def check_checkpoint(path: str | os.PathLike, what: str = "checkpoint") -> None:
    """Raise a one-line :class:`SegPCError` naming ``path`` unless it is a complete checkpoint.

    ``torch.save`` writes a zip archive: a truncated or corrupt file is found here (central
    directory, CRC of every member) before torch's loader fails deep inside mmengine with
    ``RuntimeError ... central directory``. Files of torch's legacy format (a pickle) are let
    through to torch.
    """
    if not os.path.isfile(path):
        raise SegPCError(path, f"{what} not found")
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"\x80"):  # legacy (pre-zip) torch.save: a pickle
        return
    if head != b"PK\x03\x04":
        raise SegPCError(path, f"not a PyTorch {what} (neither a zip archive nor a pickle)")
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise SegPCError(path, f"{what} is truncated or corrupt ({e}); save or download it again") from None
    if bad is not None:
        raise SegPCError(path, f"{what} is corrupt (bad checksum in {bad}); save or download it again")


def allow_mmengine_checkpoints() -> None:
    """Let ``torch.load(weights_only=True)`` read mmengine's own checkpoints (idempotent)."""
    if hasattr(torch.serialization, "add_safe_globals"):
        torch.serialization.add_safe_globals(mmengine_safe_globals())
