"""Training from an HDF5 file without loading it (data.stream): a store that reads each mini-batch's rows.

H5Rows implements the store interface of data.examples (shape, dtype, take(idx, out), check(epoch))
over one dataset of an open .h5 file, one example per row (m, ...). Rows are read as they are asked
for: the run's true per-epoch permutation is kept, so streamed and in-memory training see the same
inputs in the same order and give the same weights bit for bit.

Reading scheme (measured in docs/large-datasets.md): a dataset stored contiguously and unfiltered
(as h5py writes one by default) is read with os.preadv straight from the file: each batch's rows
are sorted, every run of consecutive rows is one system call that scatters the rows into their
places in the batch buffer (no reorder copy, no h5py call per row). Chunked or compressed datasets
(`datasets import --compression gzip|lzf` writes chunks of 16 images) are read through h5py: the batch's distinct
rows in increasing order, one slice per chunk they fall in (each chunk decompressed once per
batch), then reordered in memory.
"""

import hashlib
import os
from pathlib import Path

import h5py
import numpy as np

from dltrain.data.files import class_names, labels, plain_dataset, require_file
from dltrain.data.h5 import check_course_layout, load_images
from dltrain.data.limits import check_array_size, memory_budget, survives
from dltrain.errors import DltrainError, one_line

IOV_MAX = 1024  # buffers per preadv call (POSIX guarantees at least 16; Linux and macOS take 1024)
BLOCK_BYTES = 16 * 2**20  # rows read at a time by a pass over the whole file (fingerprint, finite check)


class H5Rows:
    """Store of the rows (m, n_x) of HDF5 dataset `key` in `path`, read batch by batch; the file stays open."""

    def __init__(self, path: Path, key: str):
        self.path, self.key = Path(path), key
        self.epoch = None  # the epoch being trained (set by check): named by read errors
        self.file = open_h5(self.path)
        self.ds = plain_dataset(f"data file {self.path}: {key}", self.file, key)
        self.shape = (int(self.ds.shape[0]), int(np.prod(self.ds.shape[1:], dtype=np.int64)))
        self.dtype = self.ds.dtype
        if self.dtype.kind not in "buif":
            raise DltrainError(f"data file {self.path}: {key} must hold numbers, got dtype {self.dtype}")
        self.row_bytes = self.shape[1] * self.dtype.itemsize
        self.stamp = file_stamp(self.path)
        offset = self.ds.id.get_offset() if self.ds.chunks is None and hasattr(os, "preadv") else None
        self.fd, self.offset = None, offset
        if offset is not None:
            self.fd = os.open(self.path, os.O_RDONLY)
            if offset + self.shape[0] * self.row_bytes > os.fstat(self.fd).st_size:
                raise DltrainError(f"data file {self.path} is truncated: {key} needs {offset + self.shape[0] * self.row_bytes} bytes, "
                                   f"the file has {os.fstat(self.fd).st_size}; re-create or re-download it")

    def __del__(self):
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)

    @property
    def T(self) -> "H5Columns":
        return H5Columns(self)

    def when(self) -> str:
        return "before training" if self.epoch is None else f"in epoch {self.epoch}"

    def take(self, idx: np.ndarray, out: np.ndarray) -> np.ndarray:
        """rows[idx] (k, n_x) written into out[:k], read from the file."""
        idx = np.asarray(idx, dtype=np.int64)
        k = idx.size
        try:
            if self.fd is not None:
                self._pread(idx, out[:k])
            else:
                self._h5read(idx, out[:k])
        except OSError as e:
            raise DltrainError(f"data file {self.path}: read error {self.when()} ({type(e).__name__}: {one_line(e)}); "
                               "the run stops, its last checkpoint is kept") from None
        return out[:k]

    def _pread(self, idx: np.ndarray, out: np.ndarray) -> None:
        if idx.size == 0:
            return
        rb = self.row_bytes
        if idx[-1] - idx[0] == idx.size - 1 and (idx.size == 1 or (np.diff(idx) == 1).all()):
            self._read_into([out], self.offset + int(idx[0]) * rb, idx.size * rb)  # a run in order: one read
            return
        order = np.argsort(idx, kind="stable")
        rows = idx[order]
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        starts, ends = np.r_[0, breaks].tolist(), np.r_[breaks, rows.size].tolist()
        order = order.tolist()
        for a, b in zip(starts, ends):
            # One call per run of consecutive rows (at most IOV_MAX), scattered into each row's place.
            for c in range(a, b, IOV_MAX):
                d = min(b, c + IOV_MAX)
                self._read_into([out[j] for j in order[c:d]], self.offset + int(rows[c]) * rb, (d - c) * rb)

    def _read_into(self, buffers: list, offset: int, nbytes: int) -> None:
        done = os.preadv(self.fd, buffers, offset)
        if done != nbytes:
            raise DltrainError(f"data file {self.path} was truncated during training ({self.when()}: "
                               f"{os.fstat(self.fd).st_size} bytes left); the run stops, its last checkpoint is kept")

    def _h5read(self, idx: np.ndarray, out: np.ndarray) -> None:
        flat = (-1, self.shape[1])
        unique, inverse = np.unique(idx, return_inverse=True)
        if unique.size == 0:
            return
        if unique[-1] - unique[0] == unique.size - 1:
            rows = self.ds[int(unique[0]) : int(unique[-1]) + 1].reshape(flat)  # consecutive rows: one slice
        else:
            # One slice per chunk the batch touches, so each chunk is read (decompressed) once; h5py's
            # fancy indexing of a sorted list was 30 times slower on gzip chunks (docs/large-datasets.md).
            per_chunk = self.ds.chunks[0] if self.ds.chunks is not None else self.shape[0]
            rows = np.empty((unique.size, self.shape[1]), self.dtype)
            groups = np.flatnonzero(np.diff(unique // per_chunk)) + 1
            for a, b in zip(np.r_[0, groups].tolist(), np.r_[groups, unique.size].tolist()):
                first, last = int(unique[a]), int(unique[b - 1])
                rows[a:b] = self.ds[first : last + 1].reshape(flat)[unique[a:b] - first]
        np.take(rows, inverse, axis=0, out=out)

    def check(self, epoch: int) -> None:
        """Stop the run when the file was replaced, truncated or modified since it was opened (before epoch `epoch`)."""
        self.epoch = epoch
        try:
            now = file_stamp(self.path)
        except OSError:
            raise DltrainError(f"data file {self.path} was removed during training (before epoch {epoch}); "
                               "the run stops, its last checkpoint is kept") from None
        if now != self.stamp:
            what = [name for name, a, b in zip(("file (replaced)", "size", "modification time"), self.stamp, now) if a != b]
            raise DltrainError(f"data file {self.path} changed during training (its {', '.join(what)}, before epoch {epoch}); "
                               "the run stops, its last checkpoint is kept: train again on the new data")

    def blocks(self):
        """(start, rows) over all rows in order, BLOCK_BYTES at a time in one reused buffer."""
        size = max(1, BLOCK_BYTES // max(self.row_bytes, 1))
        buf = np.empty((min(size, self.shape[0]), self.shape[1]), self.dtype)
        for start in range(0, self.shape[0], size):
            yield start, self.take(np.arange(start, min(start + size, self.shape[0])), buf)

    def update_hash(self, h) -> None:
        """Feed the features to a hash in blocks, as data.core.fingerprint hashes them in memory.

        uint8 rows are held raw in memory too, so a streamed file and the loaded one have the same
        fingerprint: 'rows|u1(n_x, m)' then the rows' bytes. Other types are converted to float64 and
        hashed column by column in memory, which a pass in blocks cannot reproduce: they are hashed as
        'stream-rows<dtype>(n_x, m)' then the stored rows. Non-finite values are refused on the way."""
        m, n_x = self.shape
        prefix = "rows" if self.dtype == np.uint8 else "stream-rows"
        h.update(f"{prefix}{self.dtype.str}{(n_x, m)}".encode())
        for start, rows in self.blocks():
            if self.dtype.kind == "f" and not np.isfinite(rows).all():
                example = start + int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
                raise DltrainError(f"data file {self.path}: {self.key} has NaN/inf values (first at example {example}); "
                                   "remove or impute them before training")
            h.update(np.ascontiguousarray(rows).data)


class H5Columns:
    """A streamed file's features as Dataset.X (n_x, m): .T is the H5Rows store."""

    ndim = 2

    def __init__(self, rows: H5Rows):
        self.T, self.dtype = rows, rows.dtype
        self.shape = (rows.shape[1], rows.shape[0])

    def update_hash(self, h) -> None:
        self.T.update_hash(h)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        self.update_hash(h)
        return "sha256:" + h.hexdigest()


def file_stamp(path: Path) -> tuple[int, int, int]:
    """What changes when a file is replaced, truncated or written: (inode, size, modification time in ns)."""
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def open_h5(path: Path, hint: str = "check data.path") -> h5py.File:
    require_file(path, hint)
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise DltrainError(f"data file {path} is not a readable HDF5 file ({type(e).__name__}: {one_line(e)}); "
                           "re-create or re-download it") from None


def _small_array(path: Path, f: h5py.File, key: str) -> np.ndarray:
    ds = plain_dataset(f"data file {path}: {key}", f, key)
    check_array_size(f"data file {path}: {key}", ds.shape, ds.dtype.itemsize)
    return ds[()]


def streamed_images(path: Path, prefix: str, hint: str, optional: bool = False):
    """course_images with the features left in the file: X is an H5Columns (n_x, m) over {prefix}_set_x."""
    x_key, y_key = f"{prefix}_set_x", f"{prefix}_set_y"
    require_file(path, hint)
    survives(lambda: _course_metadata(path, x_key, y_key), path)  # a crafted file crashes a child, not the run
    keys, y, list_classes = _course_metadata(path, x_key, y_key)
    if optional and x_key not in keys and y_key not in keys:
        return None
    missing = [k for k in (["list_classes"] if list_classes is None else []) + [x_key, y_key] if k not in keys]
    if missing:
        raise DltrainError(f"data file {path} has no {', '.join(missing)}; its keys are: {', '.join(sorted(keys)) or 'none'}")
    rows = H5Rows(path, x_key)
    x_shape = rows.ds.shape
    y, classes = check_course_layout(path, prefix, x_shape, y, list_classes)
    return rows.T, y, classes, tuple(int(n) for n in x_shape[1:])


def _course_metadata(path: Path, x_key: str, y_key: str):
    with open_h5(path) as f:
        keys = list(f.keys())
        y = _small_array(path, f, y_key) if y_key in f else None
        names = _small_array(path, f, "list_classes") if "list_classes" in f else None
        return keys, y, names


def stream_images(data):
    """dataset: images, streamed: as load_images, the features read batch by batch from the file."""
    return load_images(data, streamed_images)


def stream_file(data, known_classes: list[str] | None = None):
    """dataset: file with an .h5/.hdf5 path, streamed: as load_file (layout rows), the features left in the file."""
    path = Path(data.path)
    require_file(path, "check data.path")
    survives(lambda: open_h5(path).close(), path)  # a crafted file crashes a child, not the run
    with open_h5(path) as f:
        keys = list(f.keys())
    pairs = {"train": (data.x_train, data.y_train)}
    defaults = {type(data).model_fields[k].default for k in ("x_test", "y_test")}
    test = [data.x_test, data.y_test] if data.x_test is not None else []
    for k in [data.x_train, data.y_train, *[k for k in test if k not in defaults]]:
        if k not in keys:
            raise DltrainError(f"data file {path} has no {k}; its keys are: {', '.join(sorted(keys)) or 'none'}")
    if any(k in keys for k in test) and not all(k in keys for k in test):
        raise DltrainError(f"data file {path} has only one of {data.x_test}, {data.y_test}; give both or set both keys to null")
    if test and all(k in keys for k in test):
        pairs["test"] = (data.x_test, data.y_test)
    parts, image_shape = {}, None
    for split, (xk, yk) in pairs.items():
        rows = H5Rows(path, xk)
        with open_h5(path) as f:
            y, width = labels(_small_array(path, f, yk), "rows", f"data file {path}: {yk}")
        if rows.shape[0] != y.size or 0 in rows.ds.shape:
            raise DltrainError(f"data file {path}: {xk} has {rows.shape[0]} examples but {yk} has {y.size} "
                               f"(layout: rows; shapes {rows.ds.shape} and {y.shape})")
        if split == "train":
            image_shape = tuple(int(n) for n in rows.ds.shape[1:]) if len(rows.ds.shape) == 4 else None
        parts[split] = (rows.T, y, width)
    if "test" in parts and parts["test"][0].shape[0] != parts["train"][0].shape[0]:
        raise DltrainError(f"data file {path}: {data.x_test} has {parts['test'][0].shape[0]} features but {data.x_train} has "
                           f"{parts['train'][0].shape[0]}")
    classes = class_names(parts, data.classes, path)  # known_classes only map a csv's text labels (load_file)
    X, y, _ = parts["train"]
    X_test, y_test, _ = parts.get("test", (None, None, None))
    return X, y, X_test, y_test, classes, image_shape


def feature_arrays(data) -> list[tuple[Path, str]]:
    """(file, key) of the feature arrays a streamable `data:` section reads; [] when it cannot stream."""
    if data.dataset == "images":
        path = Path(data.path)
        return [(path, "train_set_x"), (Path(data.test_path) if data.test_path else path, "test_set_x")]
    if data.dataset == "file" and data.path.lower().endswith((".h5", ".hdf5")) and data.layout == "rows":
        return [(Path(data.path), k) for k in (data.x_train, data.x_test) if k is not None]
    return []


def held_bytes(data) -> int:
    """Bytes the features take held in memory: uint8 as stored, other types as float64 (0 if unreadable)."""
    total = 0
    for path, key in feature_arrays(data):
        try:
            with h5py.File(path, "r") as f:
                if key in f and isinstance(f[key], h5py.Dataset):
                    ds = f[key]
                    total += int(np.prod(ds.shape, dtype=np.int64)) * (1 if ds.dtype == np.uint8 else 8)
        except (OSError, ValueError):
            return 0  # the in-memory loader reads it again and reports what is wrong
    return total


def wants_stream(data, batch_size: int | None) -> bool:
    """Whether training reads `data` from its file: data.stream true; false; or `auto`: when training
    uses mini-batches and the features held in memory (held_bytes) would exceed the memory budget."""
    setting = getattr(data, "stream", False)
    if setting != "auto":
        return bool(setting) and bool(feature_arrays(data))
    return batch_size is not None and bool(feature_arrays(data)) and held_bytes(data) > memory_budget()
