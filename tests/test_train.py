import numpy as np
import pytest

from dltrain.engine.activations import ACTIVATIONS
from dltrain.engine.initializers import INITIALIZERS
from dltrain.engine.losses import LOSSES
from dltrain.engine.model import LayerSpec, Network, backward, forward, init_params
from dltrain.engine.optimizers import GD, Adam
from dltrain.engine.train import EarlyStopping, minibatches, train_epochs


def test_minibatch_partition_148_by_64():
    perm = np.random.RandomState(0).permutation(148)
    batches = minibatches(148, 64, perm)
    assert [len(b) for b in batches] == [64, 64, 20]
    assert sorted(np.concatenate(batches).tolist()) == list(range(148))
    np.testing.assert_array_equal(np.concatenate(batches), perm)


def test_full_batch_is_a_slice():
    assert minibatches(10, None, None) == [slice(None)]


def test_early_stopping_scripted_sequence_restores_best():
    stopper = EarlyStopping(patience=3, min_delta=0.01)
    params, state = {"W1": np.zeros((1, 1))}, {}
    costs = [1.0, 0.8, 0.7, 0.695, 0.72, 0.75, 0.9]
    stopped = None
    for epoch, cost in enumerate(costs):
        params["W1"][...] = epoch
        if stopper.update(epoch, cost, params, state):
            stopped = epoch
            break
    # 0.695 is not better than 0.7 by more than min_delta, so the best stays epoch 2
    assert (stopped, stopper.best_epoch, stopper.best_value) == (5, 2, 0.7)
    stopper.restore(params, state)
    assert params["W1"][0, 0] == 2


def test_early_stopping_max_mode():
    stopper = EarlyStopping(patience=2, mode="max")
    p = {"W1": np.zeros(1)}
    assert [stopper.update(e, v, p, {}) for e, v in enumerate([0.5, 0.6, 0.6, 0.55])] == [False, False, False, True]
    assert stopper.best_epoch == 1


def test_float32_run_stays_float32(rng):
    """Data, params, batch-norm state, gradients and optimizer state keep float32 through an epoch."""
    f32 = np.float32
    specs = (LayerSpec(6, ACTIVATIONS["relu"], batch_norm=True, keep_prob=0.8), LayerSpec(5, ACTIVATIONS["tanh"]),
             LayerSpec(3, ACTIVATIONS["softmax"]))
    net = Network(4, specs, LOSSES["softmax"], l2=0.1, l1=0.01)
    params, state = init_params(net, INITIALIZERS["he"], rng, 1.0, dtype=f32)
    X = rng.standard_normal((4, 50), dtype=f32)
    Y = np.eye(3, dtype=f32)[:, rng.integers(0, 3, 50)]
    optimizer = Adam()
    grads_seen = []
    step = optimizer.step
    optimizer.step = lambda p, g, lr: (grads_seen.append({k: v.dtype for k, v in g.items()}), step(p, g, lr))
    result = next(train_epochs(X, Y, params, state, net, optimizer, lambda e: 0.01, 1, batch_size=16,
                               permutation=lambda e: rng.permutation(50), dropout_rng=lambda: rng))
    assert result.iterations == 4 and np.isfinite(result.cost)
    assert all(dt == f32 for g in grads_seen for dt in g.values())
    arrays = {**params, **state, **{f"v/{k}": a for k, a in optimizer.v.items()}, **{f"s/{k}": a for k, a in optimizer.s.items()}}
    assert len(optimizer.v) == len(params)
    assert {k: a.dtype for k, a in arrays.items()} == {k: np.dtype(f32) for k in arrays}
    AL, _ = forward(X, params, net, state, training=False)
    assert AL.dtype == f32


def test_float32_is_stable_at_extreme_logits():
    Z = np.array([[-1000.0, -90.0, 0.0, 90.0, 1000.0]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is the right answer
        A = ACTIVATIONS["sigmoid"].forward(Z)
        cost = LOSSES["sigmoid"](Z, A, np.ones_like(Z))
    assert A.dtype == np.float32 and A[0, 0] == 0.0 and A[0, -1] == 1.0
    # -log sigmoid(z) summed: 1000 + 90 + log 2 + ~0 + 0, with no overflow and no log(0)
    assert cost == pytest.approx(1090 + np.log(2), rel=1e-6)


def _tiny_problem():
    rs = np.random.RandomState(3)
    X, Y = rs.randn(3, 20), (rs.rand(1, 20) > 0.5).astype(float)
    net = Network(3, (LayerSpec(4, ACTIVATIONS["tanh"]), LayerSpec(1, ACTIVATIONS["sigmoid"])), LOSSES["sigmoid"])
    params, state = init_params(net, INITIALIZERS["he"], np.random.RandomState(1), 1.0)
    return X, Y, net, params, state


def test_grad_norms_are_those_of_the_last_batch_before_its_update():
    X, Y, net, params, state = _tiny_problem()
    # With batches of 8 the last batch of epoch 0 is columns 16..19 (no shuffle); its gradient is
    # taken at the params left after the first two updates.
    shadow = {k: v.copy() for k, v in params.items()}
    for cols in (slice(0, 8), slice(8, 16)):
        AL, cache = forward(X[:, cols], shadow, net)
        for k, g in backward(AL, Y[:, cols], cache, shadow, net, 20).items():
            shadow[k] -= 0.1 * g
    AL, cache = forward(X[:, 16:], shadow, net)
    expected = {k: np.linalg.norm(g) for k, g in backward(AL, Y[:, 16:], cache, shadow, net, 20).items() if k[0] == "W"}
    r = next(train_epochs(X, Y, params, state, net, GD(), lambda e: 0.1, 1, batch_size=8, grad_norms=True))
    assert r.grad_norms.keys() == expected.keys()
    for k in expected:
        assert r.grad_norms[k] == pytest.approx(expected[k], rel=1e-12)


def test_grad_norms_off_by_default():
    X, Y, net, params, state = _tiny_problem()
    assert next(train_epochs(X, Y, params, state, net, GD(), lambda e: 0.1, 1)).grad_norms is None
