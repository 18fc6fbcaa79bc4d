"""Learning-rate schedules: lr = schedule(lr0, epoch, **hyperparameters), pure functions.

The training loop calls them once per epoch, so epoch 0 trains at lr0 and the decay applies at
the end of each epoch, as in the course.
"""

import math


def constant(lr0, epoch):
    """lr0."""
    return lr0


def inverse_time(lr0, epoch, decay_rate):
    """lr0 / (1 + decay_rate * epoch)."""
    return lr0 / (1 + decay_rate * epoch)


def interval(lr0, epoch, decay_rate, time_interval=1000):
    """lr0 / (1 + decay_rate * floor(epoch / time_interval)): the course's scheduled decay."""
    return lr0 / (1 + decay_rate * math.floor(epoch / time_interval))


def exponential(lr0, epoch, base=0.95):
    """lr0 * base ** epoch."""
    return lr0 * base**epoch


def inverse_sqrt(lr0, epoch, k=1.0):
    """k * lr0 / sqrt(epoch + 1)."""
    return k * lr0 / math.sqrt(epoch + 1)


def step(lr0, epoch, rates):
    """Manual decay: the rate of the latest milestone epoch <= epoch in `rates` {epoch: lr}, else lr0."""
    reached = [e for e in rates if e <= epoch]
    return rates[max(reached)] if reached else lr0


SCHEDULES = {
    "constant": constant,
    "inverse_time": inverse_time,
    "interval": interval,
    "exponential": exponential,
    "inverse_sqrt": inverse_sqrt,
    "step": step,
}
