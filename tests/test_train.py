import numpy as np

from dltrain.engine.train import EarlyStopping, minibatches


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
