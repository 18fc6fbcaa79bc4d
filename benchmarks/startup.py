"""Start-up time of the commands that train nothing (issue 18): each should answer within 0.3 s.

    python benchmarks/startup.py               # 7 runs of each command, median wall time and ratio to 0.3 s
    python benchmarks/startup.py --runs 15 --json

Each command runs in a fresh `python -m dltrain` process (this checkout first on PYTHONPATH), as a user
types it: `dltrain --help`, `dltrain runs` on a folder of two small runs, `dltrain config show
configs/planar.yaml`, and `python -c "import dltrain"`. The table gives the median wall time over
the runs, its ratio to 0.3 s (<= 1 meets the target), the median CPU time (user + system; on a busy
machine the wall time grows, the CPU time much less) and the heavy libraries the command loaded (none
of NumPy, h5py, matplotlib, scipy or numba should load for these). Measure on idle cores.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 0.3
HEAVY = ("numpy", "h5py", "matplotlib", "scipy", "numba")
# Runs the command as `python -m dltrain` does, then reports which heavy libraries it imported.
PROBE = (
    "import runpy, sys\n"
    "sys.argv = ['dltrain', *sys.argv[1:]]\n"
    "try:\n    runpy.run_module('dltrain', run_name='__main__')\n"
    "except SystemExit:\n    pass\n"
    f"sys.stderr.write('HEAVY ' + ','.join(m for m in {HEAVY!r} if m in sys.modules) + '\\n')\n"
)


def make_runs(folder: Path) -> Path:
    """Two small run folders for `dltrain runs` to list (trained in this process, not the timed ones)."""
    sys.path.insert(0, str(REPO))
    import dltrain

    for lr in (1.2, 0.1):
        dltrain.train({"name": f"planar-lr{lr}", "data": {"dataset": "planar", "dev_fraction": 0.2},
                       "model": {"layers": ["auto", 4, 1], "hidden_activation": "tanh"},
                       "optimizer": {"name": "gd", "learning_rate": lr}, "training": {"epochs": 20}},
                      runs_dir=folder, progress=False)
    return folder


def commands(runs_dir: Path) -> dict[str, list[str]]:
    return {
        "dltrain --help": ["-m", "dltrain", "--help"],
        "dltrain runs": ["-m", "dltrain", "runs", str(runs_dir)],
        "dltrain config show": ["-m", "dltrain", "config", "show", str(REPO / "configs" / "planar.yaml")],
        "import dltrain": ["-c", "import dltrain"],
    }


def measure(args: list[str], runs: int, env: dict) -> dict:
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    if args[0] == "-m":
        probe = subprocess.run([sys.executable, "-c", PROBE, *args[2:]], env=env, capture_output=True, text=True)
        heavy = next(line[6:] for line in probe.stderr.splitlines() if line.startswith("HEAVY "))
    else:
        probe = subprocess.run([sys.executable, "-c", f"{args[1]}; import sys; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"],
                               env=env, capture_output=True, text=True)
        heavy = probe.stdout.strip()
    median = statistics.median(times)
    return {"median_s": median, "min_s": min(times), "median_cpu_s": statistics.median(cpu), "ratio_to_target": median / TARGET_S,
            "heavy_imports": heavy.split(",") if heavy else []}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7, help="runs of each command (default 7)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]), "COLUMNS": "100"}
    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = make_runs(Path(tmp) / "runs")
        results = {name: measure(cmd, args.runs, env) for name, cmd in commands(runs_dir).items()}
    if args.json:
        print(json.dumps({"target_s": TARGET_S, "runs": args.runs, "commands": results}, indent=2))
        return
    print(f"start-up, median of {args.runs} runs (target {TARGET_S} s; ratio <= 1 meets it)")
    print(f"  {'command':<22} {'median s':>9} {'min s':>7} {'cpu s':>7} {'x target':>9}  heavy imports")
    for name, r in results.items():
        print(f"  {name:<22} {r['median_s']:>9.3f} {r['min_s']:>7.3f} {r['median_cpu_s']:>7.3f} {r['ratio_to_target']:>9.2f}"
              f"  {', '.join(r['heavy_imports']) or 'none'}")


if __name__ == "__main__":
    main()
