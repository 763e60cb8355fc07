"""Config schema, loading and validation."""

from .base import KindConfig, StrictModel
from .loader import load_config, parse_config_data, parse_config_text

__all__ = ["KindConfig", "StrictModel", "load_config", "parse_config_data", "parse_config_text"]
