"""Load mmengine checkpoints under torch >= 2.6, where ``torch.load`` defaults to ``weights_only``.

mmengine 0.10.7 calls ``torch.load(path)`` without ``weights_only``; its own checkpoints hold,
besides tensors, the message hub's :class:`~mmengine.logging.HistoryBuffer` (numpy arrays) and
numpy scalars, which the weights-only unpickler refuses. Rather than switch the safe loader off,
we allow exactly those types (``torch.serialization.add_safe_globals``), so checkpoints from
untrusted sources still cannot run arbitrary code.

A HistoryBuffer pickles its statistics methods as ``getattr(HistoryBuffer, 'mean')``; rather than
allow ``getattr`` itself, :func:`history_buffer_getattr` is registered under that name and
resolves nothing but those methods.
"""
from __future__ import annotations

import pickle

import numpy as np
import torch


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


def allow_mmengine_checkpoints() -> None:
    """Let ``torch.load(weights_only=True)`` read mmengine's own checkpoints (idempotent)."""
    if hasattr(torch.serialization, "add_safe_globals"):
        torch.serialization.add_safe_globals(mmengine_safe_globals())
