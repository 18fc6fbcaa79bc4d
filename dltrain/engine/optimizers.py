"""Optimizers: step(params, grads, lr) updates params in place.

Per-parameter state lives in dicts keyed by the parameter's name (v["W1"], s["gamma2"]), created
lazily; `t` counts update steps (one per mini-batch). The learning rate is passed in, never owned.

Every update is written with `out=` into per-parameter scratch arrays (Adam on arrays of
kernels.COMPILED_MIN elements or more: one compiled loop), so a step allocates nothing: on large
layers fresh temporaries cost more than the arithmetic (page faults, cache misses). The order of
operations is the course's, so results are bit-for-bit its formulas, except the compiled Adam loop,
which uses an algebraically equal order with fewer divisions (see kernels.adam_update). Scratch
arrays have the gradient's dtype, so a float32 run stays float32.
"""

import numpy as np

from dltrain.engine import kernels


class GD:
    """theta -= lr * g."""

    def __init__(self):
        self.t = 0
        self._scratch = {}  # name -> one or two arrays shaped like the parameter; not state

    def scratch(self, name: str, g: np.ndarray, count: int = 1) -> list[np.ndarray]:
        """`count` reusable arrays shaped and typed like g, created on the first step."""
        bufs = self._scratch.get(name)
        if bufs is None:
            bufs = self._scratch[name] = [np.empty_like(g) for _ in range(count)]
        return bufs

    def step(self, params, grads, lr):
        self.t += 1
        lr = float(lr)  # a NumPy float64 scalar would promote a float32 product to float64
        for k, g in grads.items():
            (tmp,) = self.scratch(k, g)
            np.multiply(g, lr, out=tmp)
            params[k] -= tmp

    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to continue: arrays keyed 'v/W1', 's/W1', ..., and 't'."""
        out = {"t": np.asarray(self.t)}
        for slot in ("v", "s"):
            for k, a in getattr(self, slot, {}).items():
                out[f"{slot}/{k}"] = a
        return out

    def load_state_dict(self, arrays: dict[str, np.ndarray]):
        self.t = int(arrays["t"])
        for key, a in arrays.items():
            if "/" in key:
                slot, k = key.split("/", 1)
                # Native byte order: a checkpoint written on a big-endian machine reads back big-endian.
                getattr(self, slot)[k] = np.array(a, dtype=a.dtype.newbyteorder("="))


class Momentum(GD):
    """v = beta v + (1 - beta) g; theta -= lr v (the course's exponentially weighted form)."""

    def __init__(self, beta=0.9):
        super().__init__()
        self.beta = beta
        self.v = {}

    def step(self, params, grads, lr):
        self.t += 1
        lr, beta = float(lr), self.beta
        for k, g in grads.items():
            v = self.v.get(k)
            if v is None:
                v = self.v[k] = np.zeros_like(g)
            (tmp,) = self.scratch(k, g)
            v *= beta
            v += np.multiply(g, 1.0 - beta, out=tmp)
            params[k] -= np.multiply(v, lr, out=tmp)


class RMSprop(GD):
    """s = beta2 s + (1 - beta2) g^2; theta -= lr g / (sqrt(s) + epsilon)."""

    def __init__(self, beta2=0.999, epsilon=1e-8):
        super().__init__()
        self.beta2, self.epsilon = beta2, epsilon
        self.s = {}

    def step(self, params, grads, lr):
        self.t += 1
        lr, beta2 = float(lr), self.beta2
        for k, g in grads.items():
            s = self.s.get(k)
            if s is None:
                s = self.s[k] = np.zeros_like(g)
            tmp, denom = self.scratch(k, g, 2)
            s *= beta2
            np.multiply(g, g, out=tmp)
            s += np.multiply(tmp, 1.0 - beta2, out=tmp)
            np.sqrt(s, out=denom)
            denom += self.epsilon
            np.multiply(g, lr, out=tmp)
            params[k] -= np.divide(tmp, denom, out=tmp)


class Adam(GD):
    """Momentum and RMSprop with bias correction: theta -= lr v^ / (sqrt(s^) + epsilon)."""

    def __init__(self, beta1=0.9, beta2=0.999, epsilon=1e-8):
        super().__init__()
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.v, self.s = {}, {}

    def step(self, params, grads, lr):
        self.t += 1
        t = self.t
        c1, c2 = 1.0 - self.beta1**t, 1.0 - self.beta2**t
        lr = float(lr)
        for k, g in grads.items():
            v = self.v.get(k)
            if v is None:
                v = self.v[k] = np.zeros_like(g)
                self.s[k] = np.zeros_like(g)
            if g.size >= kernels.COMPILED_MIN:
                # One compiled pass instead of NumPy's 14 (the update was a fifth of a wide net's step);
                # smaller arrays, such as the course's networks, keep the course's order below.
                kernels.adam_update(params[k], g, v, self.s[k], self.beta1, self.beta2, c1, c2, lr, self.epsilon)
            else:
                self._update(params[k], g, v, self.s[k], *self.scratch(k, g, 2), lr, c1, c2)

    def _update(self, theta, g, v, s, tmp, denom, lr, c1, c2):
        """The same update with NumPy, in place; tmp and denom are scratch."""
        beta1, beta2 = self.beta1, self.beta2
        v *= beta1
        v += np.multiply(g, 1.0 - beta1, out=tmp)
        s *= beta2
        np.multiply(g, g, out=tmp)
        s += np.multiply(tmp, 1.0 - beta2, out=tmp)
        np.divide(s, c2, out=denom)
        np.sqrt(denom, out=denom)
        denom += self.epsilon
        np.divide(v, c1, out=tmp)
        tmp *= lr
        theta -= np.divide(tmp, denom, out=tmp)


OPTIMIZERS = {"gd": GD, "momentum": Momentum, "rmsprop": RMSprop, "adam": Adam}
