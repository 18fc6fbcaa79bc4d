"""Datasets as arrays with examples as columns: X (n_x, m) float64, labels (m,) int64."""

from dltrain.data.core import Dataset, fingerprint, load_dataset

__all__ = ["Dataset", "fingerprint", "load_dataset"]
