"""Data at scale: peak RSS and examples/s of one training epoch on an `images` file of N 64x64x3 images.

    PYTHONPATH=$PWD python benchmarks/data.py [--sizes 20000,100000] [--dtypes float32,float64] [--keep]

Each measurement runs `dltrain train` (Python API, no progress display) in a fresh subprocess
(Adam, batch 256, one epoch, 64-32-1 network, dev_fraction 0.05) and reads its peak resident set
(ru_maxrss). Target (issue #19): in memory, peak RSS <= raw uint8 size + 300 MB. Printed as ratios
against the target (<= 1.00 meets it). Throughput is examples/s of the epoch (history.csv seconds);
on a shared machine it is provisional, RSS is not.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

SIDE = 64
MB = 2**20


def make_file(path: Path, m: int, seed: int = 0) -> None:
    """m random 64x64x3 uint8 images with labels in the course layout, written in blocks."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        x = f.create_dataset("train_set_x", (m, SIDE, SIDE, 3), np.uint8)
        for i in range(0, m, 5000):
            k = min(5000, m - i)
            x[i : i + k] = rng.integers(0, 256, (k, SIDE, SIDE, 3), dtype=np.uint8)
        f["train_set_y"] = rng.integers(0, 2, m)
        f["list_classes"] = np.array([b"no", b"yes"])


CHILD = """
import json, resource, sys, time
from dltrain import train
path, dtype, run_dir = sys.argv[1:4]
cfg = {"name": "bench", "seed": 0, "dtype": dtype,
       "data": {"dataset": "images", "path": path, "dev_fraction": 0.05},
       "model": {"layers": ["auto", 32, 1], "hidden_activation": "relu", "output_activation": "sigmoid"},
       "optimizer": {"name": "adam", "learning_rate": 0.001},
       "training": {"epochs": 1, "batch_size": 256}}
started = time.perf_counter()
run = train(cfg, run_dir=run_dir, progress=False)
total = time.perf_counter() - started
import csv
rows = list(csv.DictReader(open(f"{run_dir}/history.csv")))
print(json.dumps({"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "epoch_seconds": float(rows[-1]["seconds"]),
                  "total_seconds": total}))
"""


def measure(path: Path, dtype: str, tmp: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), dtype, str(tmp / f"run-{path.stem}-{dtype}")],
                         check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="20000,100000")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--dir", default=None, help="where the image files go (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        print(f"{'images':>8} {'dtype':>8} {'raw MB':>8} {'peak RSS MB':>12} {'target MB':>10} {'ratio':>6} {'examples/s':>11}")
        for m in map(int, args.sizes.split(",")):
            path = tmp / f"images-{m}.h5"
            make_file(path, m)
            raw = m * SIDE * SIDE * 3
            for dtype in args.dtypes.split(","):
                r = measure(path, dtype, tmp)
                target = raw + 300 * MB
                print(f"{m:>8} {dtype:>8} {raw / MB:>8.0f} {r['rss'] / MB:>12.0f} {target / MB:>10.0f} {r['rss'] / target:>6.2f} "
                      f"{0.95 * m / r['epoch_seconds']:>11.0f}", flush=True)
            path.unlink()
        print(f"(this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB peak; throughput provisional on a shared machine)")


if __name__ == "__main__":
    main()
