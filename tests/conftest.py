"""Shared fixtures: where the course's data files are, and small helpers."""

from pathlib import Path

import numpy as np
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


@pytest.fixture
def rng():
    return np.random.default_rng(0)
