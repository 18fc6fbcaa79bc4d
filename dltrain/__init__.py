"""dltrain: config-driven deep-learning experiments on a NumPy engine in the course's notation."""

__version__ = "0.1.0"
