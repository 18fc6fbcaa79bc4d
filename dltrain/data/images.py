"""Image files: one reader shared by `datasets import` and `predict`, and folder -> course-layout h5."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
from PIL import Image, ImageOps

from dltrain.data.files import one_line
from dltrain.data.prepare import carve_splits
from dltrain.errors import DltrainError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def read_image(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """An image file -> uint8 array `shape` (h, w, c): camera rotation applied, RGB (c=3) or grey (c=1), resized.

    The resize is a plain bicubic resize to (w, h), not a crop, as the course's own predict cells do.
    """
    if len(shape) != 3 or shape[2] not in (1, 3):
        raise DltrainError(f"images of shape {tuple(shape)} cannot be read from image files; expected (height, width, 1 or 3)")
    h, w, c = shape
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("RGB" if c == 3 else "L")
            pixels = np.asarray(im.resize((w, h), Image.Resampling.BICUBIC), dtype=np.uint8)
    except FileNotFoundError:
        raise DltrainError(f"image {path} not found") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DltrainError(f"image {path} cannot be read as an image ({type(e).__name__}: {one_line(e)}); remove or replace it") from None
    return pixels.reshape(h, w, c)


def image_files(folder: Path) -> list[Path]:
    """The jpg/png files directly in a folder, sorted by name; hidden files are skipped."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


class ImportResult(NamedTuple):
    out: Path
    classes: list[str]
    counts: dict[str, list[int]]  # split -> examples per class
    image_shape: tuple[int, int, int]


IMPORT_BLOCK = 256  # images decoded and written at a time: memory stays a block, whatever the folder holds


def import_image_folder(src: Path, out: Path, size: int, test_fraction: float, seed: int,
                        progress: Callable[[int, int], None] | None = None) -> ImportResult:
    """src/<class>/<image>.jpg|png -> an h5 file in the course layout, resized to size x size RGB uint8.

    Classes are the sub-folder names in sorted order (labels 0..C-1); a stratified test part of
    round(test_fraction * m) images is drawn with default_rng(seed) from the labels alone, so images
    are decoded and written IMPORT_BLOCK at a time, never all held; progress(done, total) is called
    after each block. Keys: train_set_x (m, size, size, 3),
    train_set_y (m,), list_classes (C,), and test_set_x / test_set_y when test_fraction > 0.
    """
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise DltrainError(f"{src} is not a folder; expected a folder with one sub-folder of images per class")
    if out.suffix.lower() not in (".h5", ".hdf5"):
        raise DltrainError(f"output {out} must end in .h5 or .hdf5", 2)
    if out.exists():
        raise DltrainError(f"output {out} already exists; choose another name or delete it")
    folders = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise DltrainError(
            f"{src} has {len(folders)} class sub-folder(s); expected at least 2, e.g. {src}/cat/1.jpg and {src}/dog/1.jpg"
        )
    files, y = [], []
    for label, folder in enumerate(folders):
        found = image_files(folder)
        if not found:
            raise DltrainError(f"class folder {folder} has no {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} images")
        files += found
        y += [label] * len(found)
    shape = (size, size, 3)
    y = np.array(y, dtype=np.int64)
    n_test = round(test_fraction * y.size)
    if test_fraction > 0 and not 0 < n_test < y.size:
        raise DltrainError(f"--test-fraction {test_fraction} of {y.size} images is {n_test} test images; "
                           "choose a fraction that leaves both parts non-empty")
    parts = carve_splits(y, {"test": n_test} if n_test else {}, np.random.default_rng(seed))
    classes = [f.name for f in folders]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DltrainError(f"cannot create the folder of {out}: {e.strerror}") from None
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("list_classes", data=np.array([c.encode() for c in classes]))
            done = 0
            for split, idx in parts.items():
                x = f.create_dataset(f"{split}_set_x", (idx.size, *shape), np.uint8, compression="gzip",
                                     chunks=(min(16, idx.size), *shape))
                for start in range(0, idx.size, IMPORT_BLOCK):
                    block = idx[start : start + IMPORT_BLOCK]
                    x[start : start + block.size] = np.stack([read_image(files[i], shape) for i in block])
                    done += block.size
                    if progress is not None:
                        progress(done, y.size)
                f.create_dataset(f"{split}_set_y", data=y[idx])
            f.attrs.update(source=str(src.resolve()), size=size, test_fraction=test_fraction, seed=seed)
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise DltrainError(f"cannot write {out}: {e}") from None
    except BaseException:  # an unreadable image (named by read_image), or Ctrl-C: no half-written file stays
        tmp.unlink(missing_ok=True)
        raise
    counts = {split: np.bincount(y[parts[split]], minlength=len(classes)).tolist() for split in ("train", "test") if split in parts}
    return ImportResult(out, classes, counts, shape)
