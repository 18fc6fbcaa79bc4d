"""Data at scale: peak RSS and examples/s of one training epoch on an `images` file of N 64x64x3 images.

    PYTHONPATH=$PWD python benchmarks/data.py [--sizes 20000,100000,400000] [--modes memory,stream]
        [--dtypes float32,float64] [--dir /work/tmp-data] [--no-torch] [--keep]

Each measurement runs `dltrain train` (Python API, no progress display) in a fresh subprocess
(Adam, batch 256, one epoch, 12288-32-1 relu/sigmoid network, dev_fraction 0.05) and reads its peak
resident set (ru_maxrss). Modes: memory (data.stream: false) and stream (data.stream: true); the
400k file (4.9 GB) is trained by streaming only unless memory is asked for by --modes-400k.
Targets (issue #19), printed as ratios (<= 1.00 meets a memory target, >= 1.00 a speed target):
  in memory: peak RSS <= raw uint8 size + 300 MB;  streaming: peak RSS <= 500 MB;
  streaming examples/s >= 0.7 x in memory on the same file (in the page cache: the memory run reads it first);
  dltrain streaming examples/s >= PyTorch's: a DataLoader over an h5py-backed Dataset (one image per
  __getitem__, shuffle=True, batch 256, same network, Adam, float32, 2 threads), run in the same way.
Throughput is examples/s of the epoch's training (history.csv seconds, minus nothing: it includes the
dev evaluation); on a shared machine it is provisional, RSS is not. The files go to --dir (a disk, not
a tmpfs: check `df`) and are deleted at the end.
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
STREAM_TARGET = 500 * MB
THREADS = "2"

CHILD = """
import csv, json, resource, sys, time
from dltrain import train
path, dtype, run_dir, stream = sys.argv[1:5]
cfg = {"name": "bench", "seed": 0, "dtype": dtype,
       "data": {"dataset": "images", "path": path, "dev_fraction": 0.05, "stream": stream == "stream"},
       "model": {"layers": ["auto", 32, 1], "hidden_activation": "relu", "output_activation": "sigmoid"},
       "optimizer": {"name": "adam", "learning_rate": 0.001},
       "training": {"epochs": 1, "batch_size": 256}}
started = time.perf_counter()
run = train(cfg, run_dir=run_dir, progress=False)
total = time.perf_counter() - started
rows = list(csv.DictReader(open(f"{run_dir}/history.csv")))
m = json.load(open(f"{run_dir}/summary.json"))["split_counts"]["train"]
print(json.dumps({"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "epoch_seconds": float(rows[-1]["seconds"]),
                  "total_seconds": total, "train": m}))
"""

TORCH_CHILD = """
import json, resource, sys, time
import h5py, numpy as np, torch
torch.set_num_threads(int(sys.argv[2]))
path = sys.argv[1]

class H5Images(torch.utils.data.Dataset):
    # The usual h5py-backed Dataset: the file opened lazily (once per worker), one image per item.
    def __init__(self, path):
        self.path, self.f = path, None
        with h5py.File(path, "r") as f:
            self.m, self.y = f["train_set_y"].shape[0], f["train_set_y"][()].astype(np.float32)
    def __len__(self):
        return self.m
    def __getitem__(self, i):
        if self.f is None:
            self.f = h5py.File(self.path, "r")
        x = torch.from_numpy(self.f["train_set_x"][i].reshape(-1).astype(np.float32) / 255)
        return x, torch.tensor([self.y[i]])

ds = H5Images(path)
loader = torch.utils.data.DataLoader(ds, batch_size=256, shuffle=True, num_workers=0,
                                     generator=torch.Generator().manual_seed(0))
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(ds[0][0].numel(), 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
opt = torch.optim.Adam(net.parameters(), lr=0.001)
loss_fn = torch.nn.BCEWithLogitsLoss()
started = time.perf_counter()
for xb, yb in loader:
    opt.zero_grad()
    loss = loss_fn(net(xb), yb)
    loss.backward()
    opt.step()
seconds = time.perf_counter() - started
print(json.dumps({"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "epoch_seconds": seconds, "train": ds.m}))
"""


def make_file(path: Path, m: int, seed: int = 0) -> None:
    """m random 64x64x3 uint8 images with labels in the course layout, written in blocks (contiguous, uncompressed)."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        x = f.create_dataset("train_set_x", (m, SIDE, SIDE, 3), np.uint8)
        for i in range(0, m, 5000):
            k = min(5000, m - i)
            x[i : i + k] = rng.integers(0, 256, (k, SIDE, SIDE, 3), dtype=np.uint8)
        f["train_set_y"] = rng.integers(0, 2, m)
        f["list_classes"] = np.array([b"no", b"yes"])


def child_env() -> dict:
    threads = {k: THREADS for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    return {**os.environ, **threads, "PYTHONPATH": os.getcwd()}


def measure(path: Path, dtype: str, tmp: Path, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), dtype, str(tmp / f"run-{path.stem}-{dtype}-{mode}"), mode],
                         check=True, capture_output=True, text=True, env=child_env())
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_torch(path: Path) -> dict | None:
    try:
        import torch  # noqa: F401 - benchmark-only peer: torch==2.13.0, never a dependency
    except ImportError:
        return None
    out = subprocess.run([sys.executable, "-c", TORCH_CHILD, str(path), THREADS], check=True, capture_output=True, text=True,
                         env=child_env())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="20000,100000")
    ap.add_argument("--modes", default="memory,stream")
    ap.add_argument("--modes-400k", default="stream", help="modes for files of 400,000 images or more (memory holds 4.9 GB)")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--dir", default=None, help="where the image files go (default: a temporary folder; use a disk, not a tmpfs)")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    ap.add_argument("--keep", action="store_true", help="write the files to --dir itself, reuse them there and keep them")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        files = Path(args.dir or ".") if args.keep else tmp
        print(f"{'images':>8} {'mode':>7} {'dtype':>8} {'raw MB':>7} {'peak RSS MB':>11} {'target MB':>9} {'ratio':>6} "
              f"{'examples/s':>10} {'vs memory':>9} {'vs torch':>8}")
        for m in map(int, args.sizes.split(",")):
            path = files / f"images-{m}.h5"
            if not path.exists():
                make_file(path, m)
            raw = m * SIDE * SIDE * 3
            modes = (args.modes_400k if m >= 400_000 else args.modes).split(",")
            peer = None if args.no_torch else measure_torch(path)
            if peer is not None:
                print(f"{m:>8} {'torch':>7} {'float32':>8} {raw / MB:>7.0f} {peer['rss'] / MB:>11.0f} {'':>9} {'':>6} "
                      f"{peer['train'] / peer['epoch_seconds']:>10.0f}", flush=True)
            for dtype in args.dtypes.split(","):
                speed = {}
                for mode in modes:
                    r = measure(path, dtype, tmp, mode)
                    target = raw + 300 * MB if mode == "memory" else STREAM_TARGET
                    speed[mode] = r["train"] / r["epoch_seconds"]
                    vs_memory = f"{speed[mode] / speed['memory']:.2f}" if mode == "stream" and "memory" in speed else ""
                    vs_torch = (f"{speed[mode] / (peer['train'] / peer['epoch_seconds']):.2f}"
                                if peer is not None and mode == "stream" and dtype == "float32" else "")
                    print(f"{m:>8} {mode:>7} {dtype:>8} {raw / MB:>7.0f} {r['rss'] / MB:>11.0f} {target / MB:>9.0f} "
                          f"{r['rss'] / target:>6.2f} {speed[mode]:>10.0f} {vs_memory:>9} {vs_torch:>8}", flush=True)
            if not args.keep:
                path.unlink()
        print(f"(this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB peak; throughput provisional on a shared machine)")


if __name__ == "__main__":
    main()
