"""The validated config becomes engine objects: data arrays, network, optimizer, schedule, generators."""

import os
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from dltrain.config import Config
from dltrain.data import fingerprint, load_dataset
from dltrain.data.examples import MAX_CHUNK, ArrayRows, Examples, streaming_stats
from dltrain.data.limits import BUDGET_VARIABLE, check_array_size, check_budget, memory_budget
from dltrain.data.prepare import (
    check_labels,
    normalization_stats,
    split_parts,
    targets,
)
from dltrain.data.stream import wants_stream
from dltrain.engine.activations import ACTIVATIONS, leaky_relu
from dltrain.engine.initializers import INITIALIZERS
from dltrain.engine.losses import LOSSES
from dltrain.engine.model import (
    LayerSpec,
    Network,
    init_params,
)
from dltrain.engine.optimizers import OPTIMIZERS
from dltrain.engine.schedules import SCHEDULES, trained_rate
from dltrain.engine.train import EarlyStopping
from dltrain.errors import DltrainError

# Characters in a class name: names are drawn in figures and printed by predict (a 10 MB name took
# matplotlib over a minute). trained.py checks a saved model.h5 against the same bound.
MAX_CLASS_NAME = 200


class Prepared(NamedTuple):
    """Per split name: X (n_x, m) examples held raw and served normalized in the run's dtype
    (data.examples.Examples: X[:, cols], X.columns(cols), np.asarray(X)), Y (n_L, m) arrays."""

    X: dict[str, np.ndarray]
    Y: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    normalization: dict[str, np.ndarray]
    classes: list[str]
    image_shape: tuple | None
    n_x: int
    fingerprint: str  # of the loaded dataset, before any split or normalization
    dataset: object = None  # the loaded Dataset (raw), for same_data


def data_source(data) -> str:
    """How messages name a config's data: its file, else its dataset."""
    return getattr(data, "path", None) or f"dataset {data.dataset}"


def prepare_data(cfg: Config, trained=None) -> Prepared:
    """Load, check against the model, carve the dev/test splits, normalize with train statistics.

    `trained`: the finished run (a commands.trained.Trained) whose model will be evaluated on this data. Its saved
    normalization statistics are applied instead of computing them from the train split (so
    evaluation sees exactly the inputs training saw), and since its shape can no longer change, a
    mismatch asks for other data rather than another config.
    """
    ds = load_dataset(cfg.data, None if trained is None else trained.classes, wants_stream(cfg.data, cfg.training.batch_size))
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
            f"set model.layers[0] to {n_x} or 'auto'", 2  # the config is what to fix: exit 2
        )
    n_out = cfg.model.layers[-1]
    n_classes = len(ds.classes)
    long = next((c for c in ds.classes if len(c) > MAX_CLASS_NAME), None)
    if long is not None:
        raise DltrainError(f"the data ({source}) name a class of {len(long)} characters ({long[:20]!r}...); class names "
                           f"are at most {MAX_CLASS_NAME} characters (they are drawn in figures and printed by predict)")
    wrong_output = n_classes > 2 if cfg.model.output_activation == "sigmoid" else n_out != n_classes
    if wrong_output and (start := label_start(ds, source)):
        raise DltrainError(start)
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
    parts = split_parts(ds, cfg.data, np.random.default_rng(cfg.data.split_seed))
    raw = {"train": (ds.X_train, ds.y_train), "test": (ds.X_test, ds.y_test)}
    stores = {part: row_store(raw[part][0]) for part in {part for part, _ in parts.values()}}
    dtype = np.dtype(cfg.dtype)
    if trained is not None:
        stats = trained.normalization
    else:
        stats = train_statistics(ds.X_train, stores["train"], parts["train"][1], cfg.data.normalize)
    # Every split is an index set over the raw rows; normalization happens a batch or chunk at a time.
    buffers = {}
    X, split_y = {}, {}
    for name, (part, idx) in parts.items():
        X[name] = Examples(stores[part], idx, stats, dtype, buffers=buffers)
        split_y[name] = raw[part][1] if idx is None else raw[part][1][idx]
    for name, y in split_y.items():
        check_labels(y, n_out, name)
    Y = {k: targets(v, n_out).astype(dtype) for k, v in split_y.items()}
    return Prepared(X, Y, split_y, stats, ds.classes, ds.image_shape, n_x, fingerprint(ds), ds)


def release_buffers(data: Prepared) -> None:
    """Free the mini-batch buffers the splits share once training is over: figures and the report
    that follow evaluate in smaller chunks and are drawn in the memory the buffers held."""
    for X in data.X.values():
        if isinstance(X, Examples):
            X.buffers.clear()


def row_store(X):
    """The store of a loaded part's features X (n_x, m): its rows, each example contiguous (a view of
    the loaded array when it is column-major, as loaders leave images), or a streamed file's H5Rows."""
    if not isinstance(X, np.ndarray):
        return X.T
    return ArrayRows(np.ascontiguousarray(X.T))


STATS_BYTES = 256 * 2**20


def train_statistics(X_train, store, idx, kind: str) -> dict[str, np.ndarray]:
    """normalization_stats of the train split. Standardization of data whose float64 copy is at most
    STATS_BYTES takes today's path (the same bits as every earlier run, and streamed data the bits of
    the same data in memory); larger data take one streaming pass over float64 chunks
    (data.examples.streaming_stats), never a full float copy."""
    if kind != "standardize":
        return normalization_stats(None, kind)
    m = store.shape[0] if idx is None else idx.size
    if 8 * m * store.shape[1] <= STATS_BYTES:
        if isinstance(X_train, np.ndarray):
            X = X_train.astype(np.float64, copy=False)
            return normalization_stats(X if idx is None else X[:, idx], kind)
        # A streamed split read whole: the same float64 (n_x, m) column-major layout, so the same sums.
        return normalization_stats(Examples(store, idx, {}, np.float64).raw_float64(), kind)
    return streaming_stats(Examples(store, idx, {}, np.float64))


def same_data(data: "Prepared", recorded: str | None) -> bool:
    """Whether the prepared data have the recorded fingerprint: as hashed now, or, for runs recorded
    before features were held raw, as those hashed them (see data.core.fingerprint)."""
    if recorded == data.fingerprint:
        return True
    ds = data.dataset
    return ds is not None and isinstance(ds.X_train, np.ndarray) and fingerprint(ds, legacy=True) == recorded


def label_start(ds, source: str) -> str | None:
    """What is wrong with labels that do not start at 0 (1..C, as MATLAB and R number classes), or None."""
    values = np.unique(np.concatenate([y for y in (ds.y_train, ds.y_test) if y is not None]))
    if values.size == 0 or values[0] == 0:
        return None
    shown = ", ".join(map(str, values[:10].tolist())) + (", ..." if values.size > 10 else "")
    return (f"the data ({source}) has labels {shown}, but class labels must start at 0 (0..C-1 for C classes): "
            f"subtract {values[0]} from them, or map them to 0..C-1 (a csv's text labels are mapped to classes for you)")


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
    """Epoch -> the rate it trains with (engine.schedules.trained_rate). As in the course, a decay is
    applied at the end of each epoch: epoch 0 trains at lr0 and epoch e >= 1 at schedule(lr0, e - 1);
    `step` rates {E: r} train epoch E and later at r."""
    fn, kwargs, lr0 = SCHEDULES[cfg.schedule.name], cfg.schedule.model_dump(exclude={"name"}), cfg.optimizer.learning_rate
    return lambda epoch: trained_rate(fn, lr0, epoch, **kwargs)


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


def build_augment(cfg: Config, data: "Prepared", rng) -> Callable[[int, Examples], Examples] | None:
    """Each epoch, a random half of the training images (drawn from the run's generator) mirrored horizontally."""
    if not cfg.data.augment.hflip:
        return None
    if data.image_shape is None or len(data.image_shape) != 3:
        raise DltrainError(f"data.augment.hflip needs an image dataset; {cfg.data.dataset} has no image shape", 2)
    order = hflip_columns(data.image_shape)

    def augment(epoch: int, X: "Examples | np.ndarray") -> "Examples | np.ndarray":
        m = X.shape[1]
        chosen = rng.permutation(m)[: m // 2]
        if isinstance(X, np.ndarray):  # an array of normalized columns (the engine's own callers)
            X_epoch = X.copy(order="K")
            X_epoch[:, chosen] = X[order][:, chosen]
            return X_epoch
        mask = np.zeros(m, dtype=bool)
        mask[chosen] = True
        return X.with_flips(order, mask)  # mirrored as each batch is served: no copy of the split

    return augment


def resolved_config(cfg: Config, n_x: int) -> dict:
    """The config as config.yaml and model.h5 record it: every default filled in, `auto` input size
    resolved, data paths absolute (resume, reproduce and evaluate may run from another folder); `tracking` only when set."""
    resolved = cfg.model_dump(mode="json")
    resolved["model"]["layers"][0] = n_x
    if cfg.tracking == type(cfg).model_fields["tracking"].default:
        # No tracking asked for: the record stays as before the section existed (reproduce compares model.h5's config).
        del resolved["tracking"]
    if resolved["data"].get("stream") == "auto":
        # Streaming changes where the rows are read from, never a result: `auto` (the default) is not recorded, so
        # runs recorded before the key existed reproduce with identical config.yaml and model.h5.
        del resolved["data"]["stream"]
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
    accumulate: int | None = None  # examples per chunk of an accumulated full-batch step (full_batch_chunk)


OPTIMIZER_SLOTS = {"gd": 0, "momentum": 1, "rmsprop": 1, "adam": 2}


def training_bytes(cfg: Config, net: Network, data: "Prepared", accumulate: int | None = None) -> int:
    """What training allocates besides the data: weights, gradients, optimizer state and an early-stopping
    copy (per parameter), and activations (Z, A, their gradients, dropout masks: ~4 arrays of n_l values
    per example) for the larger of a mini-batch and an evaluated split (with `accumulate`, the examples
    of a full-batch step's chunk or of an evaluation chunk, at most MAX_CHUNK)."""
    sizes = [s.units * n_prev + 2 * s.units for s, n_prev in zip(net.layers, [net.n_x] + [s.units for s in net.layers[:-1]])]
    copies = 2 + OPTIMIZER_SLOTS.get(cfg.optimizer.name, 2) + (cfg.regularization.early_stopping is not None)
    examples = max(v.shape[1] for v in data.X.values())
    if accumulate is not None:
        examples = min(examples, max(accumulate, MAX_CHUNK))
    batch = min(cfg.training.batch_size or examples, examples)
    return (sum(sizes) * copies + 4 * max(batch, examples) * sum(s.units for s in net.layers)) * np.dtype(cfg.dtype).itemsize


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
    accumulate = full_batch_chunk(cfg, net, data)
    check_budget("training this model", training_bytes(cfg, net, data, accumulate),
                 "use fewer or smaller layers (model.layers), a smaller training.batch_size, or float32 (dtype)")
    rng = init_rng(cfg)
    params, state = init_params(net, INITIALIZERS[cfg.init.scheme], rng, cfg.init.scale, np.dtype(cfg.dtype))
    es = cfg.regularization.early_stopping
    if es is not None and "dev" not in data.X:
        raise DltrainError(
            "regularization.early_stopping monitors the dev set, but there is none: set data.dev_fraction (e.g. 0.1) or data.dev_size", 2
        )
    stopper = EarlyStopping(es.patience, es.min_delta, "min" if es.monitor == "dev_cost" else "max", es.restore_best) if es else None
    return Training(net, rng, params, state, build_optimizer(cfg), stopper, build_augment(cfg, data, rng), accumulate)


ACCUMULATE_CHUNK_BYTES = 64 * 2**20  # a chunk's float columns and activations; larger chunks do not speed BLAS up


def full_batch_chunk(cfg: Config, net: Network, data: "Prepared", budget: int | None = None) -> int | None:
    """Examples per chunk when full-batch training (training.batch_size null, or >= the train split) would
    exceed the memory budget with one product, else None (the single product, the course's bits).

    One product holds the train split's normalized float copy (made from the raw rows through a float64
    staging copy) and ~4 activation arrays of n_l values per example; when that is more than the budget
    (DLTRAIN_MEMORY_BUDGET, `budget` in tests), the step is accumulated over chunks of at most
    ACCUMULATE_CHUNK_BYTES (and an eighth of the budget) of the same. Batch normalization's statistics
    span the whole batch, so it cannot be accumulated: that combination is refused.
    """
    X = data.X["train"]
    m = X.shape[1]
    if cfg.training.batch_size is not None and cfg.training.batch_size < m:
        return None
    itemsize = np.dtype(cfg.dtype).itemsize
    store = getattr(X, "store", None)
    # Examples.columns: the raw rows taken, their float64 staging (unless raw is float64), the run's dtype (unless float64).
    copy = 0 if store is None else net.n_x * (store.dtype.itemsize + 8 * (store.dtype != np.float64) + itemsize * (itemsize != 8))
    per_example = copy + 4 * itemsize * sum(spec.units for spec in net.layers)
    budget = memory_budget() if budget is None else budget
    if m * per_example <= budget:
        return None
    if any(spec.batch_norm for spec in net.layers):
        raise DltrainError(
            f"model.batch_norm with training.batch_size null on {m} examples: one full-batch step would need about "
            f"{m * per_example / 2**30:.3g} GiB, more than the memory budget of {budget / 2**30:.3g} GiB, and batch norm's "
            f"statistics span the whole batch, so the step cannot be accumulated over chunks; set training.batch_size "
            f"(e.g. 256), or raise the budget with {BUDGET_VARIABLE}", 2)
    return max(1, min(m, min(ACCUMULATE_CHUNK_BYTES, budget // 8) // per_example))


def accumulation_note(t: Training, m: int) -> dict:
    """summary.json's record of an accumulated full-batch run ({} for the single product)."""
    if t.accumulate is None or t.accumulate >= m:
        return {}
    return {"gradient_accumulation": {"chunks": -(-m // t.accumulate), "examples_per_chunk": t.accumulate}}
