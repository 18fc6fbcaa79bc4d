"""The only code that writes or reads run folders.

Every file is written to a temporary name in the run folder and renamed into place, so a crash
leaves either the previous complete file or the new one. A run folder is never reused. Two
exceptions: the empty .lock (see training_lock), which is only ever locked, and history.csv and
curve.csv, which are appended to (rewriting them would cost O(rows) per write, and make stopping a
long run wait for it): rows are written whole, so a crash can leave at most a partial last line,
which readers skip and a resume cuts off (the checkpoint records the files' lengths).
"""

import contextlib
import csv
import errno
import hashlib
import io
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

try:
    import fcntl
except ImportError:  # Windows: resume falls back to the pid summary.json records
    fcntl = None

import yaml

if TYPE_CHECKING:
    import numpy as np

from dltrain.config import read_yaml
from dltrain.errors import DltrainError, one_line
from dltrain.model_file import CHECKSUMS, array_checksum, model_image, read_model  # noqa: F401 (the run folder's model files)
from dltrain.run_locks import LOCK, claim, folder_locked  # noqa: F401 (search trials' claims)
from dltrain.run_tables import (  # noqa: F401 (history.csv and curve.csv)
    CURVE,
    HISTORY,
    history_curve,
    present,
    read_columns,
    read_curve,
    read_history,
    run_curve,
    run_table_columns,
)
from dltrain.safe_read import MAX_JSON_BYTES, read_text_limited

HISTORY_FLUSH_SECONDS = 2.0


def write_error(path: Path, e: OSError) -> DltrainError:
    """A failed write of a run file as one line naming the file; a full disk says so in plain words."""
    if e.errno == errno.ENOSPC:
        return DltrainError(f"cannot write {path}: no space left on the device; free some space and resume the run")
    if e.errno == errno.EDQUOT:
        return DltrainError(f"cannot write {path}: disk quota exceeded; free some space and resume the run")
    return DltrainError(f"cannot write {path}: {e.strerror or one_line(e)}")


@contextmanager
def writing(path: Path):
    """A failed write of a run file (disk full, permissions) as DltrainError naming the file."""
    try:
        yield
    except OSError as e:
        raise write_error(path, e) from None


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write `data` to path via a temporary file in the same folder and an atomic rename; a failed
    write (a full disk) removes its temporary file and leaves the previous complete file in place."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with writing(path):
        try:
            with open(tmp, "wb") as f:
                f.write(data.encode() if isinstance(data, str) else data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise


def new_run_dir(runs_dir: Path, name: str, now: datetime | None = None) -> Path:
    """runs_dir/<name>-<YYYYmmdd-HHMMSS>, with -2, -3, ... if that exists; never outside runs_dir."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise DltrainError(f"run name {name!r} must be letters, digits, '.', '_' or '-' (at most 64)", 2)
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = Path(runs_dir) / f"{name}-{stamp}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


@contextmanager
def training_lock(run_dir: Path) -> Iterator[bool]:
    """Hold an exclusive lock on run_dir/.lock while a process trains into the folder, or
    DltrainError if another process holds it. Yields False where nothing can be locked (no fcntl,
    a filesystem without flock): the caller then has only summary.json's pid to go by.

    flock, not a pid: the kernel releases it when the process ends however it ends (kill -9
    included), so a lock is never stale and a reused pid never looks like a training. The file is
    empty and never removed: removing it would let a later process lock a new file while the old
    one is still held.
    """
    if fcntl is None:
        yield False
        return
    locked = False
    path = Path(run_dir) / LOCK
    with writing(path):
        # Read-write: over NFS flock becomes a byte-range lock, which needs a file open for writing.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            raise DltrainError(f"{run_dir} is being trained by another process: wait for it to finish, or stop it (Ctrl-C) first") from None
        except OSError:  # ENOLCK, EOPNOTSUPP, ...: this filesystem has no locks to take
            locked = False
        yield locked
    finally:
        if locked:
            # Released explicitly: a process forked meanwhile (train's figures process) shares the
            # open file, and closing one copy of it would leave the lock held by the other.
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class RunWriter:
    """Creates one run folder and writes its files. history.csv and curve.csv grow by appending
    whole rows, buffered for at most a few seconds: the history is on disk as it grows, so ending a
    run (SIGTERM, a checkpoint) never rewrites it, whatever its length.

    To continue an existing folder instead (dltrain train --resume), give the checkpoint's
    `history_bytes` (history.csv is cut back to it: rows logged after the checkpoint go) or, for a
    checkpoint from before history.csv was appended to, its `rows` (history.csv is rewritten from
    them); curve.csv is cut back to the checkpoint's `curve_bytes` (None: the checkpoint predates
    curve.csv, so none is written).

    `checksums`: the checkpoint's sha256 of each file's first bytes, checked before it is cut back
    (a file changed since the checkpoint would otherwise be continued after foreign bytes).

    `curve_columns`: curve.csv's columns, one row per epoch appended by log_curve (None: no curve).
    """

    def __init__(self, run_dir: Path, history_columns: list[str], rows: list[dict] | None = None,
                 curve_columns: list[str] | None = None, curve_bytes: int | None = None, history_bytes: int | None = None,
                 checksums: dict[str, str] | None = None):
        self.dir = Path(run_dir)
        self._digests = {HISTORY: hashlib.sha256(), CURVE: hashlib.sha256()}  # of each file's bytes so far
        checksums = checksums or {}
        resuming = rows is not None or history_bytes is not None
        if not resuming:
            try:
                self.dir.parent.mkdir(parents=True, exist_ok=True)
                self.dir.mkdir()
            except FileExistsError:
                if not self.dir.parent.is_dir():
                    raise DltrainError(f"cannot create run folder {self.dir}: {self.dir.parent} is a file") from None
                raise DltrainError(f"run folder {self.dir} already exists; dltrain never overwrites a run") from None
            except OSError as e:
                raise DltrainError(f"cannot create run folder {self.dir}: {e.strerror}") from None
        elif not self.dir.is_dir():
            raise DltrainError(f"run folder {self.dir} not found")
        else:
            # A killed process can leave a half-written temporary file; its complete target is intact.
            for stale in self.dir.glob(".*.tmp-*"):
                stale.unlink()
        self.columns = history_columns
        self._flushed_at = time.monotonic()
        self._history: list[str] = []  # history lines not yet appended
        self.history_bytes = 0  # history.csv's length once they are
        if not resuming:
            self._history.append(self._csv_line(None))
        elif history_bytes is None:  # an older checkpoint: its rows are the history
            text = "".join([self._csv_line(None), *(self._csv_line(row) for row in rows)]).encode()
            self.write_bytes(HISTORY, text)
            self.history_bytes = len(text)
            self._digests[HISTORY].update(text)
        else:
            self.history_bytes = self._cut(HISTORY, history_bytes, "history", checksums.get(HISTORY))
        self.curve_columns = curve_columns if not resuming or curve_bytes is not None else None
        self._curve: list[str] = []  # lines not yet appended
        self.curve_bytes = 0  # curve.csv's length once the lines are appended
        if self.curve_columns is not None:
            if not resuming:
                self._curve.append(",".join(self.curve_columns) + "\n")
            else:
                self.curve_bytes = self._cut(CURVE, curve_bytes, "per-epoch curve", checksums.get(CURVE))

    def _csv_line(self, row: dict | None) -> str:
        """One history.csv line: the header for None, else the row (missing columns blank)."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader() if row is None else w.writerow(row)
        return buf.getvalue()

    def _cut(self, name: str, size: int, what: str, checksum: str | None) -> int:
        """Resume: drop the rows written after the checkpoint (and a partial line a crash left), once the
        first `size` bytes match the checkpoint's checksum (checkpoints without one: not checked); -> size."""
        path = self.path(name)
        have = path.stat().st_size if path.is_file() else 0
        if have < size:
            raise DltrainError(f"{path} has {have} bytes but the checkpoint recorded {size}: it was truncated or replaced, "
                               f"so the {what} cannot be continued")
        digest = self._digests[name]
        with writing(path), open(path, "r+b") as f:
            left = size
            while left > 0:
                chunk = f.read(min(left, 2**20))
                if not chunk:
                    break
                digest.update(chunk)
                left -= len(chunk)
            if checksum is not None and digest.hexdigest() != checksum:
                raise DltrainError(f"{path} was changed after the checkpoint (its first {size} bytes do not match the checksum the "
                                   f"checkpoint recorded), so the {what} cannot be continued")
            f.truncate(size)
        return size

    def checksum(self, name: str) -> str:
        """sha256 of what has been appended to history.csv or curve.csv (CHECKSUMS of a checkpoint)."""
        return self._digests[name].hexdigest()

    def _append(self, name: str, lines: list[str], size: int, sync: bool) -> int:
        """Append lines to a file of `size` bytes; -> its new size. A failed write (a full disk) cuts
        the file back to `size`, so a retry never leaves half a row in the middle."""
        path = self.path(name)
        data = "".join(lines).encode()
        with writing(path):
            try:
                with open(path, "ab") as f:
                    f.write(data)
                    f.flush()
                    if sync:
                        os.fsync(f.fileno())
            except OSError:
                with contextlib.suppress(OSError):
                    os.truncate(path, size)
                raise
        lines.clear()
        self._digests[name].update(data)
        return size + len(data)

    def path(self, name: str) -> Path:
        return self.dir / name

    def write_text(self, name: str, text: str) -> None:
        atomic_write(self.path(name), text)

    def write_bytes(self, name: str, data: bytes) -> None:
        atomic_write(self.path(name), data)

    def write_json(self, name: str, obj: Any) -> None:
        self.write_text(name, json.dumps(obj, indent=2, sort_keys=False) + "\n")

    def write_yaml(self, name: str, obj: Any) -> None:
        self.write_text(name, yaml.safe_dump(obj, sort_keys=False))

    def log(self, row: dict) -> None:
        """Append a history row; rows reach the file at most a few seconds later (and on flush)."""
        self._history.append(self._csv_line(row))
        if time.monotonic() - self._flushed_at >= HISTORY_FLUSH_SECONDS:
            self.flush_history()

    def log_curve(self, *values: float | None) -> None:
        """Append one epoch's row to curve.csv (values in curve_columns' order, None blank); exact
        floats (repr), written with the history at most every few seconds."""
        if self.curve_columns is not None:
            self._curve.append(",".join("" if v is None else str(v) if isinstance(v, int) else repr(float(v))
                                        for v in values) + "\n")
            if time.monotonic() - self._flushed_at >= HISTORY_FLUSH_SECONDS:
                self.flush_history()

    def flush_curve(self, sync: bool = False) -> int:
        """Append the buffered curve rows; -> curve.csv's length in bytes (synced to disk with sync)."""
        if self.curve_columns is None:
            return 0
        if self._curve or sync:
            self.curve_bytes = self._append(CURVE, self._curve, self.curve_bytes, sync)
        return self.curve_bytes

    def flush_history(self, sync: bool = False) -> int:
        """Append the buffered history and curve rows; -> history.csv's length in bytes (synced with sync).
        Only what was logged since the last flush is written: never the whole history again."""
        self.flush_curve(sync)
        if self._history or sync:
            self.history_bytes = self._append(HISTORY, self._history, self.history_bytes, sync)
        self._flushed_at = time.monotonic()
        return self.history_bytes

    def overwrite_in_place(self, name: str, text: str) -> bool:
        """Last resort on a full disk, where atomic_write has no room for its temporary copy:
        rewrite the file's own blocks (a small summary.json keeps its size class). Not atomic, so
        only for the final 'failed' mark; -> whether it worked."""
        try:
            with open(self.path(name), "r+b") as f:
                f.write(text.encode())
                f.truncate()
                f.flush()
                os.fsync(f.fileno())
            return True
        except OSError:
            return False

    def remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def save_model(self, name: str, **groups: "dict[str, np.ndarray] | str") -> None:
        """An HDF5 file: one group per dict of arrays (params, state, ...); strings become attributes.

        The file format of HDF5 1.10 checksums every object header and attribute, and the strings are
        stored in the attributes themselves (fixed length, UTF-8), so a damaged file fails its
        checksum when read instead of sending libhdf5 after corrupt pointers (which can hang it).
        """
        with writing(self.path(name)):
            image = model_image(groups)
        atomic_write(self.path(name), image)


def read_json_file(path: Path) -> Any:
    """A JSON file written by dltrain, or None when it is missing or unreadable."""
    try:
        return json.loads(read_text_limited(Path(path), MAX_JSON_BYTES, "run file"))
    except (DltrainError, ValueError, RecursionError):
        return None


def completed_metrics(run_dir: Path) -> dict | None:
    """metrics.json of a run whose summary.json says completed; None for a missing, running or diverged run."""
    summary = read_json_file(Path(run_dir) / "summary.json")
    if not isinstance(summary, dict) or summary.get("status") != "completed":
        return None
    metrics = read_json_file(Path(run_dir) / "metrics.json")
    return metrics if isinstance(metrics, dict) else None


def discard_unfinished(run_dir: Path) -> None:
    """Remove a run folder that has no completed metrics (cut off by Ctrl-C or a killed worker) so it can run again."""
    run_dir = Path(run_dir)
    if run_dir.is_dir() and completed_metrics(run_dir) is None:
        shutil.rmtree(run_dir)


# ---- reading run folders ----------------------------------------------------------------------

EVALUATION_PREFIX = "evaluation"


class RunRecord(NamedTuple):
    """A run folder's text files, parsed; a file the run has not written (yet) is empty."""

    dir: Path
    config: dict
    history: list[dict]  # history.csv rows; numbers as float (epoch, iteration as int), blanks as None
    metrics: dict
    summary: dict


def _read_json(path: Path) -> dict:
    try:
        obj = json.loads(read_text_limited(path, MAX_JSON_BYTES, "run file"))
    except RecursionError:
        raise DltrainError(f"{path} nests too deeply to be a dltrain run file") from None
    except ValueError as e:
        raise DltrainError(f"{path} is not valid JSON ({one_line(e)})") from None
    if not isinstance(obj, dict):
        raise DltrainError(f"{path}: expected a JSON object")
    return obj


def is_run_dir(path: Path) -> bool:
    return (Path(path) / "summary.json").is_file()


def load_run(run_dir: Path, history: bool = True) -> RunRecord:
    """Read config.yaml, history.csv, metrics.json and summary.json of one run folder; with history
    False, not history.csv (it grows with the run: tens of MB), whose rows are then [].

    A running or diverged run has no metrics yet ({}); a folder without summary.json is not a run.
    """
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise DltrainError(f"{run_dir} is not a dltrain run folder (it has no summary.json)")
    config = {}
    if present(run_dir / "config.yaml"):
        config = read_yaml(run_dir / "config.yaml") or {}
        check_shape(run_dir / "config.yaml", config, {"model": dict, "optimizer": dict, "training": dict,
                                                       "regularization": dict, "data": dict, "name": str})
        check_shape(run_dir / "config.yaml", config.get("model", {}), {"layers": list}, "model.")
    rows = read_history(run_dir / HISTORY) if history and present(run_dir / HISTORY) else []
    metrics = _read_json(run_dir / "metrics.json") if present(run_dir / "metrics.json") else {}
    check_shape(run_dir / "metrics.json", metrics, dict.fromkeys(("train", "dev", "test"), dict))
    for split in ("train", "dev", "test"):
        check_shape(run_dir / "metrics.json", metrics.get(split, {}), dict.fromkeys(("cost", "accuracy"), NUMBER) | {"examples": int},
                    f"{split}.")
    return RunRecord(run_dir, config, rows, metrics, read_summary(run_dir))


def read_summary(run_dir: Path) -> dict:
    """summary.json of a run folder, its keys' types checked: what Run.status needs, without the
    folder's other files (history.csv may be tens of MB)."""
    summary = _read_json(Path(run_dir) / "summary.json")
    check_shape(Path(run_dir) / "summary.json", summary, {"status": str, "name": str, "data_fingerprint": str, "epochs_run": int,
                                                          "stopped_epoch": int, "best_epoch": int, "duration_seconds": NUMBER,
                                                          "resumed": list, "pid": int, "host": str})
    return summary


NUMBER = (int, float)


def check_shape(path: Path, obj: Any, types: dict[str, type | tuple], prefix: str = "") -> None:
    """DltrainError naming the file and field when one of the keys dltrain reads has a value of another type."""
    if not isinstance(obj, dict):
        raise DltrainError(f"{path}: {prefix.rstrip('.') or 'the file'} should be a mapping, got {type(obj).__name__}")
    for key, kind in types.items():
        value = obj.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool) and kind is not bool):
            raise DltrainError(f"{path}: {prefix}{key} has the wrong type ({type(value).__name__}: {str(value)[:60]})")


def existing_folder(path: Path, what: str = "run folder") -> Path:
    """path, or DltrainError (exit 2: the command line names it) when it does not exist or is a file."""
    path = Path(path)
    if not path.is_dir():
        raise DltrainError(f"{what} {path} not found" if not path.exists() else f"{path} is a file, not a {what}", 2)
    return path


def list_run_dirs(runs_dir: Path) -> list[Path]:
    """The run folders directly inside runs_dir, by name."""
    runs_dir = existing_folder(runs_dir, "runs folder")
    return sorted(p for p in runs_dir.iterdir() if p.is_dir() and is_run_dir(p))


def remove_evaluation_plots(run_dir: Path) -> None:
    """Delete the previous evaluation's plots: a new evaluation replaces them, even for splits or
    data it does not plot again."""
    for path in Path(run_dir).glob(f"{EVALUATION_PREFIX}_*.png"):
        path.unlink(missing_ok=True)


def write_evaluation_file(run_dir: Path, name: str, data: bytes | str) -> Path:
    """Write an evaluation output into a finished run folder; only `evaluation*` names, so training
    artifacts are never overwritten, while re-evaluating replaces the previous evaluation."""
    if not name.startswith(EVALUATION_PREFIX) or Path(name).name != name:
        raise ValueError(f"evaluation outputs are named {EVALUATION_PREFIX}*, got {name!r}")
    path = Path(run_dir) / name
    atomic_write(path, data)
    return path


def write_output(path: Path, data: bytes | str) -> None:
    """A file the user named (errors CSV, comparison plot), written atomically."""
    try:
        atomic_write(Path(path), data)
    except OSError as e:
        raise DltrainError(f"cannot write {path}: {e.strerror}") from None
