"""Pure NumPy engine in the course's notation: X is (n_x, m), W{l} is (n_l, n_{l-1}), b{l} is (n_l, 1)."""
