"""Rerun issue 20's attacks on dltrain as subprocesses and count what went wrong (all should be 0).

    python benchmarks/attacks.py              # every family, a few minutes on two cores
    python benchmarks/attacks.py --families disk,signals --json

Families: full disks (a real tmpfs of 12 KiB to 1 MiB when this runs as root and can mount one),
tampered run folders (each file of a completed and an interrupted run replaced, truncated, flipped,
made a device, a FIFO or a huge sparse file, for every command that reads it), hostile config files
and values, decompression bombs, memory (a model over the budget, a 20,000-layer net), SIGTERM and
SIGINT of long densely logged runs (the seconds from the signal to the exit are printed), and an
interrupted search rerun at once. Each case runs `python -m dltrain ...` from this checkout and is
judged on: a traceback (or death by a signal it was not sent), a hang (its timeout), its peak memory
(ru_maxrss of the process and its children) over 2 GiB, and run folders left `running` once it ended.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MEMORY_LIMIT_KB = 2 * 2**20
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
PLANAR = {"name": "planar", "seed": 1, "data": {"dataset": "planar"}, "model": {"layers": ["auto", 4, 1], "hidden_activation": "tanh"},
          "optimizer": {"name": "gd", "learning_rate": 1.2}, "training": {"epochs": 30, "log_every": 1, "checkpoint_every": 10}}
MOONS = {"name": "moons", "seed": 3, "data": {"dataset": "moons", "n_samples": 200}, "model": {"layers": ["auto", 5, 2, 1], "batch_norm": True},
         "optimizer": {"name": "adam", "learning_rate": 0.0007}, "regularization": {"keep_prob": 0.8},
         "training": {"epochs": 300, "batch_size": 64, "log_every": 1, "checkpoint_every": 100}}


class Case:
    def __init__(self, family: str, name: str, rc: int | None, seconds: float, maxrss_kb: int, output: str, running: int,
                 signalled: int | None = None):
        self.family, self.name, self.rc, self.seconds, self.maxrss_kb = family, name, rc, seconds, maxrss_kb
        self.hang = rc is None
        died = rc is not None and rc < 0 and -rc != signalled
        self.traceback = "Traceback (most recent call last)" in output or died
        self.memory = maxrss_kb > MEMORY_LIMIT_KB
        self.running = running
        self.output = output

    @property
    def bad(self) -> bool:
        return self.hang or self.traceback or self.memory or self.running > 0


def left_running(folder: Path) -> int:
    """Run folders under `folder` whose summary.json still says running (no process trains them any more)."""
    count = 0
    for summary in folder.rglob("summary.json"):
        # A mutated summary.json may be a FIFO or /dev/zero: read only small regular files.
        if summary.is_symlink() or not summary.is_file() or summary.stat().st_size > 2**20:
            continue
        try:
            count += json.loads(summary.read_text()).get("status") == "running"
        except (OSError, ValueError, AttributeError, RecursionError):
            pass
    return count


def run(family: str, name: str, args: list[str], cwd: Path, timeout: float = 90, env: dict | None = None,
        send: tuple[int, float] | None = None, watch: Path | None = None, stdin: str | None = None) -> Case:
    """dltrain `args` in cwd; send = (signal, seconds after start) -> the case's seconds are from the signal to the exit."""
    proc = subprocess.Popen([sys.executable, "-m", "dltrain", *args], cwd=cwd, env={**ENV, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    if stdin is not None:
        proc.stdin.write(stdin.encode())
        proc.stdin.close()
    start = time.monotonic()
    signalled = None
    status = rusage = None
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        now = time.monotonic()
        if send is not None and signalled is None and now - start >= send[1]:
            proc.send_signal(send[0])
            signalled, start = send[0], now
        if (send is None or signalled is not None) and now - start > timeout:
            os.killpg(proc.pid, signal.SIGKILL)
            pid, status, rusage = os.wait4(proc.pid, 0)
            status = None
            break
        time.sleep(0.02)
    seconds = time.monotonic() - start
    proc.returncode = 0  # reaped by wait4: keep Popen from waiting again
    reader.join(5)
    rc = None if status is None else os.waitstatus_to_exitcode(status)
    output = b"".join(chunks).decode(errors="replace")
    return Case(family, name, rc, seconds, rusage.ru_maxrss, output, left_running(watch or cwd), signalled)


def write_yaml(path: Path, tree: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


# ---- families ---------------------------------------------------------------------------------


def disk(work: Path) -> list[Case]:
    cases = []
    if os.geteuid() != 0:
        print("disk: not root, no tmpfs: skipped (tests/test_disk_full.py injects ENOSPC instead)", file=sys.stderr)
        return cases
    for tree in (PLANAR, MOONS):
        for size in ("12k", "32k", "64k", "256k", "1m"):
            where = work / f"fs-{tree['name']}-{size}"
            where.mkdir()
            if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True).returncode:
                print("disk: cannot mount a tmpfs here: skipped", file=sys.stderr)
                return cases
            try:
                config = write_yaml(work / f"{tree['name']}.yaml", {**tree, "training": {**tree["training"], "epochs": 300, "checkpoint_every": 50}})
                case = run("disk", f"{tree['name']} on {size}", ["train", str(config), "--runs-dir", str(where / "runs"), "-q"], work,
                           watch=where)
                leftovers = [p for p in where.rglob("*.tmp-*")]
                if case.rc == 1 and leftovers:
                    case.output += f"\ntemporary files left: {leftovers}"
                    case.traceback = True
                cases.append(case)
            finally:
                subprocess.run(["umount", "-l", str(where)], check=False)
    return cases


def base_runs(work: Path) -> tuple[Path, Path]:
    """A completed and an interrupted planar run, trained in this process."""
    sys.path.insert(0, str(REPO))
    import dltrain
    from dltrain.errors import Interrupted

    done = dltrain.train(PLANAR, run_dir=work / "base" / "done", progress=False).path
    event = threading.Event()
    try:
        dltrain.train({**PLANAR, "training": {**PLANAR["training"], "epochs": 40}}, run_dir=work / "base" / "cut",
                      progress=lambda r, row: r.epoch == 14 and event.set(), interrupt=event)
    except Interrupted:
        pass
    return done, work / "base" / "cut"


MUTATIONS = {
    "garbage": lambda p: p.write_bytes(os.urandom(2000)),
    "empty": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 2)]),
    "flipped": lambda p: p.write_bytes(flip(p.read_bytes())),
    "deep-json": lambda p: p.write_text("[" * 100_000 + "]" * 100_000),
    "json-list": lambda p: p.write_text("[1, 2, 3]\n"),
    "dev-zero": lambda p: (p.unlink(), p.symlink_to("/dev/zero")),
    "fifo": lambda p: (p.unlink(), os.mkfifo(p)),
    "huge-sparse": lambda p: os.truncate(p, 400 * 2**20),
    "long-field": lambda p: p.write_text("epoch,cost\n0," + "9" * 200_000 + "\n"),
}


def flip(data: bytes) -> bytes:
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1:] if data else data


def tampered(work: Path) -> list[Case]:
    done, cut = base_runs(work)
    import numpy as np

    np.savez(work / "inputs.npz", x=np.random.default_rng(0).normal(size=(5, 2)))
    cases = []
    plans = [(done, f, ["runs", "compare", "predict", "evaluate"]) for f in
             ("config.yaml", "summary.json", "metrics.json", "history.csv", "curve.csv", "model.h5")]
    plans += [(cut, f, ["resume"]) for f in ("config.yaml", "summary.json", "history.csv", "curve.csv", "checkpoint.h5")]
    plans += [(done, f, ["reproduce"]) for f in ("config.yaml", "summary.json", "model.h5")]
    for source, file_name, commands in plans:
        for mutation, mutate in MUTATIONS.items():
            if mutation in ("deep-json", "json-list") and not file_name.endswith((".json", ".yaml")):
                continue
            if mutation == "long-field" and not file_name.endswith(".csv"):
                continue
            for command in commands:
                folder = work / "t" / f"{source.name}-{file_name}-{mutation}-{command}"
                run_dir = folder / source.name
                shutil.copytree(source, run_dir, symlinks=True)
                mutate(run_dir / file_name)
                args = {"runs": ["runs", str(folder)], "compare": ["compare", str(run_dir), "--out", str(folder / "c.png")],
                        "predict": ["predict", str(run_dir), str(work / "inputs.npz"), "--key", "x"],
                        "evaluate": ["evaluate", str(run_dir)], "resume": ["train", "--resume", str(run_dir), "-q"],
                        "reproduce": ["reproduce", str(run_dir), "--runs-dir", str(folder / "again"), "-q"]}[command]
                cases.append(run("tampered", f"{file_name} {mutation}: {command}", args, work, timeout=60, watch=folder))
                shutil.rmtree(folder, ignore_errors=True)
    return cases


def hostile(work: Path) -> list[Case]:
    cases = []
    fifo = work / "fifo.yaml"
    os.mkfifo(fifo)
    (work / "dir.yaml").mkdir()
    (work / "link.yaml").symlink_to("/dev/zero")
    (work / "big.yaml").write_text("# padding\n" * 200_000)
    (work / "bomb.yaml").write_text("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi")))
    (work / "deep.yaml").write_text("model: " + "[" * 5000 + "]" * 5000)
    (work / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    (work / "tag.yaml").write_text("name: !!python/object/apply:os.system ['touch pwned']\n")
    (work / "nul.yaml").write_text('data: {dataset: images, dir: "a\\0b"}\nmodel: {layers: [auto, 4, 1]}\n')
    write_yaml(work / "planar.yaml", PLANAR)
    for config in ("/dev/zero", "/dev/urandom", str(fifo), "dir.yaml", "link.yaml", "big.yaml", "bomb.yaml", "deep.yaml",
                   "latin1.yaml", "tag.yaml", "nul.yaml", "missing.yaml"):
        cases.append(run("hostile", f"train {config}", ["train", config, "--runs-dir", "runs", "-q"], work, timeout=30))
    for value in ("data.split_seed=-1", "data.split_seed=1e20", "seed=-5", f"training.epochs={'9' * 5000}", "model.layers=[auto, 0, 1]",
                  "model.layers=" + "[" * 20000 + "]" * 20000, "optimizer.learning_rate=nan", "data={dataset: images, dir: \"a\\0b\"}"):
        cases.append(run("hostile", f"--set {value[:40]}", ["train", "planar.yaml", "--set", value, "--runs-dir", "runs", "-q"], work, timeout=30))
    (work / "wide.csv").write_text("a,b,label\n" + "1," + "2" * 200_000 + ",0\n")
    cases.append(run("hostile", "csv field over the limit", ["train", "planar.yaml", "--set", "data={dataset: file, path: wide.csv, label_column: label}",
                                                             "--runs-dir", "runs", "-q"], work, timeout=30))
    return cases


def bombs(work: Path) -> list[Case]:
    import h5py
    import numpy as np
    import scipy.io

    done, _ = base_runs(work) if not (work / "base" / "done").exists() else (work / "base" / "done", None)
    rows = 1_300_000_000  # (rows, 2) float64: 19.4 GiB
    with h5py.File(work / "big.h5", "w") as f:
        for name, cols in (("x", 2), ("y", 1)):
            f.create_dataset(name, shape=(rows, cols), dtype="f8", chunks=(2**20, cols), compression="gzip")
    with zipfile.ZipFile(work / "big.npz", "w", zipfile.ZIP_DEFLATED) as z:
        for name, cols in (("x", 2), ("y", 1)):
            with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_2_0(f, {"descr": "<f8", "fortran_order": False, "shape": (rows, cols)})
                f.write(bytes(2**20))
    scipy.io.savemat(work / "big.mat", {"x": np.zeros((4_000_000, 2)), "y": np.zeros((4_000_000, 1))}, do_compression=True)
    write_yaml(work / "planar.yaml", PLANAR)
    cases = []
    for name in ("big.h5", "big.npz", "big.mat"):
        env = {"DLTRAIN_MEMORY_BUDGET": "32M"} if name == "big.mat" else {}  # the .mat expands to 96 MB: a small budget stands for a big file
        data = f"{{dataset: file, path: {work / name}, x_train: x, y_train: y, x_test: null, y_test: null}}"
        cases.append(run("bombs", f"predict --key {name}", ["predict", str(done), str(work / name), "--key", "x"], work, env=env))
        cases.append(run("bombs", f"evaluate --data {name}", ["evaluate", str(done), "--data", data], work, env=env))
        cases.append(run("bombs", f"train on {name}", ["train", "planar.yaml", "--set", f"data={data}", "--runs-dir", "runs", "-q"], work, env=env))
    return cases


def memory(work: Path) -> list[Case]:
    write_yaml(work / "planar.yaml", PLANAR)
    cases = [run("memory", "[auto, 20000 x5, 1]", ["train", "planar.yaml", "--set", "model.layers=[auto,20000,20000,20000,20000,20000,1]",
                                                   "--runs-dir", "runs", "-q"], work)]
    deep = ["auto"] + [2] * 20_000 + [1]
    write_yaml(work / "deep.yaml", {**PLANAR, "name": "deep", "model": {"layers": deep}, "training": {"epochs": 1}})
    case = run("memory", "20,000 layers of 2 units (plots bounded)", ["train", "deep.yaml", "--runs-dir", "runs", "-q"], work, timeout=300)
    cases.append(case)
    return cases


def signals(work: Path) -> list[Case]:
    write_yaml(work / "long.yaml", {**PLANAR, "name": "long", "training": {"epochs": 700_000, "log_every": 1}})
    write_yaml(work / "moons.yaml", {**MOONS, "training": {**MOONS["training"], "epochs": 200_000}})
    cases = []
    for name, config, sig, after in (("SIGTERM planar log_every 1 after 20 s", "long.yaml", signal.SIGTERM, 20),
                                     ("SIGTERM planar log_every 1 after 5 s", "long.yaml", signal.SIGTERM, 5),
                                     ("SIGINT planar log_every 1 after 10 s", "long.yaml", signal.SIGINT, 10),
                                     ("SIGTERM moons bn+adam after 10 s", "moons.yaml", signal.SIGTERM, 10)):
        case = run("signals", name, ["train", config, "--runs-dir", f"runs-{after}-{sig}", "-q"], work, send=(sig, after), timeout=10)
        cases.append(case)
    return cases


def searches(work: Path) -> list[Case]:
    tree = {**PLANAR, "data": {"dataset": "planar", "dev_fraction": 0.25}, "optimizer": {"name": "momentum", "learning_rate": 1.2},
            "training": {"epochs": 5000, "log_every": 500, "checkpoint_every": 100}}
    write_yaml(work / "base.yaml", tree)
    write_yaml(work / "space.yaml", {"optimizer.learning_rate": "log(0.001, 10)", "optimizer.beta": "one_minus_log(0.9, 0.999)"})
    args = ["search", "base.yaml", "--space", "space.yaml", "--out", "s", "--trials", "6", "--workers", "2", "-q"]
    cases = [run("search", "Ctrl-C a local search", args, work, send=(signal.SIGINT, 6), timeout=30)]
    rerun = run("search", "rerun at once", args, work, timeout=300)
    board = (work / "s" / "leaderboard.csv").read_text() if (work / "s" / "leaderboard.csv").exists() else ""
    if "already exists" in board or "failed" in board:
        rerun.traceback = True
        rerun.output += "\na trial failed after the rerun:\n" + board
    cases.append(rerun)
    return cases


FAMILIES = {"disk": disk, "tampered": tampered, "hostile": hostile, "bombs": bombs, "memory": memory, "signals": signals,
            "search": searches}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES), help=f"comma-separated, of {', '.join(FAMILIES)}")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--list", action="store_true", help="also list every case: exit code, seconds, peak memory, last line")
    opts = parser.parse_args()
    cases: list[Case] = []
    with tempfile.TemporaryDirectory(prefix="dltrain-attacks-") as tmp:
        for family in opts.families.split(","):
            work = Path(tmp) / family
            work.mkdir()
            started = time.monotonic()
            got = FAMILIES[family](work)
            cases += got
            print(f"{family}: {len(got)} cases in {time.monotonic() - started:.0f} s", file=sys.stderr)
    signal_cases = [c for c in cases if c.family == "signals"]
    figures = {
        "cases": len(cases),
        "tracebacks": sum(c.traceback for c in cases),
        "hangs": sum(c.hang for c in cases),
        "memory_over_2GiB": sum(c.memory for c in cases),
        "runs_left_running": sum(c.running for c in cases),
        "peak_memory_MiB": round(max((c.maxrss_kb for c in cases), default=0) / 1024),
        "signal_exit_seconds": {c.name: round(c.seconds, 2) for c in signal_cases},
    }
    for c in cases:
        if opts.list:
            last = (c.output.strip().splitlines() or [""])[-1][:150]
            print(f"{c.family:>9} | {c.name[:50]:<50} | rc {c.rc} | {c.seconds:6.2f} s | {c.maxrss_kb // 1024:5d} MiB | {last}", file=sys.stderr)
        if c.bad:
            tail = "\n    ".join(c.output.strip().splitlines()[-6:])
            print(f"BAD {c.family}: {c.name}: rc={c.rc} hang={c.hang} traceback={c.traceback} maxrss={c.maxrss_kb // 1024} MiB "
                  f"running={c.running}\n    {tail}", file=sys.stderr)
    if opts.json:
        print(json.dumps(figures, indent=2))
    else:
        for k, v in figures.items():
            print(f"{k:>20}: {v}")


if __name__ == "__main__":
    main()
