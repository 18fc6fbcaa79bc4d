"""How `dltrain datasets import` should lay out its HDF5 file: read speed of one training epoch's access
patterns (sequential blocks of 256 images, and random mini-batches of 256 read in sorted order) for each
compression and chunk shape, with the file in the page cache, plus write time and file size.

    PYTHONPATH=$PWD python benchmarks/import_layout.py [--images 10000] [--dir /tmp/x] [--variants none/1,gzip4/16]

The images are the course's real photos (SIGNS, else cat: 64x64x3), repeated cyclically up to --images,
so that consecutive images, and every chunk, hold different photos (a repeat within a chunk would
compress unrealistically well). Throughput is provisional on a shared machine; the ratios against the
uncompressed contiguous file are the result. Prints a markdown table.
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parent.parent
BATCH = 256
VARIANTS = {  # name -> (h5py compression, its option, images per chunk; 0 = contiguous)
    "none/contiguous": (None, None, 0),
    "none/1": (None, None, 1),
    "none/16": (None, None, 16),
    "lzf/1": ("lzf", None, 1),
    "lzf/16": ("lzf", None, 16),
    "gzip1/1": ("gzip", 1, 1),
    "gzip4/1": ("gzip", 4, 1),
    "gzip4/16": ("gzip", 4, 16),
    "gzip4/64": ("gzip", 4, 64),
}


def photos() -> np.ndarray:
    """The course's real 64x64x3 photos as (k, 64, 64, 3) uint8."""
    out = []
    for name in ("train_signs.h5", "test_signs.h5", "train_catvnoncat.h5", "test_catvnoncat.h5"):
        path = REPO / "datasets" / name
        if path.is_file():
            with h5py.File(path, "r") as f:
                out.append(f[next(k for k in f if k.endswith("_x"))][()])
    if not out:
        sys.exit("no course image files in datasets/: run from the repository with the course data")
    return np.concatenate(out)


def write(path: Path, images: np.ndarray, m: int, compression, option, chunk: int) -> float:
    started = time.perf_counter()
    with h5py.File(path, "w") as f:
        x = f.create_dataset("train_set_x", (m, *images.shape[1:]), np.uint8, compression=compression,
                             compression_opts=option, chunks=(chunk, *images.shape[1:]) if chunk else None)
        for i in range(0, m, BATCH):
            idx = np.arange(i, min(i + BATCH, m)) % len(images)
            x[i : i + idx.size] = images[idx]
    return time.perf_counter() - started


def read_epoch(path: Path, m: int, order: np.ndarray | None) -> float:
    """Seconds to read every image once: in blocks of BATCH (order None), or random batches of BATCH rows."""
    started = time.perf_counter()
    with h5py.File(path, "r") as f:
        x = f["train_set_x"]
        for i in range(0, m, BATCH):
            if order is None:
                x[i : i + BATCH]
            else:
                x[np.sort(order[i : i + BATCH])]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--dir", type=Path, default=None, help="where the files are written (default: a temporary folder)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    images, m = photos(), args.images
    raw_mb = m * images[0].nbytes / 2**20
    folder = Path(tempfile.mkdtemp(prefix="dltrain-layout-", dir=args.dir))
    order = np.random.default_rng(0).permutation(m)
    rows = []
    try:
        for name in args.variants.split(","):
            path = folder / f"{name.replace('/', '-')}.h5"
            wrote = write(path, images, m, *VARIANTS[name])
            read_epoch(path, m, None)  # into the page cache
            seq = min(read_epoch(path, m, None) for _ in range(2))
            rnd = min(read_epoch(path, m, order) for _ in range(2))
            rows.append((name, path.stat().st_size / 2**20, wrote, seq, rnd))
            path.unlink()
            print(f"  {name}: done", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    base = next((r for r in rows if r[0] == "none/contiguous"), rows[0])
    print(f"{m} images 64x64x3 ({raw_mb:.0f} MB raw), batches of {BATCH}, file in the page cache\n")
    print("| compression/chunk (images) | file MB | write s | sequential MB/s | random MB/s | sequential vs base | random vs base |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for name, size, wrote, seq, rnd in rows:
        print(f"| {name} | {size:.0f} | {wrote:.1f} | {raw_mb / seq:.0f} | {raw_mb / rnd:.0f} | {base[3] / seq:.2f} | {base[4] / rnd:.2f} |")


if __name__ == "__main__":
    main()
