"""Guards for reading damaged or hostile files: a bound on the arrays they may declare, checked
before anything is read, and a trial parse in a child process for readers that can crash.

A truncated, corrupt or hostile file can declare any shape (and a compressed one can expand far
beyond its own size); reading it would exhaust memory instead of failing with a message.
"""

import faulthandler
import math
import os
import signal
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

from dltrain.errors import DltrainError

FALLBACK_MEMORY_BYTES = 8 * 2**30


def memory_bytes() -> int:
    """Physical memory of this machine (a fixed 8 GiB where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return FALLBACK_MEMORY_BYTES


MAX_ARRAY_BYTES = memory_bytes() // 4


BUDGET_VARIABLE = "DLTRAIN_MEMORY_BUDGET"


def memory_budget() -> int:
    """Bytes dltrain may plan to use for one model or one data array as floats: the environment
    variable DLTRAIN_MEMORY_BUDGET (bytes, or with a K/M/G/T suffix: 4G), by default half of this
    machine's memory."""
    text = os.environ.get(BUDGET_VARIABLE, "").strip()
    if not text:
        return memory_bytes() // 2
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    try:
        value = float(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else float(text)
    except ValueError:
        value = -1
    if not 0 < value < 2**62:
        raise DltrainError(f"{BUDGET_VARIABLE}={text[:40]!r}: expected a number of bytes, e.g. 4G or 500M", 2)
    return int(value)


def check_budget(what: str, nbytes: int, fix: str) -> None:
    """DltrainError, before anything is allocated, when `what` would need more than the memory budget."""
    budget = memory_budget()
    if nbytes > budget:
        raise DltrainError(f"{what} would need about {nbytes / 2**30:.3g} GiB, more than the memory budget of "
                           f"{budget / 2**30:.3g} GiB: {fix}, or raise the budget with {BUDGET_VARIABLE} (e.g. {BUDGET_VARIABLE}=16G)")


def check_array_size(where: str, shape: tuple[int, ...], itemsize: int, raw: bool = False) -> None:
    """Raise DltrainError when an array of this shape would take more than a quarter of the memory,
    or more than the memory budget once converted to float64 (as data and weights are), or as
    stored when it is held `raw` (uint8 pixels stay uint8, see data.examples)."""
    size = math.prod(shape) * itemsize
    if size > MAX_ARRAY_BYTES:
        raise DltrainError(
            f"{where} has shape {tuple(shape)} ({size / 2**30:.3g} GiB): more than the {MAX_ARRAY_BYTES / 2**30:.3g} GiB "
            "(a quarter of this machine's memory) dltrain allows one array"
        )
    if raw:
        check_budget(f"{where} (shape {tuple(shape)})", size, "stream it from the file (data.stream: true)")
    else:
        check_float64_size(where, shape)


def check_float64_size(where: str, shape: tuple[int, ...]) -> None:
    """DltrainError when an array of this shape would be more than the memory budget as float64."""
    check_budget(f"{where} (shape {tuple(shape)}) as float64", math.prod(shape) * 8, "use a smaller array")


def survives(parse: Callable[[], object], path: Path, seconds: int | None = None) -> None:
    """Run parse() in a forked child first; DltrainError if it crashes or hangs there.

    scipy's MATLAB reader (and libhdf5, on crafted HDF5 files) can crash the whole process on
    damaged input instead of raising; the child dies in dltrain's place. Whether parse() raises
    does not matter here: the caller parses again and reports that. There is no trial without fork
    (Windows), nor outside the main thread: sibling threads (a dask worker's other trials) may hold
    locks, such as h5py's, that the child would wait on forever. `seconds` bounds the trial
    (default: 60 s, plus 1 s per 10 MB of file).
    """
    if not hasattr(os, "fork") or threading.current_thread() is not threading.main_thread():
        return
    if seconds is None:
        seconds = 60 + path.stat().st_size // 10_000_000  # generous for a legitimately large file
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+ warns about forking a threaded process
        pid = os.fork()
    if pid == 0:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # the parent parses again and reports; the trial stays silent
            faulthandler.disable()  # which a test runner may have enabled on another descriptor
            signal.alarm(seconds)  # a hung parse ends the child with SIGALRM
            parse()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        what = f"hangs the reader (no result after {seconds} s)" if sig == signal.SIGALRM else f"crashes the reader ({signal.Signals(sig).name})"
        raise DltrainError(f"data file {path} {what}: the file is damaged; re-create or re-download it")
