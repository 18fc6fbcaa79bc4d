"""`dltrain gradcheck`: the configured model's backprop against two-sided numeric gradients."""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from dltrain.commands.build import (
    build_augment,
    build_dropout_rng,
    build_network,
    build_optimizer,
    build_permutation,
    build_schedule,
    full_batch_chunk,
    init_rng,
    prepare_data,
)
from dltrain.config import Config
from dltrain.engine.gradcheck import GradcheckReport, gradient_check, verdict
from dltrain.engine.initializers import INITIALIZERS
from dltrain.engine.model import (
    ForwardCache,
    Network,
    backward,
    compute_cost,
    forward,
    init_params,
)
from dltrain.engine.train import train_epochs


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
                              build_permutation(cfg, rng, X.shape[1]), build_dropout_rng(cfg, rng), augment,
                              accumulate=full_batch_chunk(cfg, net, data)):
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
