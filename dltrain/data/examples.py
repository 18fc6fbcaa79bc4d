"""A split's examples held raw (uint8 pixels stay uint8) and served as normalized float columns, a chunk at a time.

Memory is in proportion to the raw data: the raw rows (M, n_x), each example contiguous, are shared
by every split (a split is an index set), and normalization happens per mini-batch or evaluation
chunk into buffers of the run's dtype. No float copy of a whole split is made unless a caller asks
for one (np.asarray(examples), full-batch training on data that fit).

The rows come from a store: an in-memory array, or an HDF5 dataset read batch by batch
(data.stream: dltrain.data.stream.H5Rows). Normalization is elementwise and done in float64 before
the cast to the run's dtype, exactly as prepare_data did on whole arrays, so each element has the
same bits as before and course runs reproduce.
"""

import numpy as np

# A split whose float64 columns take at most SMALL_BYTES (every course split: SIGNS is 1080 x 12288,
# 106 MB), of data whose raw rows take at most SMALL_RAW_BYTES (SIGNS: 13 MB, cat: 2.5 MB), is
# evaluated in one chunk of at most MAX_CHUNK examples, as always: BLAS may round a narrow product
# (a tail of 1-3 columns) differently, so course numbers keep their bits only with the same chunks.
# Other splits are evaluated in chunks of CHUNK_BYTES of float64 columns: with large data, a 100 MB
# float chunk of its dev split would be a large share of the memory the raw data need.
SMALL_BYTES = 112 * 2**20
SMALL_RAW_BYTES = 64 * 2**20
CHUNK_BYTES = 8 * 2**20
MAX_CHUNK = 4096
NORMALIZE_BLOCK_BYTES = 2 * 2**20  # float64 rows normalized at a time for a float32 run


class ArrayRows:
    """In-memory store: rows (M, n_x), C-contiguous, any numeric dtype."""

    def __init__(self, rows: np.ndarray):
        self.rows = rows
        self.shape, self.dtype = rows.shape, rows.dtype

    def take(self, idx: np.ndarray, out: np.ndarray) -> np.ndarray:
        """rows[idx] (k, n_x) written into out[:k]."""
        # mode="clip": with the default "raise", np.take buffers its output; the indices are valid here.
        return np.take(self.rows, idx, axis=0, out=out[: idx.size], mode="clip")

    def check(self, epoch: int) -> None:
        """Stores that can change under a run (files) raise here, before epoch `epoch`; an array cannot."""


class Examples:
    """m examples of a store, served as (n_x, k) float columns normalized with `stats` in `dtype`.

    index: the store rows of this split, in split order (None: all rows). flip: (order, mask) mirrors
    the examples where mask is True by reordering their features (data augmentation).
    """

    def __init__(self, store, index: np.ndarray | None, stats: dict, dtype, flip: tuple | None = None, buffers: dict | None = None):
        self.store, self.index, self.stats, self.dtype, self.flip = store, index, stats, np.dtype(dtype), flip
        self.m = store.shape[0] if index is None else index.size
        self.n_x = store.shape[1]
        # The splits of one run share their buffers: one batch or chunk is normalized at a time.
        self.buffers = {} if buffers is None else buffers

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_x, self.m)

    @property
    def chunk(self) -> int:
        """Examples per evaluation chunk: MAX_CHUNK for small splits of small data, else CHUNK_BYTES of float64 columns."""
        raw_bytes = self.store.shape[0] * self.n_x * np.dtype(self.store.dtype).itemsize
        if 8 * self.n_x * self.m <= SMALL_BYTES and raw_bytes <= SMALL_RAW_BYTES:
            return MAX_CHUNK
        return max(1, min(MAX_CHUNK, CHUNK_BYTES // (8 * self.n_x)))

    def check(self, epoch: int) -> None:
        self.store.check(epoch)

    def with_flips(self, order: np.ndarray, mask: np.ndarray) -> "Examples":
        """The same examples with those where mask (m,) is True mirrored (features reordered by `order`)."""
        return Examples(self.store, self.index, self.stats, self.dtype, (order, mask), self.buffers)

    def _buffer(self, kind: str, dtype, k: int) -> np.ndarray:
        key = (kind, np.dtype(dtype).str, self.n_x)
        buf = self.buffers.get(key)
        if buf is None or buf.shape[0] < k:
            self.buffers.pop(key, None)  # freed before the larger one is allocated
            buf = self.buffers[key] = np.empty((k, self.n_x), dtype)
        return buf

    def rows_of(self, cols) -> np.ndarray:
        """Store rows of the split's examples `cols` (a slice or an index array)."""
        positions = np.arange(self.m)[cols] if isinstance(cols, slice) else np.asarray(cols)
        return positions if self.index is None else self.index[positions]

    def columns(self, cols, reuse: bool = True) -> np.ndarray:
        """X[:, cols] (n_x, k) normalized, in the run's dtype and column-major (each example contiguous).

        reuse: written into this object's buffers, valid until the next call; else a new array.
        """
        idx = self.rows_of(cols)
        k = idx.size

        def buffer(kind, dtype):
            return self._buffer(kind, dtype, k) if reuse else np.empty((k, self.n_x), dtype)

        raw = self.store.take(idx, buffer("raw", self.store.dtype))
        flipped = None
        if self.flip is not None:
            pos = np.arange(self.m)[cols] if isinstance(cols, slice) else np.asarray(cols)
            flipped = self.flip[1][pos]
        if self.dtype == np.float64:
            x = raw if self.store.dtype == np.float64 else buffer("float64", np.float64)[:k]
            if x is not raw:
                np.copyto(x, raw, casting="unsafe")
            self._normalize(x, flipped)
            return x.T
        # Another run dtype: normalized in float64 a block of rows at a time (elementwise, so the same
        # bits), each block cast into the output: no float64 copy of the whole batch or chunk.
        out = buffer("out", self.dtype)[:k]
        step = max(1, NORMALIZE_BLOCK_BYTES // (8 * self.n_x))
        scratch = self._buffer("scratch", np.float64, min(step, k)) if self.store.dtype != np.float64 else None
        for i in range(0, k, step):
            j = min(k, i + step)
            x = raw[i:j] if scratch is None else scratch[: j - i]
            if scratch is not None:
                np.copyto(x, raw[i:j], casting="unsafe")
            self._normalize(x, None if flipped is None else flipped[i:j])
            np.copyto(out[i:j], x, casting="same_kind")
        return out.T

    def _normalize(self, x: np.ndarray, flipped: np.ndarray | None) -> None:
        """Rows x (k, n_x) float64 normalized in place, then those where flipped (k,) is True mirrored."""
        normalize_in_place(x, self.stats)
        if flipped is not None:
            # After normalization, as augmentation always mirrored the normalized inputs.
            rows = np.flatnonzero(flipped)
            if rows.size:
                x[rows] = x[rows][:, self.flip[0]]

    def chunks(self, size: int | None = None):
        """(slice, X chunk (n_x, k)) over all examples in order, each chunk in the reused buffers."""
        size = size or self.chunk
        # A chunk larger than CHUNK_BYTES (a small split in one piece) is not kept as a buffer.
        reuse = 8 * self.n_x * min(size, self.m) <= CHUNK_BYTES
        for i in range(0, self.m, size):
            cols = slice(i, min(i + size, self.m))
            yield cols, self.columns(cols, reuse)

    def __getitem__(self, key):
        """X[:, cols] as a new float array (other keys index the whole normalized array)."""
        if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], slice) and key[0] == slice(None):
            cols = key[1]
            if isinstance(cols, (int, np.integer)):
                return self.columns([cols], reuse=False)[:, 0]
            return self.columns(cols, reuse=False)
        return np.asarray(self)[key]

    def __array__(self, dtype=None, copy=None):
        """The whole normalized split (n_x, m): a full float copy, for small data and plots only."""
        X = self.columns(slice(None), reuse=False)
        return X if dtype is None else X.astype(dtype)

    @property
    def T(self) -> np.ndarray:
        return np.asarray(self).T

    def raw_float64(self) -> np.ndarray:
        """The split's raw values as float64 (n_x, m) laid out as prepare_data always had them (for statistics)."""
        rows = self.store.take(self.rows_of(slice(None)), np.empty((self.m, self.n_x), self.store.dtype))
        return rows.T.astype(np.float64)


def normalize_in_place(x: np.ndarray, stats: dict) -> None:
    """apply_normalization on rows x (k, n_x) float64, in place: elementwise, so each value has the same bits."""
    if "scale" in stats:
        np.divide(x, stats["scale"], out=x)
    elif "mean" in stats:
        np.subtract(x, stats["mean"].T, out=x)
        np.divide(x, stats["std"].T, out=x)


STATS_CHUNK_BYTES = 32 * 2**20


def streaming_stats(examples: Examples) -> dict[str, np.ndarray]:
    """Per-feature mean and std (n_x, 1) of raw examples in one pass over float64 chunks.

    Chan et al.'s pairwise update merges each chunk's mean and sum of squared deviations, which
    stays accurate where the textbook sum of squares minus squared sum cancels catastrophically.
    """
    raw = Examples(examples.store, examples.index, {}, np.float64)  # own, small buffers
    n, mean, M2 = 0, np.zeros(raw.n_x), np.zeros(raw.n_x)
    for _, X in raw.chunks(max(1, STATS_CHUNK_BYTES // (8 * raw.n_x))):
        k = X.shape[1]
        chunk_mean = X.mean(axis=1)
        d = X - chunk_mean[:, None]
        chunk_M2 = np.einsum("ij,ij->i", d, d)
        delta = chunk_mean - mean
        total = n + k
        mean += delta * (k / total)
        M2 += chunk_M2 + delta**2 * (n * k / total)
        n = total
    std = np.sqrt(M2 / n)
    # As normalization_stats, a constant feature stays centred at 0 (its rounding residue is no spread).
    std[std <= 1e-12 * np.maximum(np.abs(mean), 1.0)] = 1.0
    return {"mean": mean.reshape(-1, 1), "std": std.reshape(-1, 1)}
