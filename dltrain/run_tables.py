"""A run folder's growing tables, history.csv and curve.csv: read whole (read_history, read_curve)
or streamed for a few columns (read_columns, for `dltrain compare`). Both files are appended to as a
run goes (see runs.RunWriter), so a last line without its newline (a crash while appending) is
always left out. Streaming holds one line of text at a time, at most MAX_LINE_BYTES, and only the
chosen columns as float64 arrays.
"""

import csv
import io
import math
import os
from array import array
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from dltrain.errors import DltrainError, one_line
from dltrain.safe_read import MAX_HISTORY_BYTES, open_regular, read_text_limited

if TYPE_CHECKING:
    import numpy as np

CURVE = "curve.csv"
HISTORY = "history.csv"
MAX_LINE_BYTES = 2**20
# Above this size, read_columns(thin=True) keeps every k-th row (and the last), k = ceil(size / this):
# a figure's few hundred pixels never need more, and memory stays a few tens of MB whatever the run's length.
THIN_ABOVE_BYTES = 32 * 2**20


def present(path: Path) -> bool:
    """Whether a run file is there, as anything: a symlink to a device is there (and refused when read), not skipped."""
    return os.path.lexists(path)


def read_history(path: Path) -> list[dict]:
    """history.csv -> rows of numbers, or DltrainError naming the file. A last line without its
    newline (a crash while appending) is left out."""
    text = read_text_limited(Path(path), MAX_HISTORY_BYTES, "history file")
    text = text[: text.rfind("\n") + 1]
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as e:
        raise DltrainError(f"{path} is not a dltrain history file ({one_line(e)})") from None
    try:
        return [
            {k: None if v in ("", None) else int(v) if k in ("epoch", "iteration") else float(v) for k, v in row.items()}
            for row in rows
        ]
    except (ValueError, TypeError):
        raise DltrainError(f"{path} is not a dltrain history file (a value is not a number)") from None


class Table(NamedTuple):
    """Columns read by read_columns: name -> float64 array (epoch int64), nan where a row has no value."""

    columns: "dict[str, np.ndarray]"
    header: list[str]  # every column the file has
    rows: int  # complete rows in the file, whether kept or not


def _lines(path: Path, kind: str):
    """(file size, the complete lines of a regular file, without their newline), one at a time."""
    fd = open_regular(Path(path), f"{kind} file")
    f = os.fdopen(fd, "rb")

    def lines():
        with f:
            number = 0
            while True:
                try:
                    line = f.readline(MAX_LINE_BYTES + 1)
                except OSError as e:
                    raise DltrainError(f"cannot read {path}: {e.strerror}") from None
                if not line.endswith(b"\n"):
                    if len(line) > MAX_LINE_BYTES:
                        raise DltrainError(f"{path} is not a dltrain {kind} file (line {number + 1} is longer than {MAX_LINE_BYTES} bytes)")
                    return  # the end, or a partial last line
                number += 1
                try:
                    yield line.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    raise DltrainError(f"{path} is not a dltrain {kind} file (line {number} is not UTF-8 text)") from None

    return os.fstat(fd).st_size, lines()


def read_columns(path: Path, names: "list[str] | None" = None, first: int | None = None, last: int | None = None,
                 kind: str = "history", thin: bool = False) -> Table:
    """Some columns (None: all) of history.csv or curve.csv, streamed, with the epoch column; only rows of
    epochs first..last (either None for no bound). thin: rows of a file over THIN_ABOVE_BYTES are thinned
    to every k-th one (and the last), so what is kept stays bounded however long the run was."""
    import numpy as np

    size, lines = _lines(path, kind)
    header = next(lines, "").split(",")
    wanted = [n for n in (header if names is None else ["epoch", *names]) if n in header]
    wanted = list(dict.fromkeys(wanted))
    where = [header.index(n) for n in wanted]
    epoch_at = header.index("epoch") if "epoch" in header else None
    stride = max(1, math.ceil(size / THIN_ABOVE_BYTES)) if thin else 1
    kept = {n: array("d") for n in wanted}
    rows, pending = 0, None  # the last row in range, kept at the end if thinning skipped it
    for number, line in enumerate(lines, start=2):
        fields = line.split(",")
        if len(fields) != len(header):
            raise DltrainError(f"{path} is not a dltrain {kind} file (line {number} has {len(fields)} fields, the header {len(header)})")
        try:
            epoch = int(fields[epoch_at]) if epoch_at is not None else None
            rows += 1
            if epoch is not None and (first is not None and epoch < first or last is not None and epoch > last):
                continue
            values = [float(fields[i]) if fields[i] else math.nan for i in where]
        except ValueError:
            raise DltrainError(f"{path} is not a dltrain {kind} file (line {number}: a value is not a number)") from None
        if (rows - 1) % stride == 0:
            for n, v in zip(wanted, values):
                kept[n].append(v)
            pending = None
        else:
            pending = values
    if pending is not None:
        for n, v in zip(wanted, pending):
            kept[n].append(v)
    columns = {n: np.frombuffer(a, dtype=np.float64).copy() if len(a) else np.zeros(0) for n, a in kept.items()}
    if "epoch" in columns:
        columns["epoch"] = columns["epoch"].astype(np.int64)
    return Table(columns, header, rows)


def read_curve(path: Path) -> "dict[str, np.ndarray]":
    """curve.csv -> its columns as float64 arrays (epoch as int64), nan where a row has no value.
    A last line without its newline (a crash while appending) is left out."""
    return read_columns(path, kind="curve").columns


def history_curve(rows: list[dict]) -> "dict[str, np.ndarray]":
    """History rows as columns (read_curve's form): the curve of a run from before curve.csv."""
    import numpy as np

    columns = list(dict.fromkeys(k for row in rows for k in row))
    curve = {k: np.array([np.nan if row.get(k) is None else row[k] for row in rows], dtype=np.float64) for k in columns}
    if "epoch" in curve:
        curve["epoch"] = curve["epoch"].astype(np.int64)
    return curve


def run_curve(run_dir: Path, history: list[dict] | None = None) -> "dict[str, np.ndarray]":
    """Every epoch's learning rate and costs from curve.csv, or the logged epochs of `history` (the
    run's history.csv rows, read here when not given) for a run that has none (written before
    curve.csv existed)."""
    path = Path(run_dir) / CURVE
    if path.is_file():
        return read_curve(path)
    if history is None:
        history = read_history(Path(run_dir) / HISTORY) if present(Path(run_dir) / HISTORY) else []
    return history_curve(history)


def run_table_columns(run_dir: Path, names: list[str], first: int | None = None, last: int | None = None) -> Table:
    """read_columns(thin=True) of curve.csv (every epoch), or of history.csv (the logged epochs) for a run
    from before curve.csv; an empty Table when the run has neither."""
    if (Path(run_dir) / CURVE).is_file():
        return read_columns(Path(run_dir) / CURVE, names, first, last, "curve", thin=True)
    if present(Path(run_dir) / HISTORY):
        return read_columns(Path(run_dir) / HISTORY, names, first, last, "history", thin=True)
    return Table({}, [], 0)
