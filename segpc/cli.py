"""Shared plumbing for the thin command-line wrappers in ``tools/``."""
from __future__ import annotations

import sys
from typing import Callable, Sequence

from segpc.io import SegPCError


def run(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a tool's ``main``; bad input (:class:`SegPCError`) → one line on stderr, exit 2."""
    try:
        return int(main(argv) or 0)
    except SegPCError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
