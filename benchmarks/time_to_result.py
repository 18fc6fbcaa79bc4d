"""Time to result (issue 21): `dltrain train configs/planar.yaml` end to end against its training loop.

    python benchmarks/time_to_result.py            # 3 alternating rounds, a table
    python benchmarks/time_to_result.py --json     # also a section of `python benchmarks/engine.py`

- end to end: the wall time of `python -m dltrain train configs/planar.yaml --runs-dir TMP` in a fresh
  process (this checkout first on PYTHONPATH), as a user types it, from before the interpreter
  starts to after it exits: start-up, imports, data, the 10,000 epochs, metrics, model.h5, figures,
  report.html;
- loop: in another fresh process, the same config built the same way (commands.build), and only
  `train_epochs` over every epoch timed: what no fixed cost can beat;
- the fixed costs, from one more fresh process that runs the CLI in-process with time stamps: the
  interpreter and the CLI's imports, the train command's imports, everything between them and the
  first epoch (config, data, model), the loop, and after it the figures (PNG), report.html and the
  rest (metrics, model.h5, summary). The figures and the report are the time the training process
  waits for its figures process (dltrain/artist.py), which loaded matplotlib during the loop.

End to end and loop alternate over the rounds; the medians are reported. The target is end to end
<= loop + 0.4 s on idle cores. benchmarks/startup.py times, the same way (fresh `python -m dltrain`
processes, this checkout first on PYTHONPATH), the commands that train nothing.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "planar.yaml"


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _child(flag: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, flag], capture_output=True, text=True, env=_env(), cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"{flag} failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def end_to_end_seconds() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "dltrain", "train", str(CONFIG), "--runs-dir", tmp],
                              capture_output=True, text=True, env=_env(), cwd=REPO)
        elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"dltrain train failed: {proc.stderr.strip()[-500:]}")
    return elapsed


def loop_child() -> None:
    """Print {"loop_s"}: train_epochs alone over the config's epochs, built as `dltrain train` builds it."""
    import numpy as np

    from dltrain.commands.build import build_network, build_optimizer, build_schedule, init_rng, prepare_data
    from dltrain.config import load_config
    from dltrain.engine.initializers import INITIALIZERS
    from dltrain.engine.model import init_params
    from dltrain.engine.train import train_epochs

    cfg = load_config(CONFIG)
    data = prepare_data(cfg)
    net = build_network(cfg, data.n_x)
    params, state = init_params(net, INITIALIZERS[cfg.init.scheme], init_rng(cfg), cfg.init.scale, np.dtype(cfg.dtype))
    started = time.perf_counter()
    for _ in train_epochs(data.X["train"], data.Y["train"], params, state, net, build_optimizer(cfg), build_schedule(cfg),
                          cfg.training.epochs):
        pass
    print(json.dumps({"loop_s": time.perf_counter() - started}))


def phases_child(started: float) -> None:
    """Print the fixed costs of one `dltrain train` run, measured in-process with time stamps."""
    stamps = {"interpreter": started}
    import dltrain.cli

    stamps["cli imported"] = time.perf_counter()
    import dltrain.commands.train as command
    from dltrain.artist import Artist

    stamps["train command imported"] = time.perf_counter()
    waited = {"figures": 0.0, "report": 0.0}
    drawn_here = {"figures": 0.0, "report": 0.0}  # where the figures process is not used (or failed)
    ask = Artist.ask

    def timed_ask(self, job, **args):
        t = time.perf_counter()
        try:
            return ask(self, job, **args)
        finally:
            waited[job] += time.perf_counter() - t

    def timed(kind, fn):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                drawn_here[kind] += time.perf_counter() - t

        return wrapper

    Artist.ask = timed_ask
    command.draw_figures = timed("figures", command.draw_figures)
    command.write_report = timed("report", command.write_report)
    loop = command.train_epochs

    def train_epochs(*args, **kwargs):
        stamps["loop start"] = time.perf_counter()
        for result in loop(*args, **kwargs):
            stamps["loop end"] = time.perf_counter()  # the last epoch's end (fit stops consuming after it)
            yield result

    command.train_epochs = train_epochs
    with tempfile.TemporaryDirectory() as tmp:
        sys.argv = ["dltrain", "train", str(CONFIG), "--runs-dir", tmp]
        try:
            dltrain.cli.main()
        except SystemExit:
            pass
    end = time.perf_counter()
    after = end - stamps["loop end"]
    figures, report = waited["figures"] + drawn_here["figures"], waited["report"] + drawn_here["report"]
    print(json.dumps({
        "cli_imports_s": stamps["cli imported"] - started,
        "train_imports_s": stamps["train command imported"] - stamps["cli imported"],
        "until_first_epoch_s": stamps["loop start"] - stamps["train command imported"],
        "loop_s": stamps["loop end"] - stamps["loop start"],
        "figures_s": figures,
        "report_s": report,
        "figures_process": drawn_here["figures"] == 0.0,
        "rest_after_loop_s": after - figures - report,
    }))


def time_to_result(rounds: int = 3) -> dict:
    ends, loops = [], []
    for r in range(rounds):
        if r % 2:
            loops.append(_child("--loop-child")["loop_s"])
            ends.append(end_to_end_seconds())
        else:
            ends.append(end_to_end_seconds())
            loops.append(_child("--loop-child")["loop_s"])
    return {"config": "configs/planar.yaml", "rounds": rounds, "end_to_end_s": statistics.median(ends),
            "loop_s": statistics.median(loops), "phases": _child("--phases-child")}


def time_to_result_text(res: dict) -> str:
    p = res["phases"]
    over = res["end_to_end_s"] - res["loop_s"]
    return (f"dltrain train {res['config']} end to end {res['end_to_end_s']:.2f} s = loop {res['loop_s']:.2f} s + {over:.2f} s "
            f"(medians of {res['rounds']} rounds). One instrumented run: CLI imports {p['cli_imports_s']:.2f} s, "
            f"train command's imports {p['train_imports_s']:.2f} s, config + data + model {p['until_first_epoch_s']:.2f} s, "
            f"loop {p['loop_s']:.2f} s, figures {p['figures_s']:.2f} s, report.html {p['report_s']:.2f} s "
            f"({'waited for the figures process' if p.get('figures_process') else 'drawn in the training process'}), "
            f"metrics + model.h5 + summary {p['rest_after_loop_s']:.2f} s")


def main(argv=None) -> int:
    started = time.perf_counter()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.add_argument("--loop-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--phases-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.loop_child:
        loop_child()
    elif args.phases_child:
        phases_child(started)
    else:
        res = time_to_result(args.rounds)
        print(json.dumps(res, indent=2) if args.json else time_to_result_text(res))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
