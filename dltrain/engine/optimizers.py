"""Optimizers: step(params, grads, lr) updates params in place.

Per-parameter state lives in dicts keyed by the parameter's name (v["W1"], s["gamma2"]), created
lazily; `t` counts update steps (one per mini-batch). The learning rate is passed in, never owned.
"""

import numpy as np


class GD:
    """theta -= lr * g."""

    def __init__(self):
        self.t = 0

    def step(self, params, grads, lr):
        self.t += 1
        for k, g in grads.items():
            params[k] -= lr * g

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
                getattr(self, slot)[k] = np.array(a)


class Momentum(GD):
    """v = beta v + (1 - beta) g; theta -= lr v (the course's exponentially weighted form)."""

    def __init__(self, beta=0.9):
        super().__init__()
        self.beta = beta
        self.v = {}

    def step(self, params, grads, lr):
        self.t += 1
        beta = self.beta
        for k, g in grads.items():
            v = self.v.setdefault(k, np.zeros_like(g))
            v *= beta
            v += (1.0 - beta) * g
            params[k] -= lr * v


class RMSprop(GD):
    """s = beta2 s + (1 - beta2) g^2; theta -= lr g / (sqrt(s) + epsilon)."""

    def __init__(self, beta2=0.999, epsilon=1e-8):
        super().__init__()
        self.beta2, self.epsilon = beta2, epsilon
        self.s = {}

    def step(self, params, grads, lr):
        self.t += 1
        beta2 = self.beta2
        for k, g in grads.items():
            s = self.s.setdefault(k, np.zeros_like(g))
            s *= beta2
            s += (1.0 - beta2) * (g * g)
            params[k] -= lr * g / (np.sqrt(s) + self.epsilon)


class Adam(GD):
    """Momentum and RMSprop with bias correction: theta -= lr v^ / (sqrt(s^) + epsilon)."""

    def __init__(self, beta1=0.9, beta2=0.999, epsilon=1e-8):
        super().__init__()
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.v, self.s = {}, {}

    def step(self, params, grads, lr):
        self.t += 1
        beta1, beta2, t = self.beta1, self.beta2, self.t
        c1, c2 = 1.0 - beta1**t, 1.0 - beta2**t
        for k, g in grads.items():
            v = self.v.setdefault(k, np.zeros_like(g))
            s = self.s.setdefault(k, np.zeros_like(g))
            v *= beta1
            v += (1.0 - beta1) * g
            s *= beta2
            s += (1.0 - beta2) * (g * g)
            params[k] -= lr * (v / c1) / (np.sqrt(s / c2) + self.epsilon)


OPTIMIZERS = {"gd": GD, "momentum": Momentum, "rmsprop": RMSprop, "adam": Adam}
