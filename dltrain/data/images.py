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


class UnreadableImage(DltrainError):
    """An image file that is missing or cannot be decoded; `path` and `reason` for a caller that skips it."""

    def __init__(self, path: Path, reason: str, fix: str = ""):
        super().__init__(f"image {path} {reason}{fix}")
        self.path, self.reason = path, reason


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
        raise UnreadableImage(path, "not found") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UnreadableImage(path, f"cannot be read as an image ({type(e).__name__}: {one_line(e)})", "; remove or replace it") from None
    return pixels.reshape(h, w, c)


def image_files(folder: Path) -> list[Path]:
    """The jpg/png files directly in a folder, sorted by name; hidden files are skipped."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


class ImportResult(NamedTuple):
    out: Path
    classes: list[str]
    counts: dict[str, list[int]]  # split -> examples per class (written ones)
    image_shape: tuple[int, int, int]
    skipped: tuple[UnreadableImage, ...] = ()  # unreadable images left out (on_error="skip"), by path: .path, .reason


IMPORT_BLOCK = 256  # images decoded and written at a time: memory stays a block, whatever the folder holds
ON_ERROR = ("stop", "skip")
# Measured with benchmarks/import_layout.py (docs/large-datasets.md): uncompressed and contiguous reads
# fastest in both of an epoch's access patterns; compressed images are stored in chunks of CHUNK_IMAGES
# images, the unit HDF5 reads and decompresses whole.
COMPRESSION = {"none": {}, "gzip": {"compression": "gzip", "compression_opts": 4}, "lzf": {"compression": "lzf"}}
DEFAULT_COMPRESSION = "none"
CHUNK_IMAGES = 16


def import_image_folder(src: Path, out: Path, size: int, test_fraction: float, seed: int,
                        progress: Callable[[int, int], None] | None = None, on_error: str = "stop",
                        compression: str = DEFAULT_COMPRESSION) -> ImportResult:
    """src/<class>/<image>.jpg|png -> an h5 file in the course layout, resized to size x size RGB uint8.

    Classes are the sub-folder names in sorted order (labels 0..C-1); a stratified test part of
    round(test_fraction * m) images is drawn with default_rng(seed) from the labels alone, so images
    are decoded and written IMPORT_BLOCK at a time, never all held; progress(done, total) is called once with done=0, then
    after each block. Keys: train_set_x (m, size, size, 3),
    train_set_y (m,), list_classes (C,), and test_set_x / test_set_y when test_fraction > 0.
    on_error: an unreadable image stops the import ("stop", no file is written) or is left out of
    its part, its label with it ("skip": the result's `skipped` names each). compression: "none"
    (contiguous, the fastest to read), or "gzip" (level 4) or "lzf" in chunks of CHUNK_IMAGES images.
    """
    src, out = Path(src), Path(out)
    if on_error not in ON_ERROR:
        raise DltrainError(f"on_error={on_error!r}: expected one of {', '.join(ON_ERROR)}", 2)
    if compression not in COMPRESSION:
        raise DltrainError(f"compression={compression!r}: expected one of {', '.join(COMPRESSION)}", 2)
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
    if progress is not None:  # the total is known before the first block is decoded: the bar shows 0/m, not 0/None
        progress(0, y.size)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    skipped, written = [], {}
    try:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("list_classes", data=np.array([c.encode() for c in classes]))
            done = 0

            def tick(k: int) -> None:
                nonlocal done
                done += k
                if progress is not None:
                    progress(done, y.size)

            for split, idx in parts.items():
                written[split] = write_part(f, split, [files[i] for i in idx], y[idx], shape, compression,
                                            skipped if on_error == "skip" else None, tick)
            f.attrs.update(source=str(src.resolve()), size=size, test_fraction=test_fraction, seed=seed,
                           compression=compression, skipped=len(skipped))
        if skipped and compression == "none":
            compact(tmp, {split: labels.size for split, labels in written.items()})
        os.replace(tmp, out)
    except OSError as e:
        remove_temporary(tmp)
        raise DltrainError(f"cannot write {out}: {e}") from None
    except BaseException:  # an unreadable image (named by read_image), or Ctrl-C: no half-written file stays
        remove_temporary(tmp)
        raise
    counts = {split: np.bincount(written[split], minlength=len(classes)).tolist() for split in ("train", "test") if split in written}
    return ImportResult(out, classes, counts, shape, tuple(sorted(skipped, key=lambda e: str(e.path))))


def write_part(f: h5py.File, split: str, files: list[Path], y: np.ndarray, shape: tuple, compression: str,
               skipped: list | None, tick: Callable[[int], None]) -> np.ndarray:
    """{split}_set_x (k, *shape) and {split}_set_y (k,) of the readable images of `files`, IMPORT_BLOCK at a time
    -> the labels written. skipped: None stops at the first unreadable image; a list collects them instead."""
    n = len(files)
    # A contiguous dataset cannot shrink: one with skipped images is compacted once written (compact).
    layout = {} if compression == "none" else {"maxshape": (n, *shape), "chunks": (min(CHUNK_IMAGES, n), *shape)}
    x = f.create_dataset(f"{split}_set_x", (n, *shape), np.uint8, **layout, **COMPRESSION[compression])
    kept = np.zeros(n, dtype=bool)
    at = 0
    for start in range(0, n, IMPORT_BLOCK):
        block = []
        for i in range(start, min(start + IMPORT_BLOCK, n)):
            try:
                block.append(read_image(files[i], shape))
                kept[i] = True
            except UnreadableImage as e:
                if skipped is None:
                    raise DltrainError(f"{e} (--on-error skip leaves unreadable images out)") from None
                skipped.append(e)
        if block:
            x[at : at + len(block)] = np.stack(block)
            at += len(block)
        tick(min(IMPORT_BLOCK, n - start))
    if at == 0:
        raise DltrainError(f"none of the {n} images of the {split} part can be read (the first: {skipped[0]})")
    if at < n and x.chunks is not None:
        x.resize(at, axis=0)
    f.create_dataset(f"{split}_set_y", data=y[kept])
    return y[kept]


def compact(path: Path, rows: dict[str, int]) -> None:
    """Rewrite the import file `path` with each contiguous {split}_set_x cut to its first rows[split] images,
    a block at a time (HDF5 cannot shrink a contiguous dataset, nor free its space in place)."""
    new = path.with_name(path.name + "-compact")
    with h5py.File(path, "r") as src, h5py.File(new, "w") as dst:
        dst.attrs.update(src.attrs)
        for key, ds in src.items():
            k = rows.get(key.removesuffix("_set_x")) if key.endswith("_set_x") else None
            if k is None:
                dst.create_dataset(key, data=ds[()])
                continue
            x = dst.create_dataset(key, (k, *ds.shape[1:]), ds.dtype)
            for start in range(0, k, IMPORT_BLOCK):
                stop = min(start + IMPORT_BLOCK, k)
                x[start:stop] = ds[start:stop]
    os.replace(new, path)


def remove_temporary(tmp: Path) -> None:
    """The import's temporary files, after a failure or an interrupt."""
    tmp.unlink(missing_ok=True)
    tmp.with_name(tmp.name + "-compact").unlink(missing_ok=True)
