"""Locks that say who works on a run folder or a search trial: flock, which the kernel releases when
its holder ends however it ends (kill -9 included), so a lock is never stale and a reused pid never
looks like a holder. The lock files are empty and never removed (removing one would let a later
process lock a new file while the old one is still held)."""

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no locks; callers go ahead unguarded
    fcntl = None

from dltrain.errors import DltrainError, one_line

LOCK = ".lock"


@contextmanager
def writing(path: Path):
    """A failed creation of a lock file as DltrainError naming the file."""
    try:
        yield
    except OSError as e:
        raise DltrainError(f"cannot write {path}: {e.strerror or one_line(e)}") from None


def folder_locked(run_dir: Path) -> bool:
    """Whether a process holds run_dir/.lock now (it is training into the folder); False where nothing can be locked."""
    if fcntl is None:
        return False
    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


@contextmanager
def claim(path: Path, wait: "Callable[[], None]") -> Iterator[bool]:
    """Hold an exclusive flock on `path` (an empty file, created if needed and never removed) for the
    block, calling wait() between attempts while another process holds it. Yields False where nothing
    can be locked (no fcntl, a filesystem without locks): the caller then goes ahead unguarded.

    A search's workers claim a trial this way before they look at its run folder, so two of them
    (an interrupted search's worker still finishing a trial, and the rerun's) never train the same
    folder at once; the kernel releases the lock when its holder ends, however it ends.
    """
    if fcntl is None:
        yield False
        return
    with writing(path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
                break
            except BlockingIOError:
                wait()
            except OSError:
                locked = False
                break
        yield locked
    finally:
        os.close(fd)
