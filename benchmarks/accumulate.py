"""Full-batch gradient descent on an `images` file: one product (the course's) against the step accumulated
over chunks of examples (engine.accumulate), forced with a memory budget. Peak RSS and seconds per epoch.

    PYTHONPATH=$PWD python benchmarks/accumulate.py [--images 20000] [--epochs 3] [--budget 1G] [--dtype float64]

Each row trains in a fresh process (GD, batch_size null, network 12288-32-1, no dev split) and reads its
peak resident set (ru_maxrss). Printed with the ratios accumulated / single product; the final costs
agree to rounding (the relative difference is printed too). Throughput is provisional on a shared machine.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import make_file  # noqa: E402  (benchmarks/data.py: random 64x64x3 uint8 images in the course layout)

MB = 2**20

CHILD = """
import csv, json, resource, sys
from dltrain import train
path, dtype, run_dir, epochs = sys.argv[1:5]
cfg = {"name": "bench", "seed": 0, "dtype": dtype, "data": {"dataset": "images", "path": path},
       "model": {"layers": ["auto", 32, 1], "hidden_activation": "relu", "output_activation": "sigmoid"},
       "optimizer": {"name": "gd", "learning_rate": 0.005}, "training": {"epochs": int(epochs), "batch_size": None}}
run = train(cfg, run_dir=run_dir, progress=False)
rows = list(csv.DictReader(open(f"{run_dir}/history.csv")))
print(json.dumps({"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "seconds": float(rows[-1]["seconds"]),
                  "cost": float(rows[-1]["cost"]), "accumulation": run.summary.get("gradient_accumulation")}))
"""


def measure(path: Path, dtype: str, run_dir: Path, epochs: int, budget: str | None) -> dict:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    env.pop("DLTRAIN_MEMORY_BUDGET", None)
    if budget:
        env["DLTRAIN_MEMORY_BUDGET"] = budget
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), dtype, str(run_dir), str(epochs)],
                         capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(f"the training process failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--budget", default="1G", help="DLTRAIN_MEMORY_BUDGET of the accumulated row")
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--dir", default=None, help="where the image file goes (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        path = tmp / "images.h5"
        make_file(path, args.images)
        raw = args.images * 64 * 64 * 3
        rows = {name: measure(path, args.dtype, tmp / name, args.epochs, budget)
                for name, budget in (("single product", None), (f"accumulated (budget {args.budget})", args.budget))}
    print(f"{args.images} images 64x64x3 ({raw / MB:.0f} MB uint8), {args.dtype}, full batch, {args.epochs} epochs\n")
    print("| step | chunks | peak RSS MB | s/epoch | final cost |")
    print("|---|--:|--:|--:|--:|")
    for name, r in rows.items():
        acc = r["accumulation"]
        chunks = f"{acc['chunks']} x {acc['examples_per_chunk']}" if acc else "1"
        print(f"| {name} | {chunks} | {r['rss'] / MB:.0f} | {r['seconds'] / args.epochs:.2f} | {r['cost']:.12f} |")
    single, acc = rows.values()
    print(f"\naccumulated / single: peak RSS {acc['rss'] / single['rss']:.2f}, time {acc['seconds'] / single['seconds']:.2f}, "
          f"cost relative difference {abs(acc['cost'] - single['cost']) / single['cost']:.1e}")


if __name__ == "__main__":
    main()
