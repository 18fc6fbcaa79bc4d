"""The training loop as a generator of per-epoch results, mini-batch partitioning, early stopping."""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dltrain.engine.accumulate import accumulated_step
from dltrain.engine.model import Network, backward, compute_cost, forward, update_running_stats
from dltrain.errors import Diverged


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    cost: float  # data_cost + penalty, averaged over the epoch's examples before each update
    data_cost: float
    penalty: float
    learning_rate: float  # the rate this epoch trained with
    iterations: int  # optimizer steps taken so far
    seconds: float  # wall time of this epoch
    grad_norms: dict[str, float] | None = None  # ||dW[l]||_F of the epoch's last mini-batch, keyed "W1".. (if asked)


def minibatches(m: int, batch_size: int | None, perm: np.ndarray | None) -> list[np.ndarray | slice]:
    """Column selections for one epoch: floor(m / size) full batches and one smaller final batch.

    perm is the epoch's shuffled order of range(m) (None: keep the order). A full batch without a
    shuffle is the slice of everything, so no copy of X is made.
    """
    if batch_size is None or batch_size >= m:
        return [slice(None) if perm is None else perm]
    order = np.arange(m) if perm is None else perm
    return [order[i : i + batch_size] for i in range(0, m, batch_size)]


def check_finite(epoch: int, cost: float, params: dict, check_params: bool = True) -> None:
    """Raise Diverged naming the epoch and the first array that is no longer finite.

    A non-finite parameter makes the next step's cost non-finite, so the loop checks the
    parameters themselves (one pass over every array) only after the last epoch or when the cost
    is already bad, to name the culprit; on tiny networks that pass costs as much as a step.
    """
    if math.isfinite(cost) and not check_params:
        return
    bad = [k for k, p in params.items() if not np.isfinite(p).all()]
    if math.isfinite(cost) and not bad:
        return
    what = f"parameter {bad[0]} has non-finite values" if bad else f"the cost is {cost}"
    raise Diverged(
        f"training diverged at epoch {epoch}: {what}; try a lower optimizer.learning_rate "
        "(or a decay schedule, or batch normalization)"
    )


def train_epochs(
    X,
    Y,
    params: dict,
    state: dict,
    net: Network,
    optimizer,
    schedule: Callable[[int], float],
    epochs: int,
    batch_size: int | None = None,
    permutation: Callable[[int], np.ndarray] | None = None,
    dropout_rng: Callable[[], object] | None = None,
    augment: Callable[[int, np.ndarray], np.ndarray] | None = None,
    start_epoch: int = 0,
    grad_norms: bool = False,
    accumulate: int | None = None,
):
    """Train in place, yielding one EpochResult per epoch; raise Diverged on divergence.

    X (n_x, m), Y (n_L, m). `permutation(epoch)` gives the epoch's shuffled order (None: no
    shuffle); `dropout_rng()` gives the generator for one forward pass's masks (the course
    re-seeds it every pass, the modern mode returns the run's generator); `augment(epoch, X)`
    returns the epoch's (n_x, m) training inputs. None of them is called when not needed, so
    turning a feature off never shifts another feature's random stream.
    `grad_norms`: also report each weight gradient's Frobenius norm (for vanishing/exploding
    gradients); off by default so the hot path does no extra work.
    `accumulate`: examples per chunk of a full-batch step whose one product would not fit in memory:
    the step's cost and gradients are summed chunk by chunk (engine.accumulate), no float copy of the
    whole split is made. None: one product, as the course computes it.
    """
    m = X.shape[1]
    full_batch = batch_size is None or batch_size >= m
    accumulate = accumulate if full_batch and accumulate is not None and accumulate < m else None
    # X is an array, or examples held raw that serve normalized columns (dltrain.data.examples): then
    # each mini-batch is normalized into a reused buffer, and only full-batch training holds the
    # whole normalized split (the single product the course computes), made once per epoch's inputs.
    served = hasattr(X, "columns")
    # Examples as rows in memory make gathering a shuffled mini-batch a copy of contiguous rows;
    # the transposed view hands the engine the course's (n_x, m_batch) layout without a copy.
    # commands.build stores X column-major (each example contiguous), so X.T is already that array and
    # nothing is copied here; a row-major X is copied once.
    rows_X = np.ascontiguousarray(X.T) if not full_batch and not served else None
    rows_Y = np.ascontiguousarray(Y.T) if not full_batch else None
    X_full = np.asarray(X) if full_batch and served and augment is None and accumulate is None else None
    use_dropout = net.has_dropout
    use_bn = any(s.batch_norm for s in net.layers)
    grads = None  # each step's weight gradients are written into the previous step's arrays
    for epoch in range(start_epoch, epochs):
        started = time.perf_counter()
        if augment is not None:
            X_epoch = augment(epoch, X)
            if served and full_batch and accumulate is None:
                X_full = np.asarray(X_epoch)
            elif rows_X is not None:
                rows_X = np.ascontiguousarray(X_epoch.T)
        else:
            X_epoch = X
        if hasattr(X_epoch, "check"):
            X_epoch.check(epoch)
        lr = schedule(epoch)
        perm = permutation(epoch) if permutation is not None and not full_batch else None
        data_total = penalty_total = 0.0
        norms = None
        for cols in minibatches(m, batch_size, perm):
            rng = dropout_rng() if use_dropout else None
            if accumulate is not None:
                data_cost, pen, grads = accumulated_step(X_epoch, Y, params, net, accumulate, rng, out=grads)
                mb = m
            else:
                if full_batch:
                    Xb, Yb = (X_full if served else X_epoch), Y
                elif served:
                    Xb, Yb = X_epoch.columns(cols), rows_Y[cols].T
                else:
                    Xb, Yb = rows_X[cols].T, rows_Y[cols].T
                AL, cache = forward(Xb, params, net, state, training=True, dropout_rng=rng)
                data_cost, pen = compute_cost(AL, cache, Yb, params, net, m)
                mb = Yb.shape[1]
                grads = backward(AL, Yb, cache, params, net, m, out=grads)
                if use_bn:
                    update_running_stats(state, cache, net.bn_momentum)
            data_total += data_cost * mb
            penalty_total += pen * mb
            if grad_norms:
                # Taken before the update, in case an optimizer ever reuses the gradient buffers.
                norms = {k: float(np.linalg.norm(grads[k])) for k in net.weight_keys}
            optimizer.step(params, grads, lr)
        data_cost, pen = data_total / m, penalty_total / m
        check_finite(epoch, data_cost + pen, params, check_params=epoch == epochs - 1)
        yield EpochResult(
            epoch, data_cost + pen, data_cost, pen, lr, optimizer.t, time.perf_counter() - started,
            norms,
        )


class EarlyStopping:
    """Keras semantics: stop after `patience` epochs without an improvement larger than min_delta.

    mode "min" for costs, "max" for accuracies. With restore_best, the best params and state are
    copied when seen, and `restore(params, state)` writes them back in place.
    """

    def __init__(self, patience: int, min_delta: float = 0.0, mode: str = "min", restore_best: bool = True):
        self.patience, self.min_delta, self.restore_best = patience, min_delta, restore_best
        self.sign = 1.0 if mode == "min" else -1.0
        self.best = np.inf
        self.best_epoch = None
        self.wait = 0
        self._best_arrays = None

    def update(self, epoch: int, value: float, params: dict, state: dict) -> bool:
        """Record this epoch's monitored value; True when training should stop."""
        score = self.sign * value
        if score < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = score, epoch, 0
            if self.restore_best:
                self._best_arrays = ({k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in state.items()})
            return False
        self.wait += 1
        return self.wait >= self.patience

    @property
    def best_value(self) -> float:
        return self.sign * self.best

    def restore(self, params: dict, state: dict) -> None:
        """Write the best weights (and batch-norm statistics) back into params and state."""
        if self._best_arrays is None:
            return
        for target, source in zip((params, state), self._best_arrays):
            for k, v in source.items():
                target[k][...] = v

    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to continue (like the optimizers'): 'best', 'best_epoch' (-1: none), 'wait',
        and the best arrays as 'params/W1', 'state/mean1', ..."""
        out = {"best": np.asarray(self.best), "best_epoch": np.asarray(-1 if self.best_epoch is None else self.best_epoch),
               "wait": np.asarray(self.wait)}
        for slot, arrays in zip(("params", "state"), self._best_arrays or ()):
            out.update({f"{slot}/{k}": v for k, v in arrays.items()})
        return out

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        self.best, self.wait = float(arrays["best"]), int(arrays["wait"])
        self.best_epoch = None if int(arrays["best_epoch"]) < 0 else int(arrays["best_epoch"])
        if any(key.startswith("params/") for key in arrays):
            self._best_arrays = tuple({k.split("/", 1)[1]: np.array(v) for k, v in arrays.items() if k.startswith(f"{slot}/")}
                                      for slot in ("params", "state"))
