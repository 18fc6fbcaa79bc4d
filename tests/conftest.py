"""Shared fixtures: where the course's data files are, and small helpers."""

import csv
import errno
import os
from pathlib import Path

# Before NumPy loads OpenBLAS: on a machine whose cores are shared with other jobs, BLAS threads
# that spin waiting for each other make the course-reproduction runs several times slower (cat-deep
# took 12 min instead of 5 under load). One thread changes no result: GEMM splits rows, not sums.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest

REPO = Path(__file__).resolve().parents[1]


def course_data_dir() -> Path | None:
    """The folder holding the real course files: the repo's datasets/ or ../shared/datasets."""
    for folder in (REPO / "datasets", REPO.parent / "shared" / "datasets"):
        if (folder / "train_catvnoncat.h5").is_file():
            return folder
    return None


COURSE_DATA = course_data_dir()
needs_course_data = pytest.mark.skipif(COURSE_DATA is None, reason="course data files not present")


def blas_kernels() -> str | None:
    """The kernel family of NumPy's OpenBLAS ('Haswell', 'SkylakeX', ...), or None for another BLAS."""
    from benchmarks.engine import numpy_blas

    lib = numpy_blas()
    return lib.get("architecture") if lib is not None and lib["internal_api"] == "openblas" else None


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def history_without_seconds(run_dir):
    """history.csv's rows as text, without the wall-time column: what two identical runs share."""
    with open(run_dir / "history.csv") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


class FullDisk:
    """A file whose writes end in ENOSPC, as on a full disk, after `partial` characters reached it (0: none)."""

    def __init__(self, f, partial: int = 0):
        self.f, self.partial = f, partial

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        if self.partial:
            self.f.write(data[: self.partial])
            self.f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.f, name)
