"""The YAML config: pydantic models (extra keys forbidden everywhere), defaults resolved here.

load_config(path, overrides) -> Config, or DltrainError(exit_code=2) with one line per problem:
the field path, the value received and what is allowed.
"""

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from dltrain.errors import DltrainError

MAX_CONFIG_BYTES = 1_000_000
# Aliases make a small file stand for a huge tree ("billion laughs"): these bound the tree that
# validation, --set and config.yaml would walk, with every alias expanded.
MAX_CONFIG_NODES = 100_000
MAX_CONFIG_DEPTH = 50


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
    split_seed: int = Field(0, description="seed of the stratified dev/test carving (independent of the init seed)")
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
    dir: str = Field("datasets", description="folder holding train_catvnoncat.h5 and test_catvnoncat.h5")
    normalize: Literal["none", "scale", "standardize"] = "scale"

    def own_test(self):
        return "cat has its own test file"


class SignsData(DataBase):
    dataset: Literal["signs"]
    dir: str = Field("datasets", description="folder holding train_signs.h5 and test_signs.h5")
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
    path: str = Field(description="a .npz, .h5/.hdf5, .mat (MATLAB) or .csv file; the suffix selects the reader")
    x_train: str = Field("x_train", description="key of the training features")
    y_train: str = Field("y_train", description="key of the training labels")
    x_test: str | None = Field("x_test", description="key of the test features; the default is used if the file has it, "
                                                   "another name is required, null: no test part")
    y_test: str | None = Field("y_test", description="key of the test labels (as x_test)")
    layout: Literal["rows", "columns"] = Field("rows", description="rows: one example per row (m, ...); columns: (n_x, m)")
    label_column: str | None = Field(None, description="csv only: the header name of the label column")
    classes: list[str] | None = Field(None, min_length=2, description="class names for labels 0..C-1; default '0'..'C-1'")

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
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            repeated = next(c for c in self.classes if self.classes.count(c) > 1)
            raise field_error("classes", f"classes must be distinct names ({repeated!r} is repeated)", self.classes)
        return self


class ImagesData(DataBase):
    dataset: Literal["images"]
    path: str = Field(description="h5 file in the course layout (train_set_x, train_set_y, list_classes), "
                                  "e.g. written by `dltrain datasets import`; its test_set_x/test_set_y are the test part")
    test_path: str | None = Field(None, description="separate h5 file holding test_set_x/test_set_y (as the course ships them)")
    normalize: Literal["none", "scale", "standardize"] = "scale"

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


ScheduleConfig = Annotated[
    ConstantSchedule | InverseTimeSchedule | IntervalSchedule | ExponentialSchedule | InverseSqrtSchedule | StepSchedule,
    Field(discriminator="name"),
]

# ---- training ---------------------------------------------------------------------------------


class TrainingConfig(Strict):
    epochs: int = Field(1000, ge=1)
    batch_size: int | None = Field(None, ge=1, description="null: full batch; 1: stochastic GD")
    log_every: int = Field(100, ge=1, description="history.csv row every this many epochs (and the last)")
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


# ---- top level --------------------------------------------------------------------------------


class Config(Strict):
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
        return self


# ---- loading ----------------------------------------------------------------------------------


def parse_override(text: str) -> tuple[str, Any]:
    """'optimizer.learning_rate=0.01' -> ('optimizer.learning_rate', 0.01); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise DltrainError(f"--set {text!r}: expected KEY.PATH=VALUE, e.g. optimizer.learning_rate=0.01", 2)
    try:
        value = safe_tree(raw, f"--set {key.strip()}")
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def split_path(path: str) -> list[str | int]:
    """'model.layers[1]' -> ['model', 'layers', 1]."""
    parts = [name if name else int(index) for name, index in _PATH_PART.findall(path)]
    if not parts:
        raise DltrainError(f"{path!r}: empty key path", 2)
    return parts


def set_path(tree: dict, path: str, value: Any) -> None:
    """Set tree[a][b][i] = value for path 'a.b[i]', creating mappings on the way."""
    parts = split_path(path)
    node = tree
    for part, nxt in zip(parts, parts[1:]):
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise DltrainError(f"{path}: no list entry [{part}] there", 2)
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise DltrainError(f"{path}: {part!r} is not inside a mapping", 2)
        if not isinstance(node.get(part), (dict, list)):
            node[part] = [] if isinstance(nxt, int) else {}
        node = node[part]
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise DltrainError(f"{path}: no list entry [{last}] there", 2)
    elif not isinstance(node, dict):
        raise DltrainError(f"{path}: {last!r} is not inside a mapping", 2)
    node[last] = value


def get_path(tree: Any, path: str) -> Any:
    """tree[a][b][i] for path 'a.b[i]', or None where the path leads nowhere."""
    node = tree
    for part in split_path(path):
        node = _child(node, part)
    return node


def read_yaml(path: Path, what: str = "config file") -> Any:
    """Safely parse a YAML file (no object tags, bounded size), or DltrainError naming the file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:  # a file named on the command line or in a run folder: a usage error
        raise DltrainError(f"{what} {path} not found", 2) from None
    except OSError as e:
        raise DltrainError(f"cannot read {what} {path}: {e.strerror}", 2) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise DltrainError(f"{what} {path} is {len(raw)} bytes; the limit is {MAX_CONFIG_BYTES}", 2)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DltrainError(f"{what} {path} is not UTF-8 text (byte {e.start})", 2) from None
    try:
        return safe_tree(text, f"{what} {path}")
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise DltrainError(f"{what} {path} is not valid YAML{at}: {problem}", 2) from None


class StrictLoader(yaml.SafeLoader):
    """yaml.safe_load's loader (no object tags), except that a key repeated in one mapping is an
    error: YAML forbids it, and PyYAML would silently keep the last value."""


def _mapping_without_duplicates(loader: StrictLoader, node: yaml.MappingNode) -> dict:
    seen = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            if (key_node.tag, key_node.value) in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                )
            seen.add((key_node.tag, key_node.value))
    return loader.construct_mapping(node)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)
# PyYAML follows YAML 1.1, where 1e-4 (no dot) is a string; every config writes learning rates that
# way, and validation is strict (no string-to-number coercion), so such exponents are floats here.
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def safe_tree(text: str, source: str) -> Any:
    """Parse YAML text as yaml.safe_load does, with the checks it lacks: a duplicate key is a
    yaml.YAMLError like a syntax error; a tree nested deeper than MAX_CONFIG_DEPTH or expanding
    through aliases to more than MAX_CONFIG_NODES values is DltrainError (exit 2) naming `source`.
    Every YAML text dltrain reads (files, --set values, --data mappings) goes through here."""
    loader = StrictLoader(text)
    try:
        tree = loader.get_single_data()
    except RecursionError:
        raise DltrainError(f"{source} nests deeper than {MAX_CONFIG_DEPTH} levels", 2) from None
    finally:
        loader.dispose()
    if expanded_size(tree, {}, 0, source) > MAX_CONFIG_NODES:
        raise DltrainError(f"{source} expands to more than {MAX_CONFIG_NODES} values (YAML aliases?)", 2)
    return tree


def expanded_size(node: Any, seen: dict, depth: int, source: str) -> int:
    """Keys and values in the tree, counting a node shared through YAML aliases once per use.

    Each shared node is sized once (`seen`, by id), so a billion-laughs file costs only its own
    length to measure (a node that contains itself never gets here: StrictLoader refuses it).
    """
    if not isinstance(node, (dict, list)):
        return 1
    if depth > MAX_CONFIG_DEPTH:
        raise DltrainError(f"{source} nests deeper than {MAX_CONFIG_DEPTH} levels", 2)
    key = id(node)
    if key in seen:
        return seen[key]
    children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
    seen[key] = 1 + sum(expanded_size(child, seen, depth + 1, source) for child in children)
    return seen[key]


def load_tree(path: str | Path, overrides: list[str] = ()) -> dict:
    """The config file's mapping with --set overrides applied, not yet validated."""
    tree = read_yaml(Path(path))
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise DltrainError(f"config file {path}: expected a mapping of keys at the top, got {type(tree).__name__}", 2)
    apply_overrides(tree, overrides)
    return tree


def apply_overrides(tree: dict, overrides: list[str]) -> None:
    """Apply --set KEY.PATH=VALUE texts to tree in place; a bad path is an error naming the option."""
    for text in overrides:
        key, value = parse_override(text)
        try:
            set_path(tree, key, value)
        except DltrainError as e:
            raise DltrainError(f"--set {e}", 2) from None


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read YAML safely, apply --set overrides, validate; DltrainError(exit_code=2) on any problem."""
    return validate_config(load_tree(path, overrides), source=str(path))


def validate_config(tree: dict, source: str = "config") -> Config:
    try:
        return Config.model_validate(tree)
    except ValidationError as e:
        raise DltrainError("\n".join(format_errors(e, source, tree)), 2) from None
    except RecursionError:
        raise DltrainError(f"{source}: the config nests too deeply", 2) from None


class DataSection(Strict):
    data: DataConfig


def validate_data(tree: dict, source: str = "config") -> DataConfig:
    """Validate {"data": {...}} alone (no model section), with the same one-line-per-problem errors."""
    try:
        return DataSection.model_validate(tree).data
    except ValidationError as e:
        raise DltrainError("\n".join(format_errors(e, source, tree)), 2) from None


def _models_in(annotation) -> list[type]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) or () for m in _models_in(arg)]


_TAGGED_UNIONS = {"data": "dataset", "optimizer": "name", "schedule": "name"}


def _model_at(path: list, tree: Any) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at `path`, choosing union members by their tag."""
    model, node = Config, tree
    for part in path:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return None
        node = _child(node, part)
        candidates = _models_in(field.annotation)
        tag = _TAGGED_UNIONS.get(part) if model is Config else None
        if tag and isinstance(node, dict):
            candidates = [c for c in candidates if node.get(tag) in _literal_values(c.model_fields[tag].annotation)]
        if len(candidates) != 1:
            return None
        model = candidates[0]
    return model


def _literal_values(annotation) -> tuple:
    return getattr(annotation, "__args__", ())


# Errors whose last location part is the key itself (absent, or not allowed), not a value's field.
_KEY_ERRORS = ("missing", "extra_forbidden")


def _user_path(err: dict, tree: Any) -> tuple[list, int | None]:
    """The error's location as the user's key path, and where in it a union branch was dropped.

    pydantic puts what it tried into the location: a discriminated member's tag ('optimizer',
    'adam', 'beta2'), a plain union's branch ('keep_prob', 'float'), a dict key's '[key]'. None of
    these is a key the user wrote, so a part is kept only when it is a key of the mapping (or an
    index of the list) the user wrote there, or the missing or unknown key itself. A field_error's
    path is appended. Returns (parts, position of the last dropped part or None).
    """
    parts, node, branch = [], tree, None
    loc = err["loc"]
    for i, part in enumerate(loc):
        if isinstance(node, dict):
            is_key = part in node or (i == len(loc) - 1 and err["type"] in _KEY_ERRORS)
        else:
            is_key = isinstance(node, list) and isinstance(part, int)
        if not is_key:
            branch = len(parts)
            continue
        parts.append(part)
        node = _child(node, part)
    if err["type"] == "field" and err["ctx"]["field"]:
        parts += split_path(err["ctx"]["field"])
    return parts, branch


def _path_text(parts: list) -> str:
    """['model', 'layers', 2] -> 'model.layers[2]', the --set syntax."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and part < len(node):
        return node[part]
    return None


def format_errors(error: ValidationError, source: str, tree: Any) -> list[str]:
    """One line per problem: 'source: field.path: got VALUE; what is allowed'."""
    located = [(err, *_user_path(err, tree)) for err in error.errors()]
    unions: dict[tuple, list] = {}
    for err, parts, branch in located:
        if branch is not None:
            unions.setdefault(tuple(parts[:branch]), []).append((err, parts))
    lines = []
    for err, parts, branch in located:
        loc = _path_text(parts)
        if branch is not None:
            # A value no branch of a union accepts gets one error per branch. A branch that got inside
            # the value (a list with one wrong item) names the real problem; else one line lists the branches.
            union = unions[tuple(parts[:branch])]
            if any(len(p) > branch for _, p in union):
                if len(parts) == branch:
                    continue
            elif len(union) > 1:
                if err is union[0][0]:
                    allowed = " or ".join(dict.fromkeys(e["msg"].removeprefix("Input should be ") for e, _ in union))
                    lines.append(f"{source}: {loc}: got {_short(err.get('input'))}; allowed: {allowed}")
                continue
        if err["type"] == "extra_forbidden":
            key = str(parts[-1])
            parent = _model_at(parts[:-1], tree)
            allowed = sorted(parent.model_fields) if parent else []
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            listed = f"; allowed here: {', '.join(allowed)}" if allowed else ""
            lines.append(f"{source}: {loc}: unknown key{listed}{hint}")
            continue
        if err["type"] in ("literal_error", "union_tag_invalid"):
            expected = err.get("ctx", {}).get("expected", "") or err.get("ctx", {}).get("expected_tags", "")
            options = re.findall(r"'([^']*)'", expected)
            tag = err.get("ctx", {}).get("tag", err.get("input"))
            close = difflib.get_close_matches(str(tag), options, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            lines.append(f"{source}: {loc}: got {_short(tag)}; allowed: {', '.join(options)}{hint}")
            continue
        if err["type"] == "missing":
            lines.append(f"{source}: {loc}: required key is missing")
            continue
        if err["type"] == "field" and "got" not in err["ctx"]:
            lines.append(f"{source}: {loc}: {err['msg']}")
            continue
        got = err["ctx"]["got"] if err["type"] == "field" else err.get("input")
        lines.append(f"{source}: {loc}: got {_short(got)}; {err['msg'].removeprefix('Value error, ')}")
    return lines


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---- search space (dltrain search) ------------------------------------------------------------


class Range(Strict):
    """A numeric range [low, high] that `dltrain search` samples on the scale its kind names."""

    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)

    def spec(self) -> str:
        return f"{self.kind}({self.low!r}, {self.high!r})"

    def problem(self) -> str | None:
        return None if self.low < self.high else f"{self.kind}(a, b) needs a < b, got {self.spec()}"

    @model_validator(mode="after")
    def _check(self):
        if (problem := self.problem()) is not None:
            raise ValueError(problem)
        return self


class Uniform(Range):
    kind: Literal["uniform"]


class IntRange(Range):
    kind: Literal["int"]
    low: int
    high: int


class LogRange(Range):
    kind: Literal["log"]

    def problem(self) -> str | None:
        if self.low <= 0:
            return f"log(a, b) samples log10 of the value, so it needs 0 < a < b, got {self.spec()}"
        return super().problem()


class OneMinusLogRange(Range):
    kind: Literal["one_minus_log"]

    def problem(self) -> str | None:
        if not 0 < self.low < 1 or not 0 < self.high < 1:
            return f"one_minus_log(a, b) samples log10(1 - value), so it needs 0 < a < b < 1, got {self.spec()}"
        return super().problem()


class Choice(Strict):
    kind: Literal["choice"]
    options: list[Any] = Field(min_length=1)

    def spec(self) -> str:
        return f"choice({yaml.safe_dump(self.options, default_flow_style=True, width=10**9).strip()})"


_DISTRIBUTION = re.compile(r"\s*([A-Za-z_]\w*)\s*\((.*)\)\s*", re.DOTALL)


def parse_distribution(value: Any) -> Any:
    """'log(1e-4, 1)' -> {'kind': 'log', 'low': '1e-4', 'high': 1}; the arguments are read as a YAML list, never evaluated."""
    kinds = ["uniform", "int", "log", "one_minus_log", "choice"]
    match = _DISTRIBUTION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"got {_short(value)}; expected a distribution such as log(1e-4, 1) or choice([relu, tanh])")
    kind, inner = match.groups()
    if kind not in kinds:
        close = difflib.get_close_matches(kind, kinds, n=1)
        raise ValueError(f"unknown distribution {kind!r}; allowed: {', '.join(kinds)}" + (f"; did you mean '{close[0]}'?" if close else ""))
    try:
        args = safe_tree(f"[{inner}]", f"the arguments of {value!r}")
    except (yaml.YAMLError, DltrainError):
        raise ValueError(f"cannot read the arguments of {value!r} (they are read as a YAML list)") from None
    if kind == "choice":
        if len(args) != 1 or not isinstance(args[0], list):
            raise ValueError(f"choice takes one list, e.g. choice([relu, tanh]), got {value!r}")
        return {"kind": kind, "options": args[0]}
    if len(args) != 2:
        raise ValueError(f"{kind} takes two numbers, {kind}(a, b), got {value!r}")
    return {"kind": kind, "low": args[0], "high": args[1]}


Distribution = Annotated[
    Uniform | IntRange | LogRange | OneMinusLogRange | Choice, Field(discriminator="kind"), BeforeValidator(parse_distribution)
]
_SPACE = TypeAdapter(dict[str, Distribution])


def load_space(path: str | Path) -> dict[str, Distribution]:
    """A search space file: config key path -> distribution, in file order; DltrainError(exit_code=2) per problem.

    Whether each key path exists in the config is checked against the base config (workflows.search).
    """
    tree = read_yaml(Path(path), "space file")
    if not isinstance(tree, dict) or not tree:
        raise DltrainError(
            f"space file {path}: expected a mapping of config key paths to distributions, e.g. 'optimizer.learning_rate: log(1e-4, 1)'", 2
        )
    not_paths = [repr(k) for k in tree if not isinstance(k, str)]
    if not_paths:
        raise DltrainError(f"space file {path}: keys must be config key paths such as model.layers[1], got {', '.join(not_paths)}", 2)
    try:
        return _SPACE.validate_python(tree)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            key, fields = err["loc"][0], [str(p) for p in err["loc"][2:]]
            msg = err["msg"].removeprefix("Value error, ")
            if fields and err["type"] == "extra_forbidden":
                lines.append(f"{path}: {key}: unexpected argument {fields[-1]!r}")
            elif fields:
                lines.append(f"{path}: {key}: {err['loc'][1]} {'.'.join(fields)}: got {_short(err.get('input'))}; {msg}")
            else:
                lines.append(f"{path}: {key}: {msg}")
        raise DltrainError("\n".join(lines), 2) from None
