"""dltrain: config-driven deep-learning experiments on a NumPy engine in the course's notation.

The Python API (the same functions the `dltrain` command calls)::

    import dltrain
    cfg = dltrain.load_config("configs/planar.yaml", overrides=["training.epochs=2000"])
    run = dltrain.train(cfg)                  # -> Run: run.history, run.metrics, run.plot("cost")
    AL = run.predict(X)                       # X (n_x, m) raw inputs -> AL (n_L, m) probabilities
    dltrain.gradcheck(cfg).verdict            # 'pass'

Names load on first use, so `import dltrain` costs no NumPy, matplotlib or h5py.
"""

import importlib

__version__ = "0.1.0"

# public name -> (module, attribute)
_API = {
    "load_config": ("dltrain.config", "load_config"),
    "Config": ("dltrain.config", "Config"),
    "train": ("dltrain.commands.train", "train"),
    "resume": ("dltrain.commands.train", "resume"),
    "Run": ("dltrain.commands.run", "Run"),
    "History": ("dltrain.commands.run", "History"),
    "Curve": ("dltrain.commands.run", "Curve"),
    "open_run": ("dltrain.commands.run", "open_run"),
    "evaluate": ("dltrain.commands.evaluate", "evaluate"),
    "predict": ("dltrain.commands.predict", "predict"),
    "gradcheck": ("dltrain.commands.gradcheck", "gradcheck"),
    "search": ("dltrain.commands.search", "search"),
    "reproduce": ("dltrain.commands.reproduce", "reproduce"),
    "list_runs": ("dltrain.commands.runs", "list_runs"),
    "compare": ("dltrain.commands.runs", "compare_runs"),
    "report": ("dltrain.commands.report", "report"),
    "list_datasets": ("dltrain.commands.datasets", "list_datasets"),
    "dataset_info": ("dltrain.commands.datasets", "dataset_info"),
    "export": ("dltrain.commands.export", "export"),
    "log": ("dltrain.commands.log", "log"),
    "import_images": ("dltrain.data.images", "import_image_folder"),
    "DltrainError": ("dltrain.errors", "DltrainError"),
    "Interrupted": ("dltrain.errors", "Interrupted"),
    "Diverged": ("dltrain.errors", "Diverged"),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'dltrain' has no attribute {name!r}")
    module, attribute = _API[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted([*globals(), *_API])
