"""The YAML config: section models, safe loading with --set overrides, error formatting, search spaces.

Never imports numpy or the engine: the engine receives validated values, never names to parse.
"""

from dltrain.config.loading import (
    apply_overrides,
    load_config,
    load_tree,
    read_yaml,
    safe_tree,
    validate_config,
    validate_data,
)
from dltrain.config.models import Config, DataConfig, InitConfig, ModelConfig, OptimizerConfig, ScheduleConfig
from dltrain.config.paths import get_path, set_path
from dltrain.config.space import Choice, Distribution, load_space

__all__ = [
    "Choice", "Config", "DataConfig", "Distribution", "InitConfig", "ModelConfig", "OptimizerConfig", "ScheduleConfig",
    "apply_overrides", "get_path", "load_config", "load_space", "load_tree", "read_yaml", "safe_tree", "set_path",
    "validate_config", "validate_data",
]
