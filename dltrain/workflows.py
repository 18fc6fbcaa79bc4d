"""The commands as plain functions: config -> data -> engine -> run folder. Nothing here prints."""

import contextlib
import copy
import csv
import io
import json
import math
import os
import platform
import threading
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import numpy as np
import yaml

from dltrain import __version__, plots
from dltrain import search as search_lib
from dltrain.config import Config, apply_overrides, get_path, load_config, read_yaml, safe_tree, set_path, validate_config, validate_data
from dltrain.data import fingerprint, load_dataset
from dltrain.data.core import CATALOG, LOADERS
from dltrain.data.files import READERS, features, read_single_array
from dltrain.data.images import IMAGE_SUFFIXES, read_image
from dltrain.data.limits import check_array_size
from dltrain.data.prepare import (
    apply_normalization,
    check_labels,
    normalization_stats,
    split_dataset,
    targets,
    undo_normalization,
)
from dltrain.engine.activations import ACTIVATIONS, leaky_relu
from dltrain.engine.gradcheck import GradcheckReport, gradient_check, verdict
from dltrain.engine.initializers import INITIALIZERS
from dltrain.engine.losses import LOSSES
from dltrain.engine.model import (
    ForwardCache,
    LayerSpec,
    Network,
    backward,
    compute_cost,
    evaluate,
    evaluation_forward,
    forward,
    init_params,
    labels_from_output,
)
from dltrain.engine.optimizers import OPTIMIZERS
from dltrain.engine.schedules import SCHEDULES
from dltrain.engine.train import EarlyStopping, EpochResult, check_finite, train_epochs
from dltrain.errors import Diverged, DltrainError, Interrupted
from dltrain.evaluation import classification_report, confusion_matrix, diagnose
from dltrain.runs import (
    RunWriter,
    atomic_write,
    completed_metrics,
    discard_unfinished,
    is_run_dir,
    list_run_dirs,
    load_run,
    new_run_dir,
    read_json_file,
    read_model,
    remove_evaluation_plots,
    training_lock,
    write_evaluation_file,
)


class Prepared(NamedTuple):
    """Normalized arrays in the run's dtype, X (n_x, m) and Y (n_L, m), per split name."""

    X: dict[str, np.ndarray]
    Y: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    normalization: dict[str, np.ndarray]
    classes: list[str]
    image_shape: tuple | None
    n_x: int
    fingerprint: str  # of the loaded dataset, before any split or normalization


def data_source(data) -> str:
    """How messages name a config's data: its file, else its dataset."""
    return getattr(data, "path", None) or f"dataset {data.dataset}"


def prepare_data(cfg: Config, trained: "Trained | None" = None) -> Prepared:
    """Load, check against the model, carve the dev/test splits, normalize with train statistics.

    `trained`: the finished run whose model will be evaluated on this data. Its saved
    normalization statistics are applied instead of computing them from the train split (so
    evaluation sees exactly the inputs training saw), and since its shape can no longer change, a
    mismatch asks for other data rather than another config.
    """
    ds = load_dataset(cfg.data)
    n_x = ds.X_train.shape[0]
    first = cfg.model.layers[0]
    source = data_source(cfg.data)
    like_run = "" if trained is None else f", such as the data the run was trained on ({data_source(trained.cfg.data)})"
    if first != "auto" and first != n_x:
        if trained is not None:
            raise DltrainError(f"X has {n_x} features (X.shape={ds.X_train.shape}) but the trained model's input size is {first}; "
                               f"evaluate it on data with {first} features{like_run}")
        raise DltrainError(
            f"X has {n_x} features but layer 1 expects {first} (X.shape={ds.X_train.shape}); "
            f"set model.layers[0] to {n_x} or 'auto'"
        )
    n_out = cfg.model.layers[-1]
    n_classes = len(ds.classes)
    if cfg.model.output_activation == "sigmoid" and n_classes > 2:
        fix = (f"use output_activation: softmax with layers[-1] = {n_classes}" if trained is None
               else f"evaluate it on data with 2 classes{like_run}")
        raise DltrainError(
            f"the data ({source}) has {n_classes} classes (labels 0..{n_classes - 1}) but the output layer is 1 sigmoid unit; {fix}"
        )
    if cfg.model.output_activation == "softmax" and n_out != n_classes:
        fix = "" if trained is None else f"; evaluate it on data with {n_out} classes{like_run}"
        raise DltrainError(f"the data ({source}) has {n_classes} classes (labels 0..{n_classes - 1}) "
                           f"but the softmax output layer has {n_out} units{fix}")
    splits = split_dataset(ds, cfg.data, np.random.default_rng(cfg.data.split_seed))
    split_X, split_y = {k: v.X for k, v in splits.items()}, {k: v.y for k, v in splits.items()}
    stats = normalization_stats(split_X["train"], cfg.data.normalize) if trained is None else trained.normalization
    dtype = np.dtype(cfg.dtype)
    # Column-major: each example (column) is contiguous, so the training loop gathers shuffled
    # mini-batches as contiguous rows of X.T without first copying the whole training set.
    X = {k: np.asfortranarray(apply_normalization(v, stats), dtype=dtype) for k, v in split_X.items()}
    for name, y in split_y.items():
        check_labels(y, n_out, name)
    Y = {k: targets(v, n_out).astype(dtype) for k, v in split_y.items()}
    return Prepared(X, Y, split_y, stats, ds.classes, ds.image_shape, n_x, fingerprint(ds))


def build_network(cfg: Config, n_x: int) -> Network:
    """The engine's Network from a validated config; the input size comes from the data."""
    m = cfg.model
    hidden = leaky_relu(m.leaky_relu_slope) if m.hidden_activation == "leaky_relu" else ACTIVATIONS[m.hidden_activation]
    sizes = m.layers[1:]
    reg = cfg.regularization
    keep = reg.keep_prob if isinstance(reg.keep_prob, list) else [reg.keep_prob] * (len(sizes) - 1)
    specs = [LayerSpec(n, hidden, m.batch_norm, p) for n, p in zip(sizes[:-1], keep)]
    specs.append(LayerSpec(sizes[-1], ACTIVATIONS[m.output_activation]))
    return Network(
        n_x, tuple(specs), LOSSES[m.output_activation], reg.l2, reg.l1, m.batch_norm_epsilon, m.batch_norm_momentum
    )


def init_rng(cfg: Config):
    """Course mode: RandomState(seed), the notebooks' np.random.seed stream; modern: default_rng(seed)."""
    return np.random.RandomState(cfg.seed) if cfg.rng == "course" else np.random.default_rng(cfg.seed)


def build_optimizer(cfg: Config):
    return OPTIMIZERS[cfg.optimizer.name](**cfg.optimizer.model_dump(exclude={"name", "learning_rate"}))


def build_schedule(cfg: Config) -> Callable[[int], float]:
    """Epoch -> the rate it trains with. As in the course, the decay is applied at the end of each
    epoch: epoch 0 trains at lr0 and epoch e >= 1 at schedule(lr0, e - 1)."""
    fn, kwargs, lr0 = SCHEDULES[cfg.schedule.name], cfg.schedule.model_dump(exclude={"name"}), cfg.optimizer.learning_rate
    return lambda epoch: lr0 if epoch == 0 else fn(lr0, epoch - 1, **kwargs)


def build_permutation(cfg: Config, rng, m: int) -> Callable[[int], np.ndarray]:
    """Epoch i's shuffle: the course re-seeds RandomState(shuffle_seed + 1 + i); modern uses the run's generator."""
    if cfg.rng == "course":
        seed = cfg.training.shuffle_seed
        return lambda epoch: np.random.RandomState(seed + 1 + epoch).permutation(m)
    return lambda epoch: rng.permutation(m)


def build_dropout_rng(cfg: Config, rng) -> Callable[[], object]:
    """Generator for one forward pass's dropout masks: the course re-creates
    RandomState(dropout_seed) every pass; modern mode draws fresh masks from the run's generator."""
    if cfg.rng == "course":
        seed = cfg.regularization.dropout_seed
        return lambda: np.random.RandomState(seed)
    return lambda: rng


def hflip_columns(image_shape: tuple[int, ...]) -> np.ndarray:
    """Row order that mirrors every flattened (h, w, c) image left-right: X[order] flips each column of X."""
    h, w, c = image_shape
    return np.arange(h * w * c).reshape(h, w, c)[:, ::-1, :].reshape(-1)


def build_augment(cfg: Config, data: "Prepared", rng) -> Callable[[int, np.ndarray], np.ndarray] | None:
    """Each epoch, a random half of the training images (drawn from the run's generator) mirrored horizontally."""
    if not cfg.data.augment.hflip:
        return None
    if data.image_shape is None or len(data.image_shape) != 3:
        raise DltrainError(f"data.augment.hflip needs an image dataset; {cfg.data.dataset} has no image shape")
    order = hflip_columns(data.image_shape)

    def augment(epoch: int, X: np.ndarray) -> np.ndarray:
        m = X.shape[1]
        chosen = rng.permutation(m)[: m // 2]
        X_epoch = X.copy(order="K")  # keeps the column-major layout, so train_epochs need not copy again
        X_epoch[:, chosen] = X[order][:, chosen]
        return X_epoch

    return augment


class TrainOutcome(NamedTuple):
    run_dir: Path
    metrics: dict
    summary: dict


def history_columns(has_dev: bool, norm_layers: int = 0) -> list[str]:
    """history.csv's columns; with norm_layers = L, norm_W1..norm_WL and norm_dW1..norm_dWL at the end."""
    cols = ["epoch", "iteration", "learning_rate", "cost", "data_cost", "penalty"]
    if has_dev:
        cols += ["dev_cost", "dev_accuracy"]
    cols.append("seconds")
    cols += [f"norm_W{l}" for l in range(1, norm_layers + 1)]
    return cols + [f"norm_dW{l}" for l in range(1, norm_layers + 1)]


def norm_row(params: dict[str, np.ndarray], grad_norms: dict[str, float], L: int) -> dict[str, float]:
    """norm_W{l} = ||W[l]||_F after the epoch's updates, norm_dW{l} = ||dW[l]||_F of its last mini-batch."""
    row = {f"norm_W{l}": float(np.linalg.norm(params[f"W{l}"])) for l in range(1, L + 1)}
    row.update({f"norm_dW{l}": grad_norms[f"W{l}"] for l in range(1, L + 1)})
    return row


def diagnosis_of(metrics: dict[str, dict], human_error: float) -> dict:
    """Bias/variance diagnosis from split metrics; without a dev split, test plays the dev set's part."""
    dev_split = next((s for s in ("dev", "test") if s in metrics), None)
    dev_error = 1.0 - metrics[dev_split]["accuracy"] if dev_split else None
    return diagnose(1.0 - metrics["train"]["accuracy"], dev_error, human_error, dev_split or "dev")


CHECKPOINT = "checkpoint.h5"


def checked_config(cfg: Config, n_x: int) -> dict:
    """What a checkpoint must agree on with the config that resumes it: everything but the data
    paths (the data themselves are checked by their fingerprint, wherever they now live)."""
    resolved = resolved_config(cfg, n_x)
    for key in ("dir", "path", "test_path"):
        resolved["data"].pop(key, None)
    return resolved


def resolved_config(cfg: Config, n_x: int) -> dict:
    """The config as config.yaml and model.h5 record it: every default filled in, `auto` input size
    resolved, data paths absolute (resume, reproduce and evaluate may run from another folder)."""
    resolved = cfg.model_dump(mode="json")
    resolved["model"]["layers"][0] = n_x
    for key in ("dir", "path", "test_path"):
        if isinstance(resolved["data"].get(key), str):
            resolved["data"][key] = os.path.abspath(resolved["data"][key])
    return resolved


class Training(NamedTuple):
    """What a run builds from its config and then mutates epoch by epoch (all of it checkpointed)."""

    net: Network
    rng: object  # Generator (modern) or RandomState (course); its state is part of a checkpoint
    params: dict[str, np.ndarray]
    state: dict[str, np.ndarray]
    optimizer: object
    stopper: EarlyStopping | None
    augment: Callable[[int, np.ndarray], np.ndarray] | None


def build_training(cfg: Config, data: Prepared) -> Training:
    """Network, seeded initial weights, optimizer, early stopping and augmentation, before any folder exists."""
    net = build_network(cfg, data.n_x)
    # Weights (n_l, n_{l-1}) and activations (n_l, m) are checked before anything is allocated.
    m = max(v.shape[1] for v in data.X.values())
    n_prev, itemsize = net.n_x, np.dtype(cfg.dtype).itemsize
    for l, spec in enumerate(net.layers, start=1):
        check_array_size(f"model.layers: W{l}", (spec.units, n_prev), itemsize)
        check_array_size(f"model.layers: layer {l}'s activations for {m} examples", (spec.units, m), itemsize)
        n_prev = spec.units
    rng = init_rng(cfg)
    params, state = init_params(net, INITIALIZERS[cfg.init.scheme], rng, cfg.init.scale, np.dtype(cfg.dtype))
    es = cfg.regularization.early_stopping
    if es is not None and "dev" not in data.X:
        raise DltrainError(
            "regularization.early_stopping monitors the dev set, but there is none: set data.dev_fraction (e.g. 0.1) or data.dev_size", 2
        )
    stopper = EarlyStopping(es.patience, es.min_delta, "min" if es.monitor == "dev_cost" else "max", es.restore_best) if es else None
    return Training(net, rng, params, state, build_optimizer(cfg), stopper, build_augment(cfg, data, rng))


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
    epoch, seconds, RNG state, history rows) as JSON in the attribute `loop`."""
    groups = {"params": t.params, "state": t.state, "optimizer": t.optimizer.state_dict()}
    if t.stopper is not None:
        groups["early_stopping"] = t.stopper.state_dict()
    run.save_model(CHECKPOINT, **groups, loop=json.dumps({**loop, "rng": rng_state(t.rng), "history": run.rows}))


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
        loop = json.loads(saved["loop"])
        if loop["config"] != checked_config(cfg, t.net.n_x):
            raise DltrainError(f"{path.parent / 'config.yaml'} was changed after the checkpoint was written; "
                               "resuming needs the config the run started with (train a new run for another one)")
        t.optimizer.load_state_dict(saved["optimizer"])
        if t.stopper is not None:
            t.stopper.load_state_dict(saved["early_stopping"])
        if not (isinstance(loop["epoch"], int) and isinstance(loop["seconds"], float) and isinstance(loop["baseline"], float)
                and isinstance(loop["history"], list) and all(isinstance(row, dict) for row in loop["history"])):
            raise ValueError("its loop position is not epoch, seconds, baseline and history rows")
        if not 0 <= loop["epoch"] < epochs - 1:
            raise ValueError(f"it ends with epoch {loop['epoch']}, but the run trains epochs 0 to {epochs - 1}")
        set_rng_state(t.rng, loop["rng"])
        return loop
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as e:
        raise DltrainError(f"checkpoint {path} is incomplete or from another config ({type(e).__name__}: {e})") from None


def initial_cost(data: Prepared, t: Training) -> float:
    """The untrained model's data cost on the training set (evaluation mode, so no random draw),
    at least ln 2 (chance level for two classes): the scale divergence is measured against.

    Not epoch 0's cost: with mini-batches that averages batches taken after updates, which a
    learning rate far too large has already blown up."""
    return max(evaluate(data.X["train"], data.Y["train"], t.params, t.net, t.state)[0], math.log(2))


def check_growth(r: EpochResult, baseline: float, factor: float | None) -> None:
    """Diverged once an epoch's data cost exceeds factor times the untrained model's. A stable
    cross-entropy stays finite while the weights run away, so this catches the divergence that the
    engine's non-finite check would not."""
    if factor is not None and r.data_cost > factor * baseline:
        raise Diverged(
            f"training diverged at epoch {r.epoch}: the cost grew to {r.data_cost:.6g}, more than training.divergence_factor "
            f"({factor:g}) times the untrained model's {baseline:.6g}; try a lower optimizer.learning_rate "
            "(or a decay schedule, or batch normalization)"
        )


def split_metrics(cfg: Config, data: Prepared, t: Training) -> dict:
    """Cost and accuracy of every split in evaluation mode and the bias/variance diagnosis, as metrics.json holds them."""
    metrics = {}
    for split in data.X:
        cost, accuracy = evaluate(data.X[split], data.Y[split], t.params, t.net, t.state)
        metrics[split] = {"cost": cost, "accuracy": accuracy, "examples": int(data.X[split].shape[1])}
    metrics["diagnosis"] = diagnosis_of(metrics, cfg.data.human_error)
    return metrics


def train(
    cfg: Config,
    runs_dir: Path = Path("runs"),
    run_dir: Path | None = None,
    progress: Callable[[EpochResult, dict | None], None] | None = None,
    interrupt: threading.Event | None = None,
    expect_fingerprint: str | None = None,
) -> TrainOutcome:
    """Train the configured model and write its run folder; returns where and what it wrote.

    `progress(result, row)` is called after every epoch, with the history row on logged epochs.
    `interrupt` is checked after every epoch: once set, the run writes a checkpoint and its metrics
    so far, is marked 'interrupted', and Interrupted is raised (resume() continues it). A diverging
    run keeps its history, its last checkpoint and a summary marked 'diverged', and re-raises.
    `expect_fingerprint` refuses data other than those a run to reproduce was trained on.
    """
    data = prepare_data(cfg)
    if expect_fingerprint is not None and data.fingerprint != expect_fingerprint:
        raise DltrainError(
            f"the data are not those the run was trained on (fingerprint {data.fingerprint[:19]}…, recorded "
            f"{expect_fingerprint[:19]}…): data files changed or another dataset version is installed"
        )
    t = build_training(cfg, data)
    run = RunWriter(run_dir or new_run_dir(runs_dir, cfg.name), history_columns("dev" in data.X, t.net.L if cfg.training.log_norms else 0))
    # Taken before summary.json exists, so a resume of this folder finds it locked from the start.
    with training_lock(run.dir):
        run.write_yaml("config.yaml", resolved_config(cfg, data.n_x))
        summary = {
            "name": cfg.name,
            "status": "running",
            "seed": cfg.seed,
            "rng": cfg.rng,
            "dtype": cfg.dtype,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "split_counts": {k: int(v.shape[1]) for k, v in data.X.items()},
            "data_fingerprint": data.fingerprint,
            "versions": {"dltrain": __version__, "python": platform.python_version(), "numpy": np.__version__},
            "host": platform.node(),
            "pid": os.getpid(),
        }
        run.write_json("summary.json", summary)
        return fit(cfg, data, t, run, summary, progress, interrupt)


def run_config(run_dir: Path) -> Config:
    """The resolved config a run folder recorded in config.yaml, validated again."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DltrainError(f"run folder {run_dir} not found" if not run_dir.exists() else f"{run_dir} is a file, not a run folder")
    if not is_run_dir(run_dir):
        raise DltrainError(f"{run_dir} is not a dltrain run folder (it has no summary.json)")
    path = run_dir / "config.yaml"
    return validate_config(read_yaml(path), source=str(path))


def still_running(summary: dict) -> bool:
    """True when the process that wrote a 'running' summary is alive on this machine: the guess
    resume makes where the run folder cannot be locked (see training_lock). A pid reused by another
    process since looks alive too."""
    pid = summary.get("pid")
    if os.name != "posix" or summary.get("host") != platform.node() or not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def resume(
    run_dir: Path,
    progress: Callable[[EpochResult, dict | None], None] | None = None,
    interrupt: threading.Event | None = None,
) -> TrainOutcome:
    """Continue an interrupted (or killed) run in its own folder from its last checkpoint.

    The run ends bit-identical (weights, history without `seconds`) to the same run left
    uninterrupted: the checkpoint holds every array training mutates and the RNG's position.
    """
    run_dir = Path(run_dir)
    # config.yaml is written once, when the run starts; reading it first also makes sure the lock
    # file is only ever created in a run folder.
    cfg = run_config(run_dir)
    # The status is read under the lock and rewritten before it is released: two resumes of one
    # folder cannot both find it interrupted.
    with training_lock(run_dir) as locked:
        summary = load_run(run_dir).summary
        status = summary.get("status")
        if status == "completed":
            raise DltrainError(f"{run_dir} is completed: there is nothing to resume (dltrain reproduce {run_dir} re-runs it)")
        if status == "diverged":
            raise DltrainError(f"{run_dir} diverged and would diverge again: train a new run with a lower optimizer.learning_rate")
        # Holding the lock proves the process that wrote 'running' is gone, whatever its pid is now.
        if status == "running" and not locked and still_running(summary):
            raise DltrainError(f"{run_dir} is still being trained by process {summary['pid']}: stop it first (Ctrl-C)")
        if status not in ("running", "interrupted"):
            raise DltrainError(f"{run_dir}/summary.json has no run status; is {run_dir} a dltrain run folder?")
        if not (run_dir / CHECKPOINT).is_file():
            raise DltrainError(
                f"{run_dir} stopped before its first checkpoint, so there is nothing to resume from; "
                f"train it again: dltrain train {run_dir / 'config.yaml'} (set training.checkpoint_every to checkpoint periodically)"
            )
        data = prepare_data(cfg)
        if data.fingerprint != summary.get("data_fingerprint"):
            raise DltrainError(f"the data are not those {run_dir} was trained on (their fingerprint differs); resuming would mix two datasets")
        t = build_training(cfg, data)
        loop = restore_checkpoint(t, run_dir / CHECKPOINT, cfg)
        run = RunWriter(run_dir, history_columns("dev" in data.X, t.net.L if cfg.training.log_norms else 0), rows=loop["history"])
        run.flush_history()
        summary.update(status="running", host=platform.node(), pid=os.getpid(),
                       resumed=[*summary.get("resumed", []), {"epoch": loop["epoch"] + 1,
                                                             "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}])
        run.write_json("summary.json", summary)
        return fit(cfg, data, t, run, summary, progress, interrupt, loop)


class Reproduction(NamedTuple):
    outcome: TrainOutcome  # the new run
    difference: str | None  # None: identical


def reproduce(
    run_dir: Path,
    runs_dir: Path | None = None,
    progress: Callable[[EpochResult, dict | None], None] | None = None,
    interrupt: threading.Event | None = None,
) -> Reproduction:
    """Train a completed run's saved config again into a new folder (next to it by default), on
    data with the recorded fingerprint, and compare the results (see first_difference)."""
    run_dir = Path(run_dir)
    summary = load_run(run_dir).summary
    status = summary.get("status")
    if status != "completed":
        raise DltrainError(f"{run_dir} is {status}; only a completed run can be reproduced")
    if not summary.get("data_fingerprint"):
        raise DltrainError(f"{run_dir}/summary.json has no data_fingerprint (an older dltrain wrote it): its data cannot be checked")
    cfg = run_config(run_dir)
    read_model(run_dir / "model.h5")  # before training: the comparison needs it
    outcome = train(cfg, runs_dir=runs_dir or run_dir.parent, progress=progress, interrupt=interrupt,
                    expect_fingerprint=summary.get("data_fingerprint"))
    return Reproduction(outcome, first_difference(run_dir, outcome.run_dir))


def first_difference(original: Path, copy: Path) -> str | None:
    """Where two runs' results first differ, as 'file: epoch/key/array: original vs copy', or None.

    history.csv is compared row by row on every column but `seconds` (wall time), then
    metrics.json, then every array (bit for bit) and attribute of model.h5.
    """
    first, second = load_run(original), load_run(copy)
    rows, copy_rows = first.history, second.history
    for a, b in zip(rows, copy_rows):
        for col in [c for c in union(a, b) if c != "seconds"]:
            if repr(a.get(col)) != repr(b.get(col)):
                return f"history.csv: epoch {a.get('epoch')}, {col}: {a.get(col)!r} vs {b.get(col)!r}"
    if len(rows) != len(copy_rows):
        return f"history.csv: {len(rows)} rows vs {len(copy_rows)}"
    metrics, copy_metrics = flatten(first.metrics), flatten(second.metrics)
    for key in union(metrics, copy_metrics):
        if repr(metrics.get(key)) != repr(copy_metrics.get(key)):
            return f"metrics.json: {key}: {metrics.get(key)!r} vs {copy_metrics.get(key)!r}"
    model, copy_model = read_model(original / "model.h5"), read_model(copy / "model.h5")
    for name in union(model, copy_model):
        a, b = model.get(name), copy_model.get(name)
        if not isinstance(a, dict) or not isinstance(b, dict):
            if a != b:
                return f"model.h5: attribute {name} differs"
            continue
        for key in union(a, b):
            x, y = a.get(key), b.get(key)
            if x is None or y is None or x.dtype != y.dtype or x.shape != y.shape:
                return f"model.h5: {name}/{key}: {describe(x)} vs {describe(y)}"
            if x.tobytes() != y.tobytes():
                return f"model.h5: {name}/{key}: largest difference {np.max(np.abs(x.astype(float) - y)):.3g}"
    return None


def flatten(tree, prefix: str = "") -> dict:
    """{'dev': {'cost': 1}} -> {'dev.cost': 1}."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree}
    out = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def union(a: dict, b: dict) -> list:
    """Keys of a in order, then those only b has."""
    return [*a, *(k for k in b if k not in a)]


def describe(array: np.ndarray | None) -> str:
    return "missing" if array is None else f"{array.dtype} {array.shape}"


def fit(cfg: Config, data: Prepared, t: Training, run: RunWriter, summary: dict, progress, interrupt, loop: dict | None = None) -> TrainOutcome:
    """The training loop of train() and resume(): log, early-stop, checkpoint, stop on request, finish the run folder.

    `loop` is a checkpoint's position (last epoch done, seconds so far, divergence baseline).
    """
    started = time.perf_counter() - (loop["seconds"] if loop else 0.0)
    X, Y = data.X["train"], data.Y["train"]
    has_dev = "dev" in data.X
    es, stopper = cfg.regularization.early_stopping, t.stopper
    epochs, log_every, every = cfg.training.epochs, cfg.training.log_every, cfg.training.checkpoint_every
    last = epochs - 1
    epochs_run = loop["epoch"] + 1 if loop else 0
    checkpointed = loop["epoch"] if loop else None  # the epoch the kept checkpoint ends with
    interrupted = False

    def checkpoint(epoch: int) -> None:
        nonlocal checkpointed
        # The epoch's cost is taken before its last update, which may have left inf in the weights:
        # a checkpoint must hold the last finite ones.
        check_finite(epoch, 0.0, t.params)
        save_checkpoint(run, t, {"epoch": epoch, "seconds": time.perf_counter() - started, "baseline": baseline,
                                 "config": checked_config(cfg, data.n_x)})
        checkpointed = epoch

    def mark(status: str, reason: str) -> None:
        run.flush_history()
        summary.update(status=status, stop_reason=reason, epochs_run=epochs_run, duration_seconds=round(time.perf_counter() - started, 3))
        run.write_json("summary.json", summary)

    # Overflow is reported once, as divergence naming its epoch and array; numpy would warn on every step.
    with np.errstate(all="ignore"):
        try:
            baseline = loop["baseline"] if loop else initial_cost(data, t)
            for r in train_epochs(
                X,
                Y,
                t.params,
                t.state,
                t.net,
                t.optimizer,
                build_schedule(cfg),
                epochs,
                cfg.training.batch_size,
                build_permutation(cfg, t.rng, X.shape[1]),
                dropout_rng=build_dropout_rng(cfg, t.rng),
                augment=t.augment,
                start_epoch=epochs_run,
                grad_norms=cfg.training.log_norms,
            ):
                check_growth(r, baseline, cfg.training.divergence_factor)
                epochs_run = r.epoch + 1
                row = None
                dev = evaluate(data.X["dev"], data.Y["dev"], t.params, t.net, t.state) if stopper or has_dev and (
                    r.epoch % log_every == 0 or r.epoch == last) else None
                stop = stopper.update(r.epoch, dev[0] if es.monitor == "dev_cost" else dev[1], t.params, t.state) if stopper else False
                if r.epoch % log_every == 0 or r.epoch == last or stop:
                    row = {
                        "epoch": r.epoch,
                        "iteration": r.iterations,
                        "learning_rate": r.learning_rate,
                        "cost": r.cost,
                        "data_cost": r.data_cost,
                        "penalty": r.penalty,
                        "seconds": round(time.perf_counter() - started, 3),
                    }
                    if has_dev:
                        row["dev_cost"], row["dev_accuracy"] = dev
                    if cfg.training.log_norms:
                        row.update(norm_row(t.params, r.grad_norms, t.net.L))
                    run.log(row)
                if progress is not None:
                    progress(r, row)
                if stop or epochs_run == epochs:
                    break
                if every is not None and epochs_run % every == 0:
                    checkpoint(r.epoch)
                # Checked once per epoch: a signal handler only sets the event, so the epoch always completes.
                if interrupt is not None and interrupt.is_set():
                    interrupted = True
                    break
            if interrupted:
                if checkpointed != epochs_run - 1:
                    checkpoint(epochs_run - 1)
                run.write_json("metrics.json", split_metrics(cfg, data, t))
        except Diverged as e:
            mark("diverged", str(e))
            kept = f"; the last checkpoint, after epoch {checkpointed}, is kept in {run.path(CHECKPOINT)}" if checkpointed is not None else ""
            raise DltrainError(f"{e} (history so far kept in {run.dir}{kept})") from None
        except KeyboardInterrupt:
            # A second Ctrl-C stops at once, mid-epoch or mid-write: the last complete checkpoint stands.
            mark("interrupted", f"aborted during epoch {epochs_run}")
            then = (f"it resumes from its last checkpoint, after epoch {checkpointed}: dltrain train --resume {run.dir}"
                    if checkpointed is not None else f"it has no checkpoint to resume from: train it again with dltrain train {run.path('config.yaml')}")
            raise Interrupted(f"aborted during epoch {epochs_run} of {epochs}; {then}", run.dir) from None
        except DltrainError as e:  # a run file that cannot be written (disk full, permissions)
            with contextlib.suppress(DltrainError):
                mark("failed", str(e))
            raise

    if interrupted:
        mark("interrupted", f"interrupted after epoch {epochs_run - 1}")
        raise Interrupted(
            f"interrupted after epoch {epochs_run - 1} of {epochs}: checkpoint, history and metrics so far are in {run.dir}\n"
            f"resume with: dltrain train --resume {run.dir}",
            run.dir,
        )

    run.flush_history()
    marks = {}
    stop_reason = "finished all epochs"
    if stopper is not None and stopper.best_epoch is not None and epochs_run < epochs:
        stop_reason = (f"early stopping: {es.monitor} did not improve by more than {es.min_delta} "
                       f"for {es.patience} epochs")
        marks = {"stopped": epochs_run - 1, "best": stopper.best_epoch}
        summary.update(stopped_epoch=epochs_run - 1, best_epoch=stopper.best_epoch, best_value=stopper.best_value,
                       restored_best=es.restore_best)
        if es.restore_best:
            stopper.restore(t.params, t.state)
    metrics = split_metrics(cfg, data, t)
    run.write_json("metrics.json", metrics)
    run.save_model(
        "model.h5",
        params=t.params,
        state=t.state,
        normalization=data.normalization,
        optimizer=t.optimizer.state_dict(),
        config=json.dumps(resolved_config(cfg, data.n_x)),
        classes=json.dumps(data.classes),
        image_shape=json.dumps(data.image_shape),
    )
    run.write_bytes("cost.png", plots.cost_curve(run.rows, f"{cfg.name}: cost", marks))
    if cfg.training.log_norms:
        run.write_bytes("norms.png", plots.norm_curves(run.rows, t.net.L, f"{cfg.name}: weight and gradient norms"))
    model = Trained(run.dir, cfg, t.net, t.params, t.state, data.normalization, data.classes, data.image_shape)
    for kind, png in split_plots(model, "train", data.X["train"], data.labels["train"], ("decision_boundary",)).items():
        run.write_bytes(f"{kind}.png", png)
    # Error analysis looks at examples the model did not train on: test, else dev, else train.
    held_out = next(s for s in ("test", "dev", "train") if s in data.X)
    for kind, png in split_plots(model, held_out, data.X[held_out], data.labels[held_out], ("misclassified", "confusion_matrix")).items():
        run.write_bytes(f"{kind}.png", png)
    summary.update(status="completed", stop_reason=stop_reason, epochs_run=epochs_run,
                   duration_seconds=round(time.perf_counter() - started, 3))
    run.write_json("summary.json", summary)
    # The finished model supersedes the checkpoint; a completed run is never resumed.
    run.remove(CHECKPOINT)
    return TrainOutcome(run.dir, metrics, summary)


class Trained(NamedTuple):
    """A finished run's model, ready to evaluate: its config, network, arrays and preprocessing."""

    run_dir: Path
    cfg: Config
    net: Network
    params: dict[str, np.ndarray]
    state: dict[str, np.ndarray]
    normalization: dict[str, np.ndarray]
    classes: list[str]
    image_shape: tuple[int, ...] | None = None  # (h, w, c) of the images the run trained on


def load_trained(run_dir: Path) -> Trained:
    """Reload model.h5 of a run folder, or DltrainError saying what is missing."""
    run_dir = Path(run_dir)
    if not (run_dir / "model.h5").is_file():
        raise DltrainError(f"{run_dir} is not a finished dltrain run: it has no model.h5")
    saved = read_model(run_dir / "model.h5")
    try:
        tree = json.loads(saved["config"])
        classes = json.loads(saved["classes"])
        image_shape = json.loads(saved.get("image_shape", "null"))
    except (KeyError, ValueError):
        raise DltrainError(f"{run_dir / 'model.h5'} has no readable config or classes attribute") from None
    cfg = validate_config(tree, source=str(run_dir / "model.h5"))
    net = build_network(cfg, cfg.model.layers[0])
    dtype = np.dtype(cfg.dtype)
    params = {k: v.astype(dtype) for k, v in saved.get("params", {}).items()}
    state = {k: v.astype(dtype) for k, v in saved.get("state", {}).items()}
    expected = {f"W{l}": (s.units, n_prev) for l, (s, n_prev) in
                enumerate(zip(net.layers, [net.n_x] + [s.units for s in net.layers[:-1]]), start=1)}
    for key, shape in expected.items():
        if key not in params or params[key].shape != shape:
            got = params[key].shape if key in params else "nothing"
            raise DltrainError(f"{run_dir / 'model.h5'}: {key} should be {shape} for the saved config, got {got}")
    return Trained(run_dir, cfg, net, params, state, saved.get("normalization", {}), classes,
                   tuple(image_shape) if image_shape else None)


class KinkCheck(NamedTuple):
    """How close the check came to a ReLU / leaky-ReLU kink in hidden layer `layer`."""

    layer: int
    near: int  # entries of the layer's pre-activation Z (n_l, m) with |Z| < epsilon at the checked point
    crossings: int  # perturbed cost evaluations in which some unit of the layer switched side of 0


class GradcheckOutcome(NamedTuple):
    report: GradcheckReport
    verdict: str  # pass | suspicious | fail, from report.overall
    examples: int  # examples the cost was computed on (also the m of the penalty)
    epsilon: float
    threshold: float
    after_epochs: int
    max_per_param: int | None
    kinks: list[KinkCheck]  # one per relu / leaky_relu hidden layer
    notices: list[str]  # how the checked model differs from the configured one
    warnings: list[str]  # reasons the check itself may be unreliable


def pre_activation(cache: ForwardCache, params: dict, l: int) -> np.ndarray:
    """Layer l's activation input Z (n_l, m), recomputed from the forward cache (after batch norm if any)."""
    c = cache.layers[l - 1]
    if c.bn is not None:
        return c.bn.gamma * c.bn.Z_hat + params[f"beta{l}"]
    return c.dense.W @ c.dense.A_prev + params[f"b{l}"]


def draw_examples(X, params, net: Network, state, kinked: list[int], m: int, epsilon: float, rng) -> tuple[np.ndarray, int]:
    """Sorted column indices of m examples of X (n_x, M) drawn with rng, and how many draws were replaced.

    An example that puts a pre-activation of a `kinked` layer within epsilon of 0 is replaced by
    the next one in the seeded order while there are others: at a kink the two-sided difference
    averages two slopes. (At initialization, with zero biases, an example that no unit of a layer
    lets through gives the next layer Z = b = 0 exactly.) With batch norm every example shifts
    the others' statistics, so the batch is re-examined after each replacement.
    """
    order = rng.permutation(X.shape[1])
    cols, spare = order[:m].copy(), order[m:]
    replaced = 0
    while kinked:
        cache = forward(X[:, cols], params, net, state, training=True)[1]
        on_kink = np.zeros(m, dtype=bool)
        for l in kinked:
            on_kink |= (np.abs(pre_activation(cache, params, l)) < epsilon).any(axis=0)
        swap = np.flatnonzero(on_kink)[: spare.size]
        if swap.size == 0:
            break
        cols[swap], spare = spare[: swap.size], spare[swap.size :]
        replaced += swap.size
    return np.sort(cols), replaced


def gradcheck(
    cfg: Config,
    examples: int = 10,
    epsilon: float = 1e-7,
    threshold: float = 2e-7,
    after_epochs: int = 0,
    max_per_param: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> GradcheckOutcome:
    """Compare backprop with two-sided differences for the model `train` builds from cfg.

    The model is initialized (and, with after_epochs, trained) exactly as `train` does it, then
    checked on a subset of `examples` training examples drawn with the config's seed: in float64,
    with dropout off, batch norm in training mode on that fixed subset, the penalty's m being the
    subset size. With max_per_param, a seeded sample of that many entries per array is checked.
    `progress(done, total)` is called after every cost evaluation (two per checked entry).
    """
    notices, warnings = [], []
    if cfg.dtype != "float64":
        notices.append(f"the config's dtype is {cfg.dtype}; the check runs in float64")
        cfg = cfg.model_copy(update={"dtype": "float64"})
    data = prepare_data(cfg)
    net = build_network(cfg, data.n_x)
    rng = init_rng(cfg)
    params, state = init_params(net, INITIALIZERS[cfg.init.scheme], rng, cfg.init.scale, np.dtype(cfg.dtype))
    X, Y = data.X["train"], data.Y["train"]
    if after_epochs:
        # The course advises checking after some training too: train exactly as `train` does
        # (early stopping aside: K epochs are asked for).
        optimizer, augment = build_optimizer(cfg), build_augment(cfg, data, rng)
        for _ in train_epochs(X, Y, params, state, net, optimizer, build_schedule(cfg), after_epochs, cfg.training.batch_size,
                              build_permutation(cfg, rng, X.shape[1]), build_dropout_rng(cfg, rng), augment):
            pass
    if net.has_dropout:
        notices.append("dropout is off for the check (keep_prob 1 in every layer): with random masks the cost is not a fixed function")
        net = net._replace(layers=tuple(spec._replace(keep_prob=1.0) for spec in net.layers))

    pick = np.random.default_rng(cfg.seed)
    kinked = list(range(1, net.L)) if cfg.model.hidden_activation in ("relu", "leaky_relu") else []
    cols, replaced = draw_examples(X, params, net, state, kinked, min(examples, X.shape[1]), epsilon, pick)
    if replaced:
        notices.append(f"{replaced} of the examples drawn had a {cfg.model.hidden_activation} pre-activation within "
                       "epsilon of the kink at 0, where the numeric gradient is no derivative; others were drawn instead")
    X, Y = X[:, cols], Y[:, cols]
    m = X.shape[1]
    AL, cache = forward(X, params, net, state, training=True)
    grads = backward(AL, Y, cache, params, net, m)

    near = {l: int(np.count_nonzero(np.abs(pre_activation(cache, params, l)) < epsilon)) for l in kinked}
    # A > 0 exactly where Z > 0 for relu and leaky relu, so the cached outputs tell which side each unit is on.
    active = {l: cache.layers[l - 1].A > 0 for l in kinked}
    crossings = dict.fromkeys(kinked, 0)
    total = 2 * sum(p.size if max_per_param is None else min(p.size, max_per_param) for p in params.values())
    done = 0

    def cost() -> float:
        nonlocal done
        AL, cache = forward(X, params, net, state, training=True)
        done += 1
        if progress is not None:
            progress(done, total)
        for l in kinked:
            if not np.array_equal(cache.layers[l - 1].A > 0, active[l]):
                crossings[l] += 1
        data_cost, pen = compute_cost(AL, cache, Y, params, net, m)
        return data_cost + pen

    report = gradient_check(cost, params, grads, epsilon, max_per_param, pick)
    kinks = [KinkCheck(l, near[l], crossings[l]) for l in kinked]
    for k in kinks:
        if k.near or k.crossings:
            warnings.append(
                f"layer {k.layer} ({cfg.model.hidden_activation}): {k.near} pre-activations within epsilon of the kink at 0, "
                f"{k.crossings} perturbed evaluations switched a unit across it; the numeric gradient is not valid there, "
                "so a difference in that layer's or earlier arrays may be spurious"
            )
    checked, size = sum(a.checked for a in report.arrays), sum(a.size for a in report.arrays)
    if checked < size:
        notices.append(f"--max-per-param {max_per_param}: a seeded sample of {checked} of the {size} entries was checked")
    return GradcheckOutcome(report, verdict(report.overall, threshold), m, epsilon, threshold, after_epochs, max_per_param,
                            kinks, notices, warnings)


# ---- datasets -------------------------------------------------------------------------------------


class CatalogEntry(NamedTuple):
    name: str
    select: str  # the data: keys that select it
    files: list[tuple[Path, bool]]  # where each file is looked for, and whether it is there


def list_datasets(data_dir: Path = Path("datasets")) -> list[CatalogEntry]:
    """The known datasets: how a config selects each, and which of their files are in data_dir."""
    return [
        CatalogEntry(name, select.replace("DIR", str(data_dir)), [(data_dir / f, (data_dir / f).is_file()) for f in files])
        for name, select, files in CATALOG
    ]


class DatasetInfo(NamedTuple):
    dataset: str
    classes: list[str]
    n_x: int
    image_shape: tuple[int, ...] | None
    counts: dict[str, list[int]]  # split -> examples per class
    value_range: tuple[float, float]  # min and max of the raw training features


def dataset_info(spec: str, overrides: list[str] = ()) -> DatasetInfo:
    """Shapes, classes and per-split class counts of a config file's `data:` section or a dataset name.

    The splits are carved exactly as `train` carves them (same data.split_seed).
    """
    # Catalog entries that are files in a general format (football.mat) are selected by their keys.
    selects = {name: select.replace("DIR", "datasets") for name, select, _ in CATALOG if name not in LOADERS}
    if spec in LOADERS or spec in selects:
        tree = {"data": {"dataset": spec} if spec in LOADERS else safe_tree(f"{{{selects[spec]}}}", f"dataset {spec}")}
        apply_overrides(tree, list(overrides))
        data = validate_data(tree, source=f"dataset {spec}")
    elif Path(spec).suffix.lower() in (".yaml", ".yml"):
        data = load_config(spec, list(overrides)).data
    else:
        raise DltrainError(f"{spec!r} is neither a config file (.yaml) nor a dataset name ({', '.join([*LOADERS, *selects])})", 2)
    ds = load_dataset(data)
    splits = split_dataset(ds, data, np.random.default_rng(data.split_seed))
    counts = {k: np.bincount(v.y, minlength=len(ds.classes)).tolist() for k, v in splits.items()}
    X = splits["train"].X
    return DatasetInfo(data.dataset, ds.classes, X.shape[0], ds.image_shape, counts, (float(X.min()), float(X.max())))


# ---- predict --------------------------------------------------------------------------------------


class Prediction(NamedTuple):
    input: str  # the image file, or FILE[i] for example i of an array file
    label: str  # the predicted class name
    probability: float  # the model's probability of that class


def predictions(AL: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AL (n_L, m) -> predicted labels (m,) and the model's probability of each prediction (m,).

    One sigmoid unit gives P(class 1), so the predicted class's probability is p or 1 - p.
    """
    pred = labels_from_output(AL)
    prob = np.where(pred == 1, AL[0], 1.0 - AL[0]) if AL.shape[0] == 1 else AL.max(axis=0)
    return pred, prob


def predict(run_dir: Path, inputs: list[Path], key: str | None = None, layout: str = "rows") -> list[Prediction]:
    """Class and probability per image (resized to the run's image shape) or per example of an array file.

    Inputs are raw values as in the training data (pixels 0-255); the run's saved normalization is applied.
    """
    t = load_trained(run_dir)
    names, columns = [], []
    for path in map(Path, inputs):
        is_array = path.suffix.lower() in READERS
        if is_array:
            X, _ = features(read_single_array(path, key), layout, str(path))
            names += [f"{path}[{i}]" for i in range(X.shape[1])]
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            if t.image_shape is None:
                raise DltrainError(f"{t.run_dir} was not trained on images (no image shape in its model.h5); "
                                   "give an .npz/.h5/.mat file of feature arrays instead")
            X = read_image(path, t.image_shape).reshape(-1, 1).astype(np.float64)
            names.append(str(path))
        else:
            raise DltrainError(f"{path}: expected an image ({', '.join(IMAGE_SUFFIXES)}) or an array file "
                               f"({', '.join(READERS)})", 2)
        if X.shape[0] != t.net.n_x:
            raise DltrainError(f"{path}: {X.shape[0]} features per example but the model expects {t.net.n_x} "
                               f"(examples as columns, (n_x, m) = {X.shape}{', read with layout: ' + layout if is_array else ''})")
        columns.append(X)
    X = apply_normalization(np.concatenate(columns, axis=1), t.normalization).astype(np.dtype(t.cfg.dtype))
    labels, prob = predictions(evaluation_forward(X, t.params, t.net, t.state)[0])
    return [Prediction(n, t.classes[c], float(p)) for n, c, p in zip(names, labels, prob)]


# ---- search ---------------------------------------------------------------------------------------


def trial_metrics(metrics: dict) -> dict:
    """The numbers a search ranks by, flat: dev_accuracy, dev_cost, train_accuracy, train_cost."""
    return {f"{split}_{name}": metrics[split][name] for split in ("dev", "train") for name in ("accuracy", "cost")}


def run_trial(tree: dict, run_dir: str) -> dict:
    """One search trial, in a worker: train silently into run_dir; returns status, metrics or error.

    A DltrainError (divergence, a data problem) becomes a failed result, so one bad trial never stops
    the search. A folder an interrupted earlier attempt left unfinished is started afresh.
    """
    run_dir = Path(run_dir)
    discard_unfinished(run_dir)
    started = time.perf_counter()
    with warnings.catch_warnings():
        # A diverging trial's overflow warnings would print over the parent's progress display.
        warnings.simplefilter("ignore")
        try:
            outcome = train(validate_config(tree), run_dir=run_dir)
        except DltrainError as e:
            summary = read_json_file(run_dir / "summary.json") or {}
            return {"status": "diverged" if summary.get("status") == "diverged" else "failed", "error": str(e),
                    "epochs_run": summary.get("epochs_run", 0), "seconds": round(time.perf_counter() - started, 3)}
    return {"status": "completed", "metrics": trial_metrics(outcome.metrics),
            "epochs_run": outcome.summary["epochs_run"], "seconds": outcome.summary["duration_seconds"]}


class Trial(NamedTuple):
    number: int
    round: int
    values: dict
    config: dict
    run_dir: Path


class SearchOutcome(NamedTuple):
    out: Path
    ranked: list[dict]
    best: dict | None


def apply_values(tree: dict, values: dict, source: str) -> Config:
    """The base config with the sampled values set at their key paths, validated (DltrainError exit 2 naming `source`)."""
    tree = copy.deepcopy(tree)
    for key, value in values.items():
        try:
            set_path(tree, key, value)
        except DltrainError as e:
            raise DltrainError(f"{source}: {e}", 2) from None
    return validate_config(tree, source=source)


def check_space(tree: dict, space: dict, source: str) -> None:
    """Before any value is drawn: every key path must exist in the config and accept both ends of its range and every choice.

    Keys are probed in file order, one end or option at a time, on top of a value already accepted
    for each earlier key, so keys that depend on each other (a choice of layer lists, then one
    layer's size) are probed together and every problem is reported with the end or option that
    causes it, never with a random draw, which is not in the space file. A problem every value of a
    key has (an unknown key path) is reported once, without a value.
    """
    accepted: dict = {}
    problems: list[str] = []
    for key, d in space.items():
        if d.kind == "choice":
            probes = [(value, f"{key}={value!r}") for value in d.options]
        else:
            probes = [(d.low, f"{key}={d.low!r} (the low end of {d.spec()})"), (d.high, f"{key}={d.high!r} (the high end of {d.spec()})")]
        failures: dict[str, list[str]] = {}  # problem -> the probes that have it
        for value, label in probes:
            try:
                apply_values(tree, {**accepted, key: value}, source)
            except DltrainError as e:
                for line in str(e).splitlines():
                    failures.setdefault(line, []).append(label)
            else:
                accepted.setdefault(key, value)
        for line, labels in failures.items():
            if len(labels) == len(probes):
                labelled = [line]
            else:
                labelled = [f"{source}: {label}: {line.removeprefix(f'{source}: ')}" for label in labels]
            problems += [line for line in labelled if line not in problems]
    if problems:
        raise DltrainError("\n".join(problems), 2)


def plan_round(tree: dict, space: dict, out: Path, first_trial: int, round_number: int, n: int, seed: int, source: str) -> list[Trial]:
    """Draw round r's values up front from its own seeded stream; the configs are validated before anything runs."""
    trials = []
    for i, values in enumerate(search_lib.sample_trials(space, n, search_lib.round_rng(seed, round_number))):
        number = first_trial + i
        cfg = apply_values(tree, values, f"{source}: trial {number} ({', '.join(f'{k}={v!r}' for k, v in values.items())})")
        resolved = cfg.model_dump(mode="json")
        # Record the values as the config holds them (YAML reads 1e-4 as text; the config makes it a number).
        values = {key: get_path(resolved, key) for key in space}
        trials.append(Trial(number, round_number, values, resolved, out / "trials" / f"trial-{number:03d}"))
    return trials


def finished_record(trial: Trial) -> dict | None:
    """The stored outcome of a trial an earlier (interrupted) search finished, from its record or its run folder."""
    record = read_json_file(trial.run_dir.with_suffix(".json"))
    if isinstance(record, dict) and record.get("status") in ("completed", "diverged", "failed"):
        return trial_record(trial, record)
    metrics = completed_metrics(trial.run_dir)
    if metrics is None or "dev" not in metrics:
        return None
    summary = read_json_file(trial.run_dir / "summary.json")
    return trial_record(trial, {"status": "completed", "metrics": trial_metrics(metrics),
                                "epochs_run": summary.get("epochs_run"), "seconds": summary.get("duration_seconds")})


def trial_record(trial: Trial, result: dict) -> dict:
    return {"trial": trial.number, "round": trial.round, "status": result["status"], "values": trial.values,
            "metrics": result.get("metrics", {}), "epochs_run": result.get("epochs_run"), "seconds": result.get("seconds"),
            "run_dir": str(trial.run_dir), "error": result.get("error")}


def open_search_folder(out: Path, spec: dict) -> None:
    """Create the search folder, or check that an existing one holds this same search (then it resumes)."""
    spec_file = out / "search.json"
    if out.exists() and not out.is_dir():
        raise DltrainError(f"--out {out} is a file; choose a folder", 2)
    if out.exists() and not spec_file.is_file() and any(out.iterdir()):
        raise DltrainError(f"{out} exists and is not a dltrain search folder; choose another --out", 2)
    stored = read_json_file(spec_file)
    if stored is not None and stored != spec:
        changed = ", ".join(k for k in spec if stored.get(k) != spec[k])
        raise DltrainError(f"{out} holds a different search (changed: {changed}); rerun it with the same settings to resume, "
                           "or choose another --out", 2)
    try:
        (out / "trials").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DltrainError(f"cannot create the search folder {out}: {e.strerror}") from None
    if stored is None:
        atomic_write(spec_file, json.dumps(spec, indent=2) + "\n")


def write_search_results(out: Path, records: list[dict], space: dict, configs: dict[int, dict], metric: str) -> dict | None:
    """leaderboard.csv, best.yaml and search.png from the trials so far; returns the best record."""
    ranked = search_lib.rank(records, metric)
    atomic_write(out / "leaderboard.csv", search_lib.leaderboard_csv(ranked, list(space), metric))
    done = [r for r in ranked if r["status"] == "completed"]
    if not done:
        return None
    best = done[0]
    m = best["metrics"]
    header = (f"# best trial {best['trial']} (round {best['round']}) of the search in {out}: "
              f"dev_accuracy {m['dev_accuracy']:.4f}, dev_cost {m['dev_cost']:.6f}; run folder {best['run_dir']}\n")
    atomic_write(out / "best.yaml", header + yaml.safe_dump(configs[best["trial"]], sort_keys=False))
    scales = {key: search_lib.plot_scale(d) for key, d in space.items()}
    atomic_write(out / "search.png", plots.search_scatter(done, scales, metric))
    return best


def search(
    tree: dict,
    space: dict,
    out: Path,
    trials: int = 20,
    rounds: int = 1,
    workers: int = 1,
    scheduler: str | None = None,
    metric: str = "dev_accuracy",
    seed: int = 0,
    source: str = "config",
    space_source: str = "space",
    progress=None,
) -> SearchOutcome:
    """Random search over `space` (config.load_space) around the base config `tree`, coarse to fine; writes `out`.

    Every trial's values are drawn in this process from round_rng(seed, round), before that round
    runs, and each trial keeps the base config's seeds (same init stream, same dev split), so the
    trials and their results are the same whichever executor runs them. Finished trials of an
    earlier run of the same search are reused. `progress.round(number, specs, trials)` is called
    as each round starts (with its distributions), `progress.trial(record, reused)` as each trial is known.
    """
    base = validate_config(tree, source=source)
    if metric not in search_lib.METRICS:
        raise DltrainError(f"--metric {metric!r}: allowed: {', '.join(search_lib.METRICS)}", 2)
    if base.data.dev_fraction == 0 and base.data.dev_size is None:
        raise DltrainError(f"{source}: search ranks trials on the dev set but the config has none; "
                           "set data.dev_fraction or data.dev_size, e.g. --set data.dev_fraction=0.2", 2)
    if rounds > 1 and trials < 2 * rounds:
        raise DltrainError(f"--trials {trials} is too few for --rounds {rounds}: each round needs at least 2 trials", 2)
    sizes = search_lib.round_sizes(trials, rounds)
    check_space(tree, space, space_source)
    first = plan_round(tree, space, out, 1, 1, sizes[0], seed, space_source)
    spec = {"config": json.loads(json.dumps(tree, default=str)), "space": {k: d.spec() for k, d in space.items()},
            "seed": seed, "trials": trials, "rounds": rounds, "metric": metric}
    open_search_folder(out, spec)

    records: list[dict] = []
    configs: dict[int, dict] = {}
    spaces: list[dict[str, str]] = []
    current, best = space, None
    executor, futures = None, {}
    try:
        for number, size in enumerate(sizes, start=1):
            if number > 1:
                current = search_lib.narrow(current, [r for r in records if r["round"] == number - 1], metric)
                planned = plan_round(tree, current, out, sum(sizes[: number - 1]) + 1, number, size, seed, space_source)
                atomic_write(out / f"space-round-{number}.yaml", yaml.safe_dump({k: d.spec() for k, d in current.items()}, sort_keys=False))
            else:
                planned = first
            spaces.append({k: d.spec() for k, d in current.items()})
            atomic_write(out / "rounds.json", json.dumps([{"round": i, "space": s} for i, s in enumerate(spaces, 1)], indent=2) + "\n")
            configs.update({t.number: t.config for t in planned})
            if progress is not None:
                progress.round(number, current, len(planned))
            pending = []
            for t in planned:
                record = finished_record(t)
                if record is None:
                    pending.append(t)
                    continue
                records.append(record)
                if progress is not None:
                    progress.trial(record, True)
            if pending:
                executor = executor or search_lib.open_executor(min(workers, max(sizes)), scheduler)
                futures = {executor.submit(run_trial, t.config, str(t.run_dir)): t for t in pending}
                for future in executor.as_completed(futures):
                    t = futures[future]
                    try:
                        result = future.result()
                    except Exception as e:
                        raise DltrainError(f"trial {t.number} could not run ({type(e).__name__}: {e}); "
                                           "the finished trials are kept: rerun the same command to resume") from None
                    record = trial_record(t, result)
                    atomic_write(t.run_dir.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
                    records.append(record)
                    atomic_write(out / "leaderboard.csv", search_lib.leaderboard_csv(records, list(space), metric))
                    if progress is not None:
                        progress.trial(record, False)
                futures = {}
            best = write_search_results(out, records, space, configs, metric)
    except BaseException:
        if executor is not None:
            executor.abort(futures)
        raise
    if executor is not None:
        executor.close()
    return SearchOutcome(out, search_lib.rank(records, metric), best)


# ---- evaluate ---------------------------------------------------------------------------------

MAX_GRID_IMAGES = 24


def split_plots(model: Trained, split: str, X: np.ndarray, y: np.ndarray, kinds: tuple[str, ...]) -> dict[str, bytes]:
    """The figures among `kinds` that apply to this model: decision_boundary (2-D inputs),
    misclassified (image inputs, most confident mistakes first), confusion_matrix (softmax output)."""
    name, net, params, state = model.cfg.name, model.net, model.params, model.state
    out = {}
    if "decision_boundary" in kinds and net.n_x == 2:
        out["decision_boundary"] = plots.decision_boundary(
            lambda G: labels_from_output(evaluation_forward(G.astype(X.dtype), params, net, state)[0]),
            X, y, f"{name}: decision boundary ({split})", model.classes,
        )
    if not {"misclassified", "confusion_matrix"} & set(kinds):
        return out
    pred, prob = predictions(evaluation_forward(X, params, net, state)[0])
    if "confusion_matrix" in kinds and net.layers[-1].units > 1:
        counts = confusion_matrix(y, pred, len(model.classes))
        out["confusion_matrix"] = plots.confusion_heatmap(counts, model.classes, f"{name}: confusion matrix ({split})")
    wrong = np.flatnonzero(pred != y)
    if "misclassified" in kinds and model.image_shape is not None and wrong.size:
        # The most confident mistakes say the most about what the model gets wrong.
        wrong = wrong[np.argsort(-prob[wrong], kind="stable")][:MAX_GRID_IMAGES]
        raw = undo_normalization(X[:, wrong].astype(np.float64), model.normalization)
        images = np.clip(raw.T.reshape(-1, *model.image_shape) / 255.0, 0.0, 1.0)
        captions = [f"#{i} true {model.classes[y[i]]}\npred {model.classes[pred[i]]} ({prob[i]:.2f})" for i in wrong]
        title = f"{name}: {min(wrong.size, MAX_GRID_IMAGES)} most confident of {int((pred != y).sum())} misclassified ({split})"
        out["misclassified"] = plots.image_grid(images, captions, title)
    return out


def data_override(cfg: Config, spec: str) -> Config:
    """The run's config with its data section replaced or updated by `spec`.

    spec: a dataset name ("moons"), an inline YAML mapping ("{seed: 7}" or
    "{dataset: circles, noise: 0.1}"), a YAML file holding a `data:` section or the mapping
    itself, or a data file (.npz, .h5, .hdf5, .mat, .csv: `dataset: file, path: SPEC`). Keys for
    the same dataset update the run's data section; another dataset replaces it.
    """
    suffix = Path(spec).suffix.lower()
    if suffix in (".yaml", ".yml"):
        tree = read_yaml(Path(spec), "--data file")
        source = spec
    elif suffix in (*READERS, ".csv"):
        tree, source = {"dataset": "file", "path": spec}, "--data"
    else:
        try:
            tree = safe_tree(spec, "--data")
        except yaml.YAMLError:
            raise DltrainError(f"--data {spec!r}: not a dataset name, a YAML mapping or a .yaml file", 2) from None
        source = "--data"
    if isinstance(tree, str):
        tree = {"dataset": tree}
    if isinstance(tree, dict) and isinstance(tree.get("data"), dict):
        tree = tree["data"]
    if not isinstance(tree, dict):
        raise DltrainError(f"--data {spec!r}: expected a dataset name or a mapping of data keys", 2)
    resolved = cfg.model_dump(mode="json")
    same = tree.get("dataset", resolved["data"]["dataset"]) == resolved["data"]["dataset"]
    resolved["data"] = {**resolved["data"], **tree} if same else tree
    return validate_config(resolved, source=source)


def evaluate_run(
    run_dir: Path,
    split: str = "all",
    data: str | None = None,
    human_error: float | None = None,
    errors_csv: Path | None = None,
) -> dict:
    """Re-evaluate a finished run's model and write evaluation.json (and evaluation plots) into its folder.

    The data is rebuilt as training built it (same dev split) and normalized with the statistics
    saved in model.h5; `data` replaces the data section (see data_override). Returns what
    evaluation.json holds: per split cost/accuracy/examples plus precision/recall/F1 (binary) or
    confusion matrix and per-class metrics (multi-class), the diagnosis, and the plot files.
    """
    model = load_trained(run_dir)
    cfg = data_override(model.cfg, data) if data is not None else model.cfg
    try:
        prepared = prepare_data(cfg, trained=model)
    except DltrainError as e:
        # Missing data files and a model that does not fit the data (input size, classes) end here.
        raise DltrainError(f"cannot evaluate {model.run_dir / 'model.h5'} on this data: {e}", e.exit_code) from None
    if split != "all" and split not in prepared.X:
        raise DltrainError(f"{split}: this data has no {split} split (it has {', '.join(prepared.X)})")
    chosen = list(prepared.X) if split == "all" else [split]
    net, params, state = model.net, model.params, model.state
    binary = net.layers[-1].units == 1
    splits, mistakes = {}, []
    for name in prepared.X:
        X, Y, y = prepared.X[name], prepared.Y[name], prepared.labels[name]
        cost, accuracy = evaluate(X, Y, params, net, state)
        splits[name] = {"cost": cost, "accuracy": accuracy, "examples": int(X.shape[1])}
        if name not in chosen:
            continue
        pred, prob = predictions(evaluation_forward(X, params, net, state)[0])
        splits[name].update(classification_report(y, pred, model.classes, binary))
        mistakes += [(name, int(i), int(y[i]), int(pred[i]), float(prob[i])) for i in np.flatnonzero(pred != y)]
    human = cfg.data.human_error if human_error is None else human_error
    diagnosis = diagnosis_of(splits, human)
    report = {
        "run": str(model.run_dir),
        "evaluated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": cfg.data.model_dump(mode="json"),
        "splits": {name: splits[name] for name in chosen},
        "diagnosis": diagnosis,
    }
    remove_evaluation_plots(model.run_dir)
    for name in chosen:
        figures = split_plots(model, name, prepared.X[name], prepared.labels[name],
                              ("decision_boundary", "misclassified", "confusion_matrix"))
        for kind, png in figures.items():
            write_evaluation_file(model.run_dir, f"evaluation_{name}_{kind}.png", png)
    if errors_csv is not None:
        write_output(errors_csv, errors_table(mistakes, model.classes))
        report["errors_file"] = str(errors_csv)
    report["plots"] = sorted(p.name for p in model.run_dir.glob("*.png"))
    write_evaluation_file(model.run_dir, "evaluation.json", json.dumps(report, indent=2) + "\n")
    return report


def errors_table(mistakes: list[tuple], classes: list[str]) -> str:
    """CSV of misclassified examples: split, index (column in that split), true and predicted label
    and class name, and the model's probability of its (wrong) prediction."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["split", "index", "true_label", "true_class", "predicted_label", "predicted_class", "probability"])
    for split, i, true, pred, prob in mistakes:
        w.writerow([split, i, true, classes[true], pred, classes[pred], repr(prob)])
    return buf.getvalue()


def write_output(path: Path, data: bytes | str) -> None:
    """A file the user named (errors CSV, comparison plot), written atomically."""
    try:
        atomic_write(Path(path), data)
    except OSError as e:
        raise DltrainError(f"cannot write {path}: {e.strerror}") from None


# ---- runs, compare ----------------------------------------------------------------------------

RUN_COLUMNS = [
    "run", "status", "dataset", "layers", "activation", "optimizer", "learning_rate", "batch_size", "l2", "keep_prob",
    "epochs", "train_accuracy", "dev_accuracy", "test_accuracy", "duration_seconds",
]


def run_row(record) -> dict:
    """One line of the runs table from a RunRecord; values the run does not have are None."""
    cfg, summary, metrics = record.config, record.summary, record.metrics
    model, optimizer, training = cfg.get("model", {}), cfg.get("optimizer", {}), cfg.get("training", {})
    regularization = cfg.get("regularization", {})
    row = {
        "run": record.dir.name,
        "status": summary.get("status"),
        "dataset": cfg.get("data", {}).get("dataset"),
        "layers": "-".join(map(str, model.get("layers", []))) or None,
        "activation": model.get("hidden_activation"),
        "optimizer": optimizer.get("name"),
        "learning_rate": optimizer.get("learning_rate"),
        "batch_size": training.get("batch_size"),
        "l2": regularization.get("l2"),
        "keep_prob": regularization.get("keep_prob"),
        "epochs": summary.get("epochs_run"),
        "duration_seconds": summary.get("duration_seconds"),
    }
    for split in ("train", "dev", "test"):
        row[f"{split}_accuracy"] = metrics.get(split, {}).get("accuracy")
    return {k: row[k] for k in RUN_COLUMNS}


def runs_folder(runs_dir: Path) -> Path:
    """The folder whose runs `dltrain runs` lists: runs_dir, or for a search folder (no run folders
    of its own) its trials/ folder, where the search keeps every trial's run folder."""
    trials = Path(runs_dir) / "trials"
    if not list_run_dirs(runs_dir) and trials.is_dir() and list_run_dirs(trials):
        return trials
    return Path(runs_dir)


def run_table(runs_dir: Path = Path("runs"), sort: str | None = None) -> list[dict]:
    """A row per run folder in runs_dir (see RUN_COLUMNS), optionally sorted by a column:
    accuracies best first, other columns ascending, missing values last."""
    if sort is not None and sort not in RUN_COLUMNS:
        raise DltrainError(f"--sort {sort!r}: not a column; choose one of {', '.join(RUN_COLUMNS)}", 2)
    rows = []
    for run_dir in list_run_dirs(runs_dir):
        try:
            rows.append(run_row(load_run(run_dir)))
        except DltrainError as e:
            rows.append({**dict.fromkeys(RUN_COLUMNS), "run": run_dir.name, "status": f"unreadable: {e}"})
    if sort is not None:
        present = [r for r in rows if r[sort] is not None]
        # A column may mix numbers with text or lists (keep_prob: 0.8 or [0.8, 0.5]): numbers first, then the rest as text.
        present.sort(key=lambda r: (0, r[sort], "") if isinstance(r[sort], (int, float)) else (1, 0, str(r[sort])),
                     reverse=sort.endswith("accuracy"))
        rows = present + [r for r in rows if r[sort] is None]
    return rows


def compare_runs(run_dirs: list[Path], out: Path) -> Path:
    """Overlay the cost curves (train solid, dev dashed) of several runs in one PNG at `out`."""
    curves = {}
    for run_dir in run_dirs:
        record = load_run(run_dir)
        if not record.history:
            raise DltrainError(f"{run_dir} has no history.csv rows to plot")
        # Runs of the same name in different folders stay apart under their full path.
        curves[str(record.dir) if record.dir.name in curves else record.dir.name] = record.history
    write_output(out, plots.compare_costs(curves, f"cost of {len(curves)} runs"))
    return Path(out)
