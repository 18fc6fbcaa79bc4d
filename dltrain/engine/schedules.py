"""Learning-rate schedules: lr = schedule(lr0, epoch, **hyperparameters), pure functions.

The decay schedules follow the course: the decay is applied at the end of each epoch, so epoch 0
trains at lr0 and epoch e >= 1 at schedule(lr0, e - 1) (their `epoch` counts the epochs done).
`step` is a table of the rates epochs train with: rates {E: r} trains epoch E and later at r, so
its `epoch` is the training epoch itself. `trained_rate` applies the two conventions.
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
    """Manual decay: the rate of the latest milestone epoch <= epoch in `rates` {epoch: lr}, else lr0.

    `epoch` is the epoch that trains at the rate (not shifted by one, see trained_rate)."""
    reached = [e for e in rates if e <= epoch]
    return rates[max(reached)] if reached else lr0


def trained_rate(schedule, lr0, epoch, **hyperparameters):
    """The rate training epoch `epoch` (0-based) trains with: lr0 for epoch 0 and schedule(lr0,
    epoch - 1) after, the course's decay at the end of each epoch; step(lr0, epoch) for `step`,
    whose milestones name the first epoch trained at their rate."""
    if schedule is step:
        return step(lr0, epoch, **hyperparameters)
    return lr0 if epoch == 0 else schedule(lr0, epoch - 1, **hyperparameters)


SCHEDULES = {
    "constant": constant,
    "inverse_time": inverse_time,
    "interval": interval,
    "exponential": exponential,
    "inverse_sqrt": inverse_sqrt,
    "step": step,
}
