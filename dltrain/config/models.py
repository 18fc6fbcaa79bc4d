"""The config's section models: pydantic, extra keys forbidden everywhere, defaults resolved here."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError


class Strict(BaseModel):
    # Every float must be finite: inf or nan would only surface later as a diverged or empty run.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


_MISSING = object()


def field_error(path: str, allowed: str, got: Any = _MISSING) -> PydanticCustomError:
    """A validator's complaint about one field below the value it validates, for format_errors.

    `path` is relative to that value ('layers[2]' in a model validator of `model`, '[1]' in a field
    validator of a list, '' for the value itself); `got` is the field's value, left out for a key
    that is missing. Without this, a model validator's error would name only its section and quote
    the whole section as the value received.
    """
    ctx = {"field": path, "allowed": allowed} if got is _MISSING else {"field": path, "allowed": allowed, "got": got}
    return PydanticCustomError("field", "{allowed}", ctx)


MAX_SEED = 2**32 - 1  # numpy's RandomState takes seeds in [0, 2**32 - 1]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
# A file or folder name: no NUL byte (no operating system takes one), at most PATH_MAX characters.
PathText = Annotated[str, Field(pattern=r"^[^\x00]{0,4096}$")]
MAX_GENERATED = 10_000_000  # examples a generated dataset may have


# ---- data -------------------------------------------------------------------------------------


class AugmentConfig(Strict):
    hflip: bool = Field(False, description="each epoch, mirror a random half of the training images left-right")


class DataBase(Strict):
    dev_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="share of train carved out as dev (stratified)")
    dev_size: int | None = Field(None, ge=1, description="number of train examples carved out as dev (instead of dev_fraction)")
    test_fraction: float | None = Field(
        None, gt=0.0, lt=1.0, description="share of train carved out as test, for data without a test part"
    )
    split_seed: Seed = Field(0, description="seed of the stratified dev/test carving (independent of the init seed)")
    normalize: Literal["none", "scale", "standardize"] = Field(
        "none", description="scale: /255 for images; standardize: per-feature train mean/std"
    )
    augment: AugmentConfig = AugmentConfig()
    human_error: float = Field(
        0.0, ge=0.0, lt=1.0, description="human-level error (a fraction) as the Bayes-error proxy of the bias/variance diagnosis"
    )

    def own_test(self) -> str | None:
        """Why this config already has a test set (so test_fraction cannot apply), or None."""
        return None

    @model_validator(mode="after")
    def _check_splits(self):
        if self.dev_size is not None and self.dev_fraction > 0:
            raise field_error("dev_size", f"give dev_fraction or dev_size, not both (dev_fraction is {self.dev_fraction})", self.dev_size)
        if self.test_fraction is not None:
            reason = self.own_test()
            if reason:
                raise field_error("test_fraction", f"test_fraction is only for data without a test part, but {reason}", self.test_fraction)
            if self.dev_fraction + self.test_fraction >= 1:
                raise field_error("test_fraction", f"dev_fraction + test_fraction must be below 1 to leave training examples "
                                                   f"(dev_fraction is {self.dev_fraction})", self.test_fraction)
        return self


class CatData(DataBase):
    dataset: Literal["cat"]
    dir: PathText = Field("datasets", description="folder holding train_catvnoncat.h5 and test_catvnoncat.h5")
    normalize: Literal["none", "scale", "standardize"] = "scale"

    def own_test(self):
        return "cat has its own test file"


class SignsData(DataBase):
    dataset: Literal["signs"]
    dir: PathText = Field("datasets", description="folder holding train_signs.h5 and test_signs.h5")
    normalize: Literal["none", "scale", "standardize"] = "scale"

    def own_test(self):
        return "signs has its own test file"


class PlanarData(DataBase):
    dataset: Literal["planar"]
    seed: Seed = Field(1, description="RandomState seed of the flower generator")


class GeneratedTest(Strict):
    seed: Seed
    n_samples: int = Field(ge=1, le=MAX_GENERATED)


class MoonsData(DataBase):
    dataset: Literal["moons"]
    seed: Seed = Field(3, description="RandomState seed, as np.random.seed before make_moons")
    n_samples: int = Field(300, ge=2, le=MAX_GENERATED)
    noise: float = Field(0.2, ge=0.0)
    test: GeneratedTest | None = Field(None, description="generate a test set with its own seed and size")

    def own_test(self):
        return "data.test generates one" if self.test is not None else None


class CirclesData(DataBase):
    dataset: Literal["circles"]
    seed: Seed = Field(1, description="RandomState seed, as np.random.seed before make_circles")
    n_samples: int = Field(300, ge=2, le=MAX_GENERATED)
    noise: float = Field(0.05, ge=0.0)
    factor: float = Field(0.8, gt=0.0, lt=1.0)
    test: GeneratedTest | None = Field(
        GeneratedTest(seed=2, n_samples=100), description="generate a test set with its own seed and size"
    )

    def own_test(self):
        return "data.test generates one (set test: null to carve one instead)" if self.test is not None else None


FILE_SUFFIXES = (".npz", ".h5", ".hdf5", ".mat", ".csv")


class FileData(DataBase):
    dataset: Literal["file"]
    path: PathText = Field(description="a .npz, .h5/.hdf5, .mat (MATLAB) or .csv file; the suffix selects the reader")
    x_train: str = Field("x_train", description="key of the training features")
    y_train: str = Field("y_train", description="key of the training labels")
    x_test: str | None = Field("x_test", description="key of the test features; the default is used if the file has it, "
                                                   "another name is required, null: no test part")
    y_test: str | None = Field("y_test", description="key of the test labels (as x_test)")
    layout: Literal["rows", "columns"] = Field("rows", description="rows: one example per row (m, ...); columns: (n_x, m)")
    label_column: str | None = Field(None, description="csv only: the header name of the label column (numbers 0..C-1, "
                                                       "or text labels: classes in sorted order, or in the order of classes)")
    classes: list[str] | None = Field(None, min_length=2, description="class names for labels 0..C-1; default '0'..'C-1' "
                                                                     "(a csv's text labels by default)")
    stream: bool | Literal["auto"] = Field(
        "auto", description="read mini-batches from the .h5/.hdf5 file instead of loading it (docs/large-datasets.md): "
                            "true, false, or auto: stream when the features' raw size exceeds the memory budget and training uses mini-batches"
    )

    @field_validator("path")
    @classmethod
    def _check_suffix(cls, path):
        if not path.lower().endswith(FILE_SUFFIXES):
            raise ValueError(f"path must end in {', '.join(FILE_SUFFIXES)} (the suffix selects the reader)")
        return path

    @model_validator(mode="after")
    def _check_csv(self):
        is_csv = self.path.lower().endswith(".csv")
        if is_csv and self.label_column is None:
            raise field_error("label_column", "a .csv file needs label_column: the header name of the column holding the labels")
        if not is_csv and self.label_column is not None:
            raise field_error("label_column", "label_column is only for .csv files; name arrays with x_train/y_train/x_test/y_test",
                              self.label_column)
        keys = [k for k in ("x_train", "y_train", "x_test", "y_test") if getattr(self, k) != type(self).model_fields[k].default]
        if is_csv and keys:
            raise field_error(keys[0], f"a .csv file has one table: drop {', '.join(keys)} (carve a test set with test_fraction)",
                              getattr(self, keys[0]))
        if (self.x_test is None) != (self.y_test is None):
            null, other = ("x_test", "y_test") if self.x_test is None else ("y_test", "x_test")
            raise field_error(null, f"set both x_test and y_test, or both to null ({other} is {getattr(self, other)!r})", None)
        if self.stream is True and not self.path.lower().endswith((".h5", ".hdf5")):
            raise field_error("stream", f"stream: true reads an .h5/.hdf5 file; {self.path} is read whole (set stream: false or auto)", True)
        if self.stream is True and self.layout != "rows":
            raise field_error("stream", "stream: true needs layout: rows (each example stored contiguously); convert the file or set stream: false", True)
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            repeated = next(c for c in self.classes if self.classes.count(c) > 1)
            raise field_error("classes", f"classes must be distinct names ({repeated!r} is repeated)", self.classes)
        return self


class ImagesData(DataBase):
    dataset: Literal["images"]
    path: PathText = Field(description="h5 file in the course layout (train_set_x, train_set_y, list_classes), "
                                  "e.g. written by `dltrain datasets import`; its test_set_x/test_set_y are the test part")
    test_path: PathText | None = Field(None, description="separate h5 file holding test_set_x/test_set_y (as the course ships them)")
    normalize: Literal["none", "scale", "standardize"] = "scale"
    stream: bool | Literal["auto"] = Field(
        "auto", description="read mini-batches from the .h5/.hdf5 file instead of loading it (docs/large-datasets.md): "
                            "true, false, or auto: stream when the features' raw size exceeds the memory budget and training uses mini-batches"
    )

    @field_validator("path", "test_path")
    @classmethod
    def _check_suffix(cls, path):
        if path is not None and not path.lower().endswith((".h5", ".hdf5")):
            raise ValueError("expected an .h5 or .hdf5 file in the course layout (see `dltrain datasets import`)")
        return path

    def own_test(self):
        return "test_path is set" if self.test_path is not None else None


DataConfig = Annotated[
    CatData | SignsData | PlanarData | MoonsData | CirclesData | FileData | ImagesData, Field(discriminator="dataset")
]

# ---- model, init ------------------------------------------------------------------------------


class ModelConfig(Strict):
    layers: list[int | Literal["auto"]] = Field(
        description="units per layer from input to output; the first may be 'auto' (n_x from the data)"
    )
    hidden_activation: Literal["relu", "leaky_relu", "tanh", "sigmoid"] = "relu"
    leaky_relu_slope: float = Field(0.01, gt=0.0, lt=1.0)
    output_activation: Literal["sigmoid", "softmax"] = "sigmoid"
    batch_norm: bool = Field(False, description="batch normalization on every hidden layer (gamma, beta replace b)")
    batch_norm_momentum: float = Field(0.9, ge=0.0, lt=1.0, description="running mean/var: m * running + (1 - m) * batch")
    batch_norm_epsilon: float = Field(1e-5, gt=0.0, description="added to the variance before the square root")

    @field_validator("layers")
    @classmethod
    def _check_sizes(cls, layers):
        if len(layers) < 2:
            raise ValueError("layers needs the input size and at least one layer, e.g. [auto, 4, 1]")
        for i, n in enumerate(layers):
            if i == 0 and n == "auto":
                continue
            if n == "auto":
                raise field_error(f"[{i}]", "a whole number >= 1 ('auto' only as the input size, layers[0])", n)
            if n < 1:
                raise field_error(f"[{i}]", "a whole number >= 1 or 'auto'" if i == 0 else "a whole number >= 1", n)
        return layers

    @model_validator(mode="after")
    def _check_output(self):
        last, n_out = f"layers[{len(self.layers) - 1}]", self.layers[-1]
        if self.output_activation == "softmax" and n_out < 2:
            raise field_error(last, "softmax needs at least 2 output units (one per class)", n_out)
        if self.output_activation == "sigmoid" and n_out != 1:
            raise field_error(last, "a sigmoid output has exactly 1 unit; use output_activation: softmax for more than 2 classes", n_out)
        return self


class InitConfig(Strict):
    scheme: Literal["zeros", "random", "he", "xavier", "glorot"] | None = Field(
        None, description="default: he for relu/leaky_relu, xavier for tanh/sigmoid"
    )
    scale: float | None = Field(None, gt=0.0, description="multiplier; default 0.01 for random, else 1.0")


# ---- optimizer, schedule ----------------------------------------------------------------------


class OptimizerBase(Strict):
    learning_rate: float = Field(0.01, gt=0.0)


class GDConfig(OptimizerBase):
    name: Literal["gd"]


class MomentumConfig(OptimizerBase):
    name: Literal["momentum"]
    beta: float = Field(0.9, ge=0.0, lt=1.0)


class RMSpropConfig(OptimizerBase):
    name: Literal["rmsprop"]
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    epsilon: float = Field(1e-8, gt=0.0)


class AdamConfig(OptimizerBase):
    name: Literal["adam"]
    beta1: float = Field(0.9, ge=0.0, lt=1.0)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    epsilon: float = Field(1e-8, gt=0.0)


OptimizerConfig = Annotated[GDConfig | MomentumConfig | RMSpropConfig | AdamConfig, Field(discriminator="name")]


class ConstantSchedule(Strict):
    name: Literal["constant"]


class InverseTimeSchedule(Strict):
    name: Literal["inverse_time"]
    decay_rate: float = Field(ge=0.0)


class IntervalSchedule(Strict):
    name: Literal["interval"]
    decay_rate: float = Field(ge=0.0)
    time_interval: int = Field(1000, ge=1)


class ExponentialSchedule(Strict):
    name: Literal["exponential"]
    base: float = Field(0.95, gt=0.0, le=1.0)


class InverseSqrtSchedule(Strict):
    name: Literal["inverse_sqrt"]
    k: float = Field(1.0, gt=0.0)


class StepSchedule(Strict):
    name: Literal["step"]
    rates: dict[Annotated[int, Field(ge=0)], Annotated[float, Field(gt=0.0)]] = Field(
        description="epoch -> learning rate from that epoch on (manual decay)"
    )

    @field_validator("rates", mode="before")
    @classmethod
    def _epochs_from_json(cls, rates):
        # A run's config.yaml and model.h5 record the config as JSON values, whose keys are strings
        # ("12"): read back, they must be epochs again, or the run could not be evaluated or resumed.
        if isinstance(rates, dict):
            return {int(k) if isinstance(k, str) and k.isascii() and k.isdigit() else k: v for k, v in rates.items()}
        return rates


ScheduleConfig = Annotated[
    ConstantSchedule | InverseTimeSchedule | IntervalSchedule | ExponentialSchedule | InverseSqrtSchedule | StepSchedule,
    Field(discriminator="name"),
]

# ---- training ---------------------------------------------------------------------------------


class TrainingConfig(Strict):
    epochs: int = Field(1000, ge=1)
    batch_size: int | None = Field(None, ge=1, description="null: full batch; 1: stochastic GD")
    log_every: int = Field(100, ge=1, description="history.csv row every this many epochs (and the last); curve.csv has every epoch")
    shuffle_seed: Seed = Field(10, description="course mode: epoch i shuffles with RandomState(shuffle_seed + 1 + i)")
    log_norms: bool = Field(False, description="record per-layer ||W[l]|| and ||dW[l]|| in history.csv and norms.png")
    checkpoint_every: int | None = Field(
        None, ge=1, description="write checkpoint.h5 every this many epochs (null: only when interrupted)"
    )
    divergence_factor: float | None = Field(
        1000.0, gt=1.0, description="diverged when an epoch's data cost exceeds this times the untrained model's (at least ln 2); null: only non-finite"
    )

    @model_validator(mode="after")
    def _check_shuffle_seeds(self):
        if self.shuffle_seed + self.epochs > MAX_SEED:
            raise field_error("shuffle_seed", f"shuffle_seed + epochs must be at most {MAX_SEED} (epochs is {self.epochs}; "
                                              f"course mode seeds epoch i with shuffle_seed + 1 + i)", self.shuffle_seed)
        return self


# ---- regularization ---------------------------------------------------------------------------


class EarlyStoppingConfig(Strict):
    monitor: Literal["dev_cost", "dev_accuracy"] = "dev_cost"
    patience: int = Field(10, ge=1, description="epochs without improvement before stopping")
    min_delta: float = Field(0.0, ge=0.0, description="an improvement must be larger than this")
    restore_best: bool = Field(True, description="end with the weights of the best epoch")


class RegularizationConfig(Strict):
    l2: float = Field(0.0, ge=0.0, description="lambda: cost + (lambda / 2m) sum ||W||^2")
    l1: float = Field(0.0, ge=0.0, description="lambda: cost + (lambda / m) sum |W|")
    keep_prob: float | list[float] = Field(1.0, description="dropout keep probability: one value, or one per hidden layer")
    dropout_seed: Seed = Field(1, description="course mode: masks from RandomState(dropout_seed) re-created every forward pass")
    early_stopping: EarlyStoppingConfig | None = None

    @field_validator("keep_prob")
    @classmethod
    def _check_keep_prob(cls, value):
        for i, p in enumerate(value if isinstance(value, list) else [value]):
            if not 0.0 < p <= 1.0:
                raise field_error(f"[{i}]" if isinstance(value, list) else "", "keep_prob must be in (0, 1] (1 = no dropout)", p)
        return value


# ---- tracking ---------------------------------------------------------------------------------


class TrackingConfig(Strict):
    mlflow: str | None = Field(None, min_length=1, description="MLflow tracking URI (sqlite:///mlflow.db, http://host:5000, ...): "
                                                            "the finished run folder is logged there (needs the mlflow extra)")
    experiment: str | None = Field(None, min_length=1, description="MLflow experiment name (default: the config's name)")
    tensorboard: bool = Field(False, description="write TensorBoard event files (scalars per logged epoch, HParams) into the run folder")


# ---- top level --------------------------------------------------------------------------------


class Config(Strict):
    """A validated dltrain config: data, model, init, optimizer, schedule, regularization, training."""

    name: str = Field("run", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="run name: letters, digits, . _ -")
    seed: Seed = Field(1, description="seeds init (and, in modern mode, shuffling and dropout)")
    rng: Literal["course", "modern"] = Field("modern", description="course: numpy RandomState streams of the notebooks")
    dtype: Literal["float64", "float32"] = "float64"
    data: DataConfig
    model: ModelConfig
    init: InitConfig = InitConfig()
    optimizer: OptimizerConfig = GDConfig(name="gd")
    schedule: ScheduleConfig = ConstantSchedule(name="constant")
    regularization: RegularizationConfig = RegularizationConfig()
    training: TrainingConfig = TrainingConfig()
    tracking: TrackingConfig = Field(TrackingConfig(), description="copies of the run in MLflow and TensorBoard; the run folder stays the source of truth")

    @field_validator("optimizer", "schedule", mode="before")
    @classmethod
    def _default_name(cls, value, info):
        # `optimizer: {learning_rate: 0.5}` means plain gradient descent, as a user would expect.
        if isinstance(value, dict) and "name" not in value:
            return {"name": "gd" if info.field_name == "optimizer" else "constant", **value}
        return value

    @model_validator(mode="after")
    def _resolve_defaults(self):
        if self.init.scheme is None:
            self.init.scheme = "he" if self.model.hidden_activation in ("relu", "leaky_relu") else "xavier"
        if self.init.scale is None:
            self.init.scale = 0.01 if self.init.scheme == "random" else 1.0
        keep_prob = self.regularization.keep_prob
        n_hidden = len(self.model.layers) - 2
        if isinstance(keep_prob, list) and len(keep_prob) != n_hidden:
            layers = "hidden layer" if n_hidden == 1 else "hidden layers"
            raise field_error("regularization.keep_prob", f"keep_prob lists {len(keep_prob)} values but the model has {n_hidden} {layers} "
                                                          f"(model.layers is {self.model.layers}): give one value per hidden layer", keep_prob)
        if getattr(self.data, "stream", False) is True and self.training.batch_size is None:
            raise field_error("data.stream", "stream: true reads mini-batches from the file, but training.batch_size is null "
                                             "(full batch): set training.batch_size (e.g. 256) or stream: false", True)
        return self


class DataSection(Strict):
    data: DataConfig
