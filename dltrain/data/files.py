"""The user's own data files (.npz, .h5/.hdf5, .mat, .csv) -> checked arrays with examples as columns.

Every failure names the file and what to change: a missing key lists the keys the file has; no
pickle is ever loaded (npz with allow_pickle=False, h5 through h5py, mat through scipy).
"""

import csv
import zipfile
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from dltrain.data.limits import MAX_ARRAY_BYTES, check_array_size, check_float64_size, survives
from dltrain.errors import DltrainError, one_line  # noqa: F401 (one_line: data.images)

MAX_CLASSES = 100_000  # a larger label is a damaged file, not a class
MAX_CSV_BYTES = MAX_ARRAY_BYTES // 16
FORMATS = {".npz": "NumPy .npz", ".h5": "HDF5", ".hdf5": "HDF5", ".mat": "MATLAB .mat"}


def require_file(path: Path, hint: str) -> None:
    """DltrainError unless path is an existing file, saying where it was looked for and what to do."""
    if path.exists() and not path.is_file():
        raise DltrainError(f"data file {path} is {'a folder' if path.is_dir() else 'not a regular file'}; {hint}")
    if not path.is_file():
        raise DltrainError(f"data file {path} not found (looked in {path.parent.resolve()}); {hint}")


# Each reader checks an array's declared shape before reading it (data.limits): a damaged or hostile
# file, or a compressed one, can declare far more than the machine's memory.
NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
MAT_ITEMSIZE = {"int8": 1, "uint8": 1, "logical": 1, "char": 2, "int16": 2, "uint16": 2, "single": 4, "int32": 4, "uint32": 4}


def _npz(path: Path, names: list[str]):
    # np.load reads anything that is not a zip archive as a pickle, and would answer a damaged file
    # with advice to allow pickles.
    if not zipfile.is_zipfile(path):
        raise ValueError("it is not a zip archive, as .npz files are")
    with np.load(path, allow_pickle=False) as f, zipfile.ZipFile(path) as z:
        for k in names:
            if k in f.files:
                with z.open(f"{k}.npy") as member:
                    version = np.lib.format.read_magic(member)
                    if version not in NPY_HEADERS:
                        raise ValueError(f"{k} has .npy format version {version}")
                    shape, _, dtype = NPY_HEADERS[version](member)
                check_array_size(f"data file {path}: {k}", shape, dtype.itemsize, raw=dtype == np.uint8)
        return list(f.files), {k: f[k] for k in names if k in f.files}


def plain_dataset(where: str, parent: h5py.Group, key: str) -> h5py.Dataset:
    """parent[key] when it is a dataset stored in this file, or DltrainError: an HDF5 file can link
    to other files (external links) or keep a dataset's bytes in any file of the machine (external
    storage, virtual datasets); dltrain reads only what the file itself holds."""
    link = parent.get(key, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise DltrainError(f"{where} is a link ({type(link).__name__}); dltrain reads only arrays stored in the file itself")
    ds = parent[key]
    if not isinstance(ds, h5py.Dataset):
        raise DltrainError(f"{where} should be an array, got a group")
    if ds.external or ds.is_virtual:
        raise DltrainError(f"{where} keeps its data in other files (external storage); dltrain reads only arrays stored in the file itself")
    return ds


def _h5(path: Path, names: list[str]):
    survives(lambda: _read_h5(path, names), path)
    return _read_h5(path, names)


def _read_h5(path: Path, names: list[str]):
    with h5py.File(path, "r") as f:
        out = {}
        for k in names:
            if k in f:
                ds = plain_dataset(f"data file {path}: {k}", f, k)
                check_array_size(f"data file {path}: {k}", ds.shape, ds.dtype.itemsize, raw=ds.dtype == np.uint8)
                out[k] = ds[()]
        return list(f.keys()), out


def _mat(path: Path, names: list[str]):
    survives(lambda: _read_mat(path, names), path)
    return _read_mat(path, names)


def _read_mat(path: Path, names: list[str]):
    import scipy.io  # only for .mat files: 0.05-0.1 s of every `dltrain train` otherwise (issue 21)

    listing = {name: (shape, kind) for name, shape, kind in scipy.io.whosmat(path)}
    wanted = [k for k in names if k in listing]
    for k in wanted:
        check_array_size(f"data file {path}: {k}", listing[k][0], MAT_ITEMSIZE.get(listing[k][1], 8), raw=listing[k][1] == "uint8")
    content = scipy.io.loadmat(path, variable_names=wanted) if wanted else {}
    return list(listing), {k: content[k] for k in wanted if k in content}


READERS = {".npz": _npz, ".h5": _h5, ".hdf5": _h5, ".mat": _mat}


def _read(path: Path, names: list[str], hint: str) -> tuple[list[str], dict[str, np.ndarray]]:
    """(every key the file has, the arrays among `names` it has) of an .npz, .h5/.hdf5 or .mat file."""
    require_file(path, hint)
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise DltrainError(f"data file {path}: expected one of {', '.join(READERS)}, got {path.suffix or 'no suffix'}")
    try:
        return READERS[suffix](path, names)
    except DltrainError:
        raise
    except Exception as e:  # parsers fed damaged bytes fail every way (scipy: UnboundLocalError, zlib.error, ...)
        raise DltrainError(
            f"data file {path} is not a readable {FORMATS[suffix]} file ({type(e).__name__}: {one_line(e)}); "
            "re-create or re-download it"
        ) from None


def read_arrays(path: Path, keys: list[str], optional: list[str] = (), hint: str = "check data.path") -> dict[str, np.ndarray]:
    """The named arrays of an .npz, .h5/.hdf5 or .mat file; optional keys the file lacks are left out."""
    available, arrays = _read(path, [*keys, *optional], hint)
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise DltrainError(f"data file {path} has no {', '.join(missing)}; its keys are: {', '.join(sorted(map(str, available))) or 'none'}")
    return arrays


def read_single_array(path: Path, key: str | None) -> np.ndarray:
    """The array `key` of an .npz, .h5/.hdf5 or .mat file, or the file's only array when key is None."""
    if key is None:
        available, _ = _read(path, [], "check the path")
        if len(available) != 1:
            raise DltrainError(f"{path} has {len(available)} arrays ({', '.join(sorted(available))}); choose one with --key")
        key = available[0]
    x = read_arrays(path, [key], hint="check the path")[key]
    check_float64_size(f"data file {path}: {key}", x.shape)  # read as stored, used as floats
    return x


class CsvTable(NamedTuple):
    x: np.ndarray  # (m, n_x) features: every column but the label column, in file order
    labels: list[str] | None  # the label column's fields as text (m,); None without a label column
    lines: list[int]  # each example's line number in the file (blank lines are skipped)


def read_csv(path: Path, label_column: str | None, hint: str = "check data.path") -> CsvTable:
    """A csv with a header row -> its features and, when label_column is given, its label column as text."""
    header, rows = read_csv_rows(path, hint)
    if label_column is not None and label_column not in header:
        raise DltrainError(f"data file {path} has no column {label_column!r}; its columns are: {', '.join(header)[:500]}")
    label = header.index(label_column) if label_column is not None else None
    values = []
    for line, row in rows:
        try:
            values.append([float(v) for i, v in enumerate(row) if i != label])
        except ValueError:
            bad = next(i for i, v in enumerate(row) if i != label and not _is_number(v))
            raise DltrainError(f"data file {path}, line {line}, column {header[bad]!r}: {row[bad][:40]!r} is not a number") from None
    if not values:
        raise DltrainError(f"data file {path} has a header but no rows")
    x = np.array(values).reshape(len(values), len(header) - (label is not None))
    return CsvTable(x, None if label is None else [row[label] for _, row in rows], [line for line, _ in rows])


def csv_header(path: Path, hint: str = "check the path") -> list[str]:
    """The column names of a csv file's header row."""
    return read_csv_rows(path, hint, header_only=True)[0]


def read_csv_rows(path: Path, hint: str, header_only: bool = False) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, fields)]) of a csv file; every row has the header's number of fields."""
    require_file(path, hint)
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise DltrainError(f"data file {path} is {size / 2**20:.1f} MiB; a CSV file may have at most {MAX_CSV_BYTES / 2**20:.0f} MiB "
                           f"(parsed as text it takes ~20 times its size): save the data as .npz or .h5 instead")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise DltrainError(f"data file {path} is empty; expected a header row naming the columns")
            rows = []
            for line, row in enumerate(() if header_only else reader, start=2):
                if not row:
                    continue
                if len(row) != len(header):
                    raise DltrainError(f"data file {path}, line {line}: {len(row)} fields, the header has {len(header)}")
                rows.append((line, row))
    except UnicodeDecodeError as e:
        raise DltrainError(f"data file {path} is not UTF-8 text (byte {e.start})") from None
    except csv.Error as e:  # a field over the csv module's limit (131,072 characters), a NUL byte, ...
        raise DltrainError(f"data file {path}, line {reader.line_num}: {one_line(e)}") from None
    except OSError as e:
        raise DltrainError(f"cannot read data file {path}: {e.strerror}") from None
    return header, rows


def csv_labels(table: CsvTable, path: Path, column: str, names: list[str] | None) -> tuple[np.ndarray, list[str] | None]:
    """The label column -> labels (m,) and, for text labels, the class names they index.

    A column of numbers stays numbers (class_names checks them). Text labels ('no', 'yes') are
    classes: their position in `names` (data.classes, or the classes a trained model knows), else in
    the sorted distinct labels, so 'no' -> 0 and 'yes' -> 1.
    """
    if all(_is_number(text) for text in table.labels):
        return np.array([float(v) for v in table.labels]), None
    texts = [text.strip() for text in table.labels]  # "no, yes" written with a space after the comma
    for text, line in zip(texts, table.lines):
        if not text:
            raise DltrainError(f"data file {path}, line {line}, column {column!r}: empty label; every row needs its class")
    classes = list(names) if names is not None else sorted(set(texts))
    index = {name: i for i, name in enumerate(classes)}
    for text, line in zip(texts, table.lines):
        if text not in index:
            raise DltrainError(f"data file {path}, line {line}, column {column!r}: {text!r} is not one of the classes "
                               f"{', '.join(map(repr, classes))}")
    return np.array([index[text] for text in texts], dtype=np.float64), classes


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def features(x: np.ndarray, layout: str, where: str) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """Features as stored -> X (n_x, m) float64 (uint8 rows stay uint8) and the image shape (h, w, c) for (m, h, w, c) arrays.

    rows: x is (m,) or (m, ...), each example flattened in C order (the course's reshape(m, -1).T);
    columns: x is (n_x, m), already the engine's layout.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "buif":
        raise DltrainError(f"{where} must hold numbers, got dtype {x.dtype}")
    if x.ndim == 0 or (layout == "columns" and x.ndim > 2):
        raise DltrainError(f"{where} has shape {x.shape}; expected (m, ...) for layout: rows or (n_x, m) for layout: columns")
    if x.size == 0:
        raise DltrainError(f"{where} has shape {x.shape}: no examples or no features")
    if layout == "rows":
        X = x.reshape(x.shape[0], -1).T
        image_shape = tuple(int(n) for n in x.shape[1:]) if x.ndim == 4 else None
    else:
        X, image_shape = x.reshape(-1, x.shape[-1]), None
    if x.dtype == np.uint8 and layout == "rows":
        return X, image_shape  # raw pixels stay uint8 (finite by type), each example contiguous; see data.examples
    if x.dtype == np.uint8:  # read at its stored size (data.limits), converted here
        check_float64_size(where, x.shape)
    X = X.astype(np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        feature, example = (int(i[0]) for i in np.nonzero(bad))
        raise DltrainError(
            f"{where} has {int(bad.sum())} NaN/inf values (first at example {example}, feature {feature}); "
            "remove or impute them before training"
        )
    return X, image_shape


def labels(y: np.ndarray, layout: str, where: str) -> tuple[np.ndarray, int | None]:
    """Labels as stored -> (m,) int64 and the one-hot width C (None for integer labels).

    Integer labels are (m,), (m, 1) or (1, m), held as ints, bools or whole floats (MATLAB's
    doubles); one-hot labels are (m, C) for layout rows and (C, m) for columns.
    """
    y = np.asarray(y)
    if y.dtype.kind not in "buif":
        raise DltrainError(f"{where} must hold class labels as numbers, got dtype {y.dtype}")
    if y.ndim == 2 and min(y.shape) > 1:
        Y = y if layout == "columns" else y.T  # (C, m)
        valid = np.isin(Y, (0, 1)).all(axis=0) & (Y.sum(axis=0) == 1)
        if not valid.all():
            example = int(np.flatnonzero(~valid)[0])
            raise DltrainError(
                f"{where} looks one-hot {y.shape} (layout: {layout}) but example {example} is not a single 1 among 0s; "
                "give integer labels 0..C-1 or a valid one-hot array"
            )
        return Y.argmax(axis=0).astype(np.int64), Y.shape[0]
    if y.ndim > 2:
        raise DltrainError(f"{where} has shape {y.shape}; expected labels (m,) or one-hot (m, C)")
    flat = y.reshape(-1)
    bad = ~np.isfinite(flat) | (flat < 0) | (flat != np.round(flat))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DltrainError(f"{where} must hold class labels 0..C-1, found {flat[i].item():g} (example {i})")
    if flat.size and flat.max() >= MAX_CLASSES:
        raise DltrainError(f"{where} has label {flat.max().item():g}; dltrain takes at most {MAX_CLASSES} classes (is the file damaged?)")
    return flat.astype(np.int64), None


def load_file(data, known_classes: list[str] | None = None):
    """dataset: file -> X (n_x, m), y (m,), X_test, y_test (or None), class names, image shape.

    known_classes: the classes of a trained model this data will be evaluated with; a csv's text
    labels map to their positions in it (unless data.classes is given), as they did in training.
    """
    path = Path(data.path)
    text_classes = None
    if path.suffix.lower() == ".csv":
        table = read_csv(path, data.label_column)
        X, image_shape = features(table.x, "rows", f"data file {path}: features")
        y, text_classes = csv_labels(table, path, data.label_column, data.classes or known_classes)
        parts = {"train": (X, *labels(y, "rows", f"data file {path}: column {data.label_column!r}"))}
    else:
        parts, image_shape = _file_parts(path, data)
    classes = text_classes or class_names(parts, data.classes, path)
    X, y, _ = parts["train"]
    X_test, y_test, _ = parts.get("test", (None, None, None))
    return X, y, X_test, y_test, classes, image_shape


def _file_parts(path: Path, data) -> tuple[dict, tuple[int, ...] | None]:
    """{'train': (X, y, one-hot width), 'test': ...} from an array file, and the image shape of x_train."""
    test_keys = [data.x_test, data.y_test] if data.x_test is not None else []
    # Test keys left at their defaults are used when the file has them; other names are required.
    defaults = {type(data).model_fields[k].default for k in ("x_test", "y_test")}
    arrays = read_arrays(
        path, [data.x_train, data.y_train, *[k for k in test_keys if k not in defaults]], [k for k in test_keys if k in defaults]
    )
    if any(k in arrays for k in test_keys) and not all(k in arrays for k in test_keys):
        raise DltrainError(f"data file {path} has only one of {data.x_test}, {data.y_test}; give both or set both keys to null")
    pairs = {"train": (data.x_train, data.y_train)}
    if test_keys and all(k in arrays for k in test_keys):
        pairs["test"] = (data.x_test, data.y_test)
    parts, shapes = {}, {}
    for split, (xk, yk) in pairs.items():
        X, shapes[split] = features(arrays[xk], data.layout, f"data file {path}: {xk}")
        y, width = labels(arrays[yk], data.layout, f"data file {path}: {yk}")
        if X.shape[1] != y.size:
            raise DltrainError(
                f"data file {path}: {xk} has {X.shape[1]} examples but {yk} has {y.size} "
                f"(layout: {data.layout}; shapes {arrays[xk].shape} and {arrays[yk].shape})"
            )
        parts[split] = (X, y, width)
    if "test" in parts and parts["test"][0].shape[0] != parts["train"][0].shape[0]:
        raise DltrainError(
            f"data file {path}: {data.x_test} has {parts['test'][0].shape[0]} features but {data.x_train} has "
            f"{parts['train'][0].shape[0]}"
        )
    return parts, shapes["train"]


def class_names(parts: dict, names: list[str] | None, path: Path) -> list[str]:
    """The config's class names (checked against the labels), else '0'..'C-1' with C from the labels."""
    widths = {w for _, _, w in parts.values() if w is not None}
    top = max(int(y.max(initial=0)) for _, y, _ in parts.values()) + 1
    if names is not None:
        if top > len(names):
            low = min(int(y.min()) for _, y, _ in parts.values() if y.size)
            start = f"; labels start at 0, yours at {low}: subtract {low} from them" if low > 0 else ""
            raise DltrainError(f"data file {path}: found label {top - 1} but data.classes names {len(names)} classes "
                               f"(0..{len(names) - 1}){start}")
        if widths - {len(names)}:
            raise DltrainError(f"data file {path}: one-hot labels have {max(widths)} columns but data.classes names {len(names)} classes")
        return list(names)
    if len(widths) > 1:
        raise DltrainError(f"data file {path}: train and test one-hot labels have different widths {sorted(widths)}")
    return [str(i) for i in range(max(top, *widths, 2))]
