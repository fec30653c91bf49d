"""File helpers shared by every segpc tool: reading SegPC images and masks, atomic writes.

Everything here is light (numpy + OpenCV): the data tools and the metric import it without
torch or mmdet.

Errors on bad input are raised as :class:`SegPCError` whose message is one line of the form
``<path>: <what is wrong>``; the command-line tools print it and exit with status 2.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, Union

import cv2
import numpy as np

IMAGE_EXTS = (".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff")
MASK_EXTS = (".bmp", ".png")

# SegPC mask values.
BACKGROUND, CYTOPLASM, NUCLEUS = 0, 20, 40
PRED_VALUES = (CYTOPLASM, NUCLEUS)  # the pixels of a predicted cell (a submission mask)


class SegPCError(Exception):
    """Bad input or missing data; the message is one line that names the file."""

    def __init__(self, path: str | os.PathLike | None, problem: str | None = None):
        if problem is None:  # one argument: a whole message, as torch's DataLoader re-raises a
            # worker's error (its traceback as text): keep the original one-line message
            lines = [line for line in str(path).splitlines() if line.strip()] or [""]
            path, problem = None, lines[-1].split("SegPCError: ", 1)[-1]
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")

    def __reduce__(self):  # picklable (process pools, DataLoader workers): rebuild from both fields
        return type(self), (self.path, self.problem)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a colour image as an ``(H, W, 3)`` uint8 BGR array."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SegPCError(path, "cannot read image (missing, corrupt or unsupported format)")
    return img


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image file (decodes it: OpenCV has no header-only read)."""
    return read_image(path).shape[:2]


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a SegPC mask as an ``(H, W)`` uint8 array; 3-channel masks keep their first channel."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise SegPCError(path, "cannot read mask (missing, corrupt or unsupported format)")
    if mask.ndim == 3:
        mask = mask[..., 0]
    if mask.dtype != np.uint8:
        if mask.dtype == np.uint16 and mask.max() <= 255:
            mask = mask.astype(np.uint8)
        else:
            raise SegPCError(path, f"mask must be 8-bit, got {mask.dtype}")
    return np.ascontiguousarray(mask)


def split_mask_stem(stem: str) -> tuple[str, str]:
    """``'106_3'`` → ``('106', '3')``: a mask's image id and cell index (last ``_`` splits)."""
    image_id, sep, k = stem.rpartition("_")
    if not sep or not image_id or not k:
        raise ValueError(stem)
    return image_id, k


def natural_key(name: str) -> tuple:
    """Sort ``'9' < '10' < 'a'``: image ids are mostly numbers."""
    return tuple((0, int(t), "") if t.isdecimal() else (1, 0, t) for t in re.split(r"(\d+)", name) if t)


def mask_files(folder: str | os.PathLike) -> dict[str, list[Path]]:
    """``<id>_<k>.bmp|png`` files of a folder grouped by image id, in natural name order
    (hidden files and other extensions skipped); a mask name without ``_<k>`` is an error."""
    folder = Path(folder)
    groups: dict[str, list[Path]] = {}
    with os.scandir(folder) as it:
        entries = sorted((e.name for e in it if e.is_file() and not e.name.startswith(".")),
                         key=natural_key)
    for fname in entries:
        stem, ext = os.path.splitext(fname)
        if ext.lower() not in MASK_EXTS:
            continue
        try:
            image_id, _ = split_mask_stem(stem)
        except ValueError:
            raise SegPCError(folder / fname, "mask name must be <image id>_<cell index>") from None
        groups.setdefault(image_id, []).append(folder / fname)
    return groups


# --------------------------------------------------------------------------- atomic writes

# mkstemp/mkdtemp create owner-only (0600/0700) entries; finished outputs get the usual umask modes.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the suffix so that writers that choose the format from the
    extension (OpenCV) still work. On any error the temporary file is removed, so nothing
    half-written is ever left under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# Names (regular expressions over the ``/``-separated path inside the folder) of what a tool
# writes into an output folder: the ownership check below replaces only folders holding these.
SUBMISSION_FILES = (r"[^/]+_[0-9]+\.bmp",)  # the challenge submission: <image id>_<k>.bmp


Owns = Union[Sequence[str], Callable[[str], bool]]


def check_output_dir(path: str | os.PathLike, owns: Owns = (), overwrite: bool = False) -> None:
    """Raise :class:`SegPCError` unless a tool writing only ``owns`` may replace the folder ``path``.

    ``owns``: regular expressions over the ``/``-separated paths inside the folder (a
    sub-folder is the tool's when a pattern starts with its name and ``/``), or a predicate
    on those paths (sub-folders end with ``/``). A missing or empty folder may always be
    written. A folder holding only the tool's names (a previous output) is replaced only with
    ``overwrite``. Anything else inside (a checkpoint, the user's images, a sub-folder it does
    not write) means the folder is not the tool's to replace, ``overwrite`` or not.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir() or path.is_symlink():
        raise SegPCError(path, "exists and is not a folder; choose a new folder")
    if callable(owns):
        owned_dir, owned_file = (lambda rel: owns(rel + "/")), owns
    else:
        patterns = [re.compile(p) for p in owns]
        owned_dir = lambda rel: any(p.pattern.startswith(re.escape(rel) + "/") for p in patterns)  # noqa: E731
        owned_file = lambda rel: any(p.fullmatch(rel) for p in patterns)  # noqa: E731
    found = 0
    stack = [(path, "")]
    while stack:
        folder, prefix = stack.pop()
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                if owned_dir(rel):
                    stack.append((Path(entry.path), rel + "/"))
                    continue
            elif owned_file(rel):
                found += 1
                continue
            raise SegPCError(path, f"holds {rel!r}, which this tool did not write; nothing was "
                                   "changed: choose a new or empty folder")
    if found and not overwrite:
        raise SegPCError(path, f"holds a previous output ({found} files); pass --overwrite "
                               "(overwrite=True) to replace it")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, owns: Owns = (), overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces ``path`` (whole) if the block succeeds.

    ``owns``/``overwrite``: what may already be there, see :func:`check_output_dir` (checked
    before the block and again before the swap); by default only a missing or empty folder is
    replaced, so nothing the tool did not write is ever deleted.
    """
    path = Path(path)
    check_output_dir(path, owns, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        check_output_dir(path, owns, overwrite)  # it may have changed while the block ran
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(obj: Any, path: str | os.PathLike) -> None:
    # json.dumps (C encoder, one write) rather than json.dump (pure-Python chunked encoder):
    # same bytes, several times faster for large COCO files
    text = json.dumps(obj)
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def write_image(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write an image (format from the extension) atomically."""
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), img):
            raise SegPCError(path, "cannot write image")


def load_json(path: str | os.PathLike) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise SegPCError(path, "file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SegPCError(path, f"not valid JSON ({e})") from None
