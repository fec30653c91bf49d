"""The synthetic SegPC generator (segpc.datasets.synthetic) and tools/make_synthetic.py."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from helpers import load_script
from segpc.cli import run
from segpc.datasets.synthetic import (
    generate_sample,
    image_rng,
    split_seed,
    write_dataset,
    write_splits,
)
from segpc.io import SegPCError, read_image, read_mask, split_mask_stem

SIZE = (96, 128)
NUM = 24
SEED = 7
KERNEL = np.ones((3, 3), np.uint8)


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _masks_by_image(root: Path) -> dict[str, list[np.ndarray]]:
    """Masks per image id, in k order (ids without masks are absent)."""
    out: dict[str, list[tuple[int, np.ndarray]]] = {}
    for p in (root / "y").glob("*.bmp"):
        image_id, k = split_mask_stem(p.stem)
        out.setdefault(image_id, []).append((int(k), read_mask(p)))
    return {i: [m for _, m in sorted(v, key=lambda t: t[0])] for i, v in out.items()}


def _touches(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two binary masks overlap or are 8-neighbours somewhere."""
    return bool((cv2.dilate(a.astype(np.uint8), KERNEL) & b.astype(np.uint8)).any())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("synthetic") / "a"
    return root, write_dataset(root, NUM, seed=SEED, size=SIZE)


@pytest.fixture(scope="module")
def masks(dataset: tuple[Path, list[str]]) -> dict[str, list[np.ndarray]]:
    return _masks_by_image(dataset[0])


@pytest.fixture(scope="module")
def tool(repo_root: Path) -> ModuleType:
    return load_script("tools/make_synthetic.py")


# --------------------------------------------------------------------------- layout, determinism


def test_layout(dataset, masks):
    root, ids = dataset
    assert ids == [str(i) for i in range(1, NUM + 1)]
    assert sorted(p.name for p in root.iterdir()) == ["x", "y"]
    assert sorted(p.name for p in (root / "x").iterdir()) == sorted(f"{i}.bmp" for i in ids)
    for image_id in ids:
        img = read_image(root / "x" / f"{image_id}.bmp")
        assert img.shape == SIZE + (3,) and img.dtype == np.uint8
    # Mask files are named <id>_1 .. <id>_n with no gaps, all for written images.
    names = {p.stem for p in (root / "y").iterdir()}
    assert {f"{i}_{k}" for i, ms in masks.items() for k in range(1, len(ms) + 1)} == names
    assert set(masks) <= set(ids)
    assert all(p.suffix == ".bmp" for p in (root / "y").iterdir())


def test_same_seed_is_byte_identical(dataset, tmp_path):
    root, _ = dataset
    write_dataset(tmp_path / "b", NUM, seed=SEED, size=SIZE)
    first, second = _files(root), _files(tmp_path / "b")
    assert len(first) > NUM  # images and masks
    assert first == second


def test_different_seed_differs(dataset, tmp_path):
    root, ids = dataset
    write_dataset(tmp_path / "b", NUM, seed=SEED + 1, size=SIZE)
    for image_id in ids:
        name = f"x/{image_id}.bmp"
        assert (root / name).read_bytes() != (tmp_path / "b" / name).read_bytes(), name


def test_image_depends_only_on_seed_and_index(dataset, tmp_path):
    root, _ = dataset
    # Fewer images, another first id: image i is still drawn from image_rng(seed, i).
    ids = write_dataset(tmp_path / "b", 3, seed=SEED, size=SIZE, first_id=100)
    assert ids == ["100", "101", "102"]
    for i, image_id in enumerate(ids):
        img, ms = generate_sample(image_rng(SEED, i), SIZE)
        np.testing.assert_array_equal(read_image(tmp_path / "b" / "x" / f"{image_id}.bmp"), img)
        np.testing.assert_array_equal(read_image(root / "x" / f"{i + 1}.bmp"), img)
        for k, m in enumerate(ms, start=1):
            np.testing.assert_array_equal(read_mask(tmp_path / "b" / "y" / f"{image_id}_{k}.bmp"), m)
        assert not (tmp_path / "b" / "y" / f"{image_id}_{len(ms) + 1}.bmp").exists()


# --------------------------------------------------------------------------- mask content


def test_masks_are_valid_cells(masks):
    count = 0
    for image_id, ms in masks.items():
        for m in ms:
            count += 1
            assert m.shape == SIZE and m.dtype == np.uint8
            assert set(np.unique(m).tolist()) <= {0, 20, 40}, image_id
            assert (m == 20).any(), image_id  # every cell shows some cytoplasm
            assert (m > 0).sum() >= 20, image_id  # no slivers: a cell mostly off the frame is dropped
            n_components, _ = cv2.connectedComponents((m > 0).astype(np.uint8))
            assert n_components == 2, image_id  # background + one cell
    assert count >= NUM  # on average several cells per image


def test_generate_sample_masks_and_nucleus():
    rng = np.random.default_rng(0)
    with_nucleus = total = 0
    for _ in range(10):
        img, ms = generate_sample(rng, SIZE)
        assert img.shape == SIZE + (3,) and img.dtype == np.uint8
        for m in ms:
            total += 1
            cell, nucleus = m > 0, m == 40
            assert cell.sum() > 0
            assert not (nucleus & ~cell).any()
            with_nucleus += bool(nucleus.any())
    assert total > 0 and with_nucleus >= 0.9 * total  # only a few cells have the nucleus outside the frame


def test_masks_match_what_is_drawn(dataset, masks):
    """Visible nucleus is darker than visible cytoplasm, which is bluer than it is red."""
    root, _ = dataset
    checked = 0
    for image_id, ms in masks.items():
        img = read_image(root / "x" / f"{image_id}.bmp").astype(np.float64)
        for k, m in enumerate(ms):
            covered = np.zeros(SIZE, bool)
            for later in ms[k + 1:]:
                covered |= later > 0
            cyt, nuc = (m == 20) & ~covered, (m == 40) & ~covered
            if cyt.sum() < 20 or nuc.sum() < 20:
                continue
            checked += 1
            b, g, r = img[cyt].mean(axis=0)
            assert b - r > 15, (image_id, k)  # blue cytoplasm (BGR)
            assert img[nuc].mean() < img[cyt].mean() - 10, (image_id, k)
    assert checked >= NUM // 2


def test_some_image_has_no_cell(dataset, masks):
    root, ids = dataset
    empty = [i for i in ids if i not in masks]
    assert empty
    assert all((root / "x" / f"{i}.bmp").is_file() for i in empty)
    assert not any((root / "y").glob(f"{empty[0]}_*"))


def test_cell_count_follows_the_arguments():
    rng = np.random.default_rng(1)
    assert generate_sample(rng, SIZE, empty_prob=1.0)[1] == []
    assert generate_sample(rng, SIZE, max_cells=0, empty_prob=0.0)[1] == []
    # One cell, never an empty draw: one mask (a cell only fails to fit after 5 placements).
    counts = [len(generate_sample(rng, SIZE, max_cells=1, empty_prob=0.0)[1]) for _ in range(10)]
    assert max(counts) == 1 and sum(counts) >= 8


def test_some_cells_touch_or_overlap(masks):
    touching = overlapping = 0
    for ms in masks.values():
        for i in range(len(ms)):
            for j in range(i + 1, len(ms)):
                a, b = ms[i] > 0, ms[j] > 0
                touching += _touches(a, b)
                overlapping += bool((a & b).any())
    assert touching >= 2
    assert overlapping >= 1  # the earlier cell's mask keeps the part hidden by the later cell


def test_some_cells_cut_by_the_border(masks):
    def on_border(m: np.ndarray) -> bool:
        return bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())

    cut = [on_border(m) for ms in masks.values() for m in ms]
    assert len(cut) // 5 <= sum(cut) < len(cut)  # about a third of the cells at this size


def test_some_nucleus_reaches_the_cell_edge(masks):
    def contact(m: np.ndarray) -> int:
        """Background pixels next to the nucleus (dilation does not reach past the frame)."""
        return int(((cv2.dilate((m == 40).astype(np.uint8), KERNEL) > 0) & (m == 0)).sum())

    contacts = [contact(m) for ms in masks.values() for m in ms]
    # A nucleus pushed through the membrane (then clipped to the cell) shares a long stretch of
    # the cell's edge; rasterisation alone gives a few pixels at most.
    assert sum(c >= 12 for c in contacts) >= 3
    assert sum(c == 0 for c in contacts) > len(contacts) // 2


# --------------------------------------------------------------------------- overwrite, splits, bad input


def test_refuses_to_mix_then_overwrites(tmp_path):
    out = tmp_path / "d"
    write_dataset(out, 4, seed=0, size=SIZE)
    (out / "README.txt").write_text("kept")
    with pytest.raises(SegPCError, match="previous output"):
        write_dataset(out, 2, seed=0, size=SIZE)
    assert len(list((out / "x").iterdir())) == 4
    write_dataset(out, 2, seed=1, size=SIZE, overwrite=True)
    assert sorted(p.name for p in (out / "x").iterdir()) == ["1.bmp", "2.bmp"]
    assert {split_mask_stem(p.stem)[0] for p in (out / "y").iterdir()} <= {"1", "2"}
    assert (out / "README.txt").read_text() == "kept"
    assert sorted(p.name for p in out.iterdir()) == ["README.txt", "x", "y"]  # no temporaries left


def test_write_splits(tmp_path):
    ids = write_splits(tmp_path / "s", {"train": 3, "validation": 2}, seed=0, size=SIZE)
    assert ids == {"train": ["1", "2", "3"], "validation": ["4", "5"]}
    assert sorted(p.name for p in (tmp_path / "s" / "validation" / "x").iterdir()) == ["4.bmp", "5.bmp"]
    assert split_seed(0, "train") != split_seed(0, "validation")
    # Each split is write_dataset with the split's seed; the two splits differ.
    write_dataset(tmp_path / "v", 2, seed=split_seed(0, "validation"), size=SIZE, first_id=4)
    assert _files(tmp_path / "v") == _files(tmp_path / "s" / "validation")
    train_1 = (tmp_path / "s" / "train" / "x" / "1.bmp").read_bytes()
    assert train_1 != (tmp_path / "s" / "validation" / "x" / "4.bmp").read_bytes()
    write_splits(tmp_path / "t", {"train": 3, "validation": 2}, seed=0, size=SIZE)
    assert _files(tmp_path / "t") == _files(tmp_path / "s")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num": 0}, "num must be a positive integer, got 0"),
        ({"num": -2}, "num must be a positive integer, got -2"),
        ({"seed": -1}, "seed must be a non-negative integer, got -1"),
        ({"size": (-3, 100)}, "size must be at least 32x32 (H x W), got -3x100"),
        ({"size": (96, 31)}, "size must be at least 32x32 (H x W), got 96x31"),
        ({"max_cells": -1}, "max_cells must be >= 0, got -1"),
        ({"empty_prob": 1.5}, "empty_prob must be in [0, 1], got 1.5"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    args = {"num": 2, "seed": 0, "size": SIZE, **kwargs}
    with pytest.raises(SegPCError) as exc:
        write_dataset(tmp_path / "out", **args)
    assert str(exc.value) == message
    assert not (tmp_path / "out").exists()


def test_generate_sample_bad_size():
    with pytest.raises(SegPCError, match="size must be two integers"):
        generate_sample(np.random.default_rng(0), (96,))


# --------------------------------------------------------------------------- tool


def test_cli_writes_layout(tool, tmp_path, capsys):
    out = tmp_path / "cli"
    assert run(tool.main, [str(out), "--num", "3", "--seed", "1", "--size", "96", "128"]) == 0
    stdout = capsys.readouterr().out
    n_masks = len(list((out / "y").iterdir()))
    assert "wrote 3 images (96x128, ids 1..3, " in stdout
    assert f"and {n_masks} cell masks to {out}" in stdout
    write_dataset(tmp_path / "api", 3, seed=1, size=SIZE)
    assert _files(out) == _files(tmp_path / "api")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--num", "0"], "error: num must be a positive integer, got 0"),
        (["--size", "-5", "128"], "error: size must be at least 32x32 (H x W), got -5x128"),
        (["--seed", "-1"], "error: seed must be a non-negative integer, got -1"),
    ],
)
def test_cli_bad_arguments(tool, tmp_path, capsys, argv, message):
    assert run(tool.main, [str(tmp_path / "out"), *argv]) == 2
    assert capsys.readouterr().err.strip() == message
    assert not (tmp_path / "out").exists()


def test_cli_refuses_existing_then_overwrites(tool, tmp_path, capsys):
    out = tmp_path / "cli"
    args = [str(out), "--num", "1", "--size", "96", "128"]
    assert run(tool.main, args) == 0
    assert run(tool.main, args) == 2
    assert "previous output" in capsys.readouterr().err
    assert run(tool.main, [*args, "--overwrite"]) == 0


def test_cli_argparse_error(tool, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        tool.main([str(tmp_path / "out"), "--num", "x"])
    assert exc.value.code == 2
    assert "argument --num: invalid int value: 'x'" in capsys.readouterr().err


def test_cli_exit_status_as_a_script(repo_root, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(repo_root / "tools" / "make_synthetic.py"), str(tmp_path / "out"), "--num", "0"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: num must be a positive integer, got 0"
