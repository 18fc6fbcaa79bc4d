"""A finished run folder as a TensorBoard event file in that folder: scalars per logged epoch and HParams.

`tensorboard --logdir runs` then shows every run by its folder name, and the HParams tab puts the
runs' configs (flattened to dotted keys) beside their final metrics in one table. Written with
TensorBoard's own record format and protos (no TensorFlow), as one file replaced atomically, so
writing it again after `dltrain evaluate` or a resume leaves one up-to-date file.

Needs the tensorboard package (the `tensorboard` extra); imported only when asked to write.
"""

import io
import json
import time
from datetime import datetime
from pathlib import Path

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import summary_v2
from tensorboard.summary.writer.record_writer import RecordWriter

from dltrain.runs import atomic_write, load_run

EVENT_FILE = "events.out.tfevents.dltrain"  # TensorBoard reads files whose name holds "tfevents"
NOT_SCALARS = ("epoch", "iteration", "seconds")


def hparam_values(tree, prefix: str = "") -> dict:
    """The config as HParams: dotted keys -> bool, number or text (lists and null as JSON text)."""
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(hparam_values(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: tree if isinstance(tree, (bool, int, float, str)) else json.dumps(tree)}


def scalar(tag: str, value: float) -> summary_pb2.Summary:
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(value))])


def write_events(run_dir: Path) -> Path:
    """run_dir/events.out.tfevents.dltrain from config.yaml, history.csv, metrics.json and summary.json; -> its path.

    Scalars: every history.csv column at step = epoch (wall time = start + seconds), then
    final/<split>/cost and final/<split>/accuracy at the last epoch; the HParams session carries the config.
    """
    run_dir = Path(run_dir)
    record = load_run(run_dir)
    started = record.summary.get("started")
    t0 = datetime.fromisoformat(started).timestamp() if started else time.time()
    buf = io.BytesIO()
    writer = RecordWriter(buf)

    def event(step: int, wall: float, summary: summary_pb2.Summary | None = None, **fields) -> None:
        writer.write(event_pb2.Event(wall_time=wall, step=step, summary=summary, **fields).SerializeToString())

    event(0, t0, file_version="brain.Event:2")
    hparams = {k: v for k, v in hparam_values(record.config).items() if v is not None}
    event(0, t0, summary_v2.hparams_pb(hparams, trial_id=run_dir.name, start_time_secs=t0))
    for row in record.history:
        wall = t0 + (row.get("seconds") or 0.0)
        values = [summary_pb2.Summary.Value(tag=k, simple_value=float(v)) for k, v in row.items() if k not in NOT_SCALARS and v is not None]
        event(int(row["epoch"]), wall, summary_pb2.Summary(value=values))
    last = int(record.summary.get("epochs_run") or 1) - 1
    end = t0 + float(record.summary.get("duration_seconds") or 0.0)
    finals = [summary_pb2.Summary.Value(tag=f"final/{split}/{name}", simple_value=float(record.metrics[split][name]))
              for split in ("train", "dev", "test") for name in ("cost", "accuracy")
              if isinstance(record.metrics.get(split, {}).get(name), (int, float))]
    if finals:
        event(last, end, summary_pb2.Summary(value=finals))
    path = run_dir / EVENT_FILE
    atomic_write(path, buf.getvalue())
    return path
