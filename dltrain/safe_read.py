"""Reading a file dltrain did not necessarily write (a config, a run folder's files): regular files
only, the size checked before anything is read, and never more than the limit read.

`dltrain train /dev/zero` would otherwise read gigabytes before a size check on the bytes, a FIFO
would hang the open, and a run folder's config.yaml made a symlink to a device would do both for
`reproduce` and `--resume`. The file is opened first (without blocking, so a FIFO cannot hang it)
and checked on its open descriptor, so it cannot be swapped between the check and the read.
"""

import os
import stat
from pathlib import Path

from dltrain.errors import DltrainError

# History files grow with the run (one row per logged epoch): a 653k-epoch run logged every epoch
# writes ~100 MB. Readers that need the whole history accept this much.
MAX_HISTORY_BYTES = 256 * 2**20
MAX_JSON_BYTES = 10 * 2**20


def open_regular(path: Path, what: str, exit_code: int = 1) -> int:
    """A read-only descriptor of path, or DltrainError when it is missing or not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise DltrainError(f"{what} {path} not found", exit_code) from None
    except OSError as e:
        raise DltrainError(f"cannot read {what} {path}: {e.strerror}", exit_code) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else \
            "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file"
        raise DltrainError(f"{what} {path} is {kind}, not a regular file", exit_code)
    return fd


def check_regular(path: Path, what: str, exit_code: int = 1) -> int:
    """The size of a regular file at path (see open_regular), for readers that open it themselves (h5py)."""
    fd = open_regular(path, what, exit_code)
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def read_limited(path: Path, limit: int, what: str, exit_code: int = 1) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, or DltrainError naming the file; reads
    at most limit + 1 bytes, whatever the file claims."""
    fd = open_regular(path, what, exit_code)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise DltrainError(f"{what} {path} is {size} bytes; the limit is {limit}", exit_code)
        chunks, left = [], limit + 1
        while left > 0:
            try:
                chunk = os.read(fd, min(left, 2**20))
            except OSError as e:
                raise DltrainError(f"cannot read {what} {path}: {e.strerror}", exit_code) from None
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise DltrainError(f"{what} {path} is more than {limit} bytes; the limit is {limit}", exit_code)
        return data
    finally:
        os.close(fd)


def read_text_limited(path: Path, limit: int, what: str, exit_code: int = 1) -> str:
    try:
        return read_limited(path, limit, what, exit_code).decode("utf-8")
    except UnicodeDecodeError as e:
        raise DltrainError(f"{what} {path} is not UTF-8 text (byte {e.start})", exit_code) from None
