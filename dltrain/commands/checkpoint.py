"""Checkpoints: checkpoint.h5 holds every array training mutates and the loop's position, so a resumed run ends bit-identical."""

import json
from pathlib import Path

import numpy as np

from dltrain.commands.build import (
    Training,
    resolved_config,
)
from dltrain.config import Config
from dltrain.errors import DltrainError
from dltrain.runs import (
    CURVE,
    HISTORY,
    RunWriter,
    read_model,
)

CHECKPOINT = "checkpoint.h5"


def checked_config(cfg: Config, n_x: int) -> dict:
    """What a checkpoint must agree on with the config that resumes it: everything but the data
    paths (the data themselves are checked by their fingerprint, wherever they now live) and tracking."""
    resolved = resolved_config(cfg, n_x)
    for key in ("dir", "path", "test_path", "stream"):  # stream: where rows are read from, same results
        resolved["data"].pop(key, None)
    resolved.pop("tracking", None)  # where copies go is no part of the training
    return resolved


def rng_state(rng) -> dict:
    """The generator's exact position as JSON-ready values (RandomState's key array becomes a list)."""
    if isinstance(rng, np.random.RandomState):
        s = rng.get_state(legacy=False)
        return {**s, "state": {"key": s["state"]["key"].tolist(), "pos": int(s["state"]["pos"])}}
    return rng.bit_generator.state


def set_rng_state(rng, state: dict) -> None:
    if isinstance(rng, np.random.RandomState):
        rng.set_state(state)
    else:
        rng.bit_generator.state = state


def save_checkpoint(run: RunWriter, t: Training, loop: dict) -> None:
    """checkpoint.h5: params, state, optimizer and early-stopping arrays; the loop's position (last
    epoch, seconds, RNG state, the lengths of history.csv and curve.csv) as JSON in the attribute
    `loop`. The history is on disk, not in the checkpoint: a checkpoint's size does not grow with it."""
    groups = {"params": t.params, "state": t.state, "optimizer": t.optimizer.state_dict()}
    if t.stopper is not None:
        groups["early_stopping"] = t.stopper.state_dict()
    # history.csv and curve.csv are on disk up to the checkpoint's epoch before the checkpoint says so.
    history_bytes = run.flush_history(sync=True)
    loop = {**loop, "rng": rng_state(t.rng), "history_bytes": history_bytes, "curve_bytes": run.flush_curve(),
            "checksums": {name: run.checksum(name) for name in (HISTORY, CURVE)}}
    run.save_model(CHECKPOINT, **groups, loop=json.dumps(loop))


def restore_checkpoint(t: Training, path: Path, cfg: Config) -> dict:
    """Load checkpoint.h5 into t in place (the dicts keep their keys and order); -> the loop's position,
    whose last epoch done must be one of the config's epochs (not the last: a finished run has no
    checkpoint). The checkpoint must come from this config (see checked_config)."""
    epochs = cfg.training.epochs
    saved = read_model(path, "checkpoint")
    try:
        for name, target in (("params", t.params), ("state", t.state)):
            for k, v in target.items():
                if saved[name][k].shape != v.shape:
                    raise DltrainError(f"checkpoint {path}: {name}/{k} is {saved[name][k].shape}, the config makes it {v.shape}")
                v[...] = saved[name][k]
        check_slots(path, saved, t)
        loop = json.loads(saved["loop"])
        if loop["config"] != checked_config(cfg, t.net.n_x):
            raise DltrainError(f"{path.parent / 'config.yaml'} was changed after the checkpoint was written; "
                               "resuming needs the config the run started with (train a new run for another one)")
        t.optimizer.load_state_dict(saved["optimizer"])
        if t.stopper is not None:
            t.stopper.load_state_dict(saved["early_stopping"])
        if not (isinstance(loop["epoch"], int) and isinstance(loop["seconds"], float) and isinstance(loop["baseline"], float)):
            raise ValueError("its loop position is not epoch, seconds and baseline")
        # history_bytes, or (a checkpoint written before history.csv was appended to) the history rows themselves.
        if "history_bytes" in loop:
            if not isinstance(loop["history_bytes"], int) or isinstance(loop["history_bytes"], bool) or loop["history_bytes"] < 0:
                raise ValueError("its history_bytes is not a byte count")
        elif not (isinstance(loop["history"], list) and all(isinstance(row, dict) for row in loop["history"])):
            raise ValueError("its history is not a list of rows")
        checksums = loop.get("checksums", {})
        if not (isinstance(checksums, dict) and all(isinstance(v, str) for v in checksums.values())):
            raise ValueError("its checksums are not a mapping of file names to checksums")
        if not isinstance(loop.get("curve_bytes", 0), int) or isinstance(loop.get("curve_bytes"), bool) or loop.get("curve_bytes", 0) < 0:
            raise ValueError("its curve_bytes is not a byte count")
        if not 0 <= loop["epoch"] < epochs - 1:
            raise ValueError(f"it ends with epoch {loop['epoch']}, but the run trains epochs 0 to {epochs - 1}")
        set_rng_state(t.rng, loop["rng"])
        return loop
    except RecursionError:
        raise DltrainError(f"checkpoint {path}: its loop attribute nests too deeply") from None
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as e:
        raise DltrainError(f"checkpoint {path} is incomplete or from another config ({type(e).__name__}: {e})") from None


def check_slots(path: Path, saved: dict, t: Training) -> None:
    """The checkpoint's optimizer and early-stopping arrays: scalars where counters are, and every
    'slot/name' array of the shape of the parameter (or state buffer) it belongs to."""
    shapes = {**{k: v.shape for k, v in t.params.items()}, **{k: v.shape for k, v in t.state.items()}}
    for group in ("optimizer", "early_stopping"):
        for key, a in saved.get(group, {}).items() if isinstance(saved.get(group), dict) else ():
            slot, _, name = key.rpartition("/")
            want = shapes.get(name) if slot else ()
            if want is None or a.shape != want:
                raise DltrainError(f"checkpoint {path}: {group}/{key} should have shape {want}, got {a.shape}"
                                   if want is not None else f"checkpoint {path}: {group}/{key} is not an array of this model")
