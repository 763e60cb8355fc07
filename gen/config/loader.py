"""Read a YAML config file into the validated model of its kind."""

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError
from .base import KindConfig
from .messages import format_validation_error, show_path, show_value
from .moevit import MODEL_KINDS
from .reader import parse_yaml_text, read_config_text


def _first_bad_key(data: Any, path: tuple = ()) -> tuple[tuple, Any] | None:
    """Path and value of the first mapping key that is not a string, anywhere in ``data``."""
    if isinstance(data, dict):
        for key, value in data.items():
            if not isinstance(key, str):
                return path, key
            found = _first_bad_key(value, path + (key,))
            if found:
                return found
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found = _first_bad_key(value, path + (index,))
            if found:
                return found
    return None


def _kind_names() -> list[str]:
    from ..registry import (
        KINDS,  # registry imports every kind; import late to keep this module light
    )
    return [kind.name for kind in KINDS]


def parse_config_data(data: Any, source: str) -> KindConfig:
    """Validate already-parsed YAML data; raise :class:`ConfigError` with one line on any problem."""
    from ..registry import kind_named

    kinds = ", ".join(repr(k) for k in _kind_names())
    if data is None:
        raise ConfigError(f"{source}: empty config; allowed: a mapping with at least 'kind' ({kinds}) and 'name'")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level: got {show_value(data)}; allowed: a mapping of config keys")
    if "kind" not in data:
        raise ConfigError(f"{source}: kind: missing required key; allowed: one of {kinds}")
    bad_key = _first_bad_key(data)
    if bad_key is not None:
        where, key = bad_key
        raise ConfigError(f"{source}: {show_path(where)}: key {show_value(key)} is not a string; "
                          "allowed: string keys")
    kind_value = data["kind"]
    if isinstance(kind_value, str) and kind_value in MODEL_KINDS:
        what, commands = MODEL_KINDS[kind_value]
        readers = " and ".join(f"'npuforge {command}'" for command in commands)
        raise ConfigError(f"{source}: kind: '{kind_value}' is {what}, read by {readers}; "
                          f"allowed here: a hardware kind, one of {kinds}")
    if not isinstance(kind_value, str) or kind_value not in _kind_names():
        raise ConfigError(f"{source}: kind: got {show_value(kind_value)}; allowed: one of {kinds}")
    model = kind_named(kind_value).config
    try:
        # The source lets a kind resolve files its config names (moevit_accel's model:) relative to it.
        return model.model_validate(data, context={"source": source})
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, model, source)) from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply; allowed: a flat mapping of config keys") from None


def parse_config_text(text: str, source: str) -> KindConfig:
    """Parse YAML text and validate it (see :func:`parse_config_data`)."""
    return parse_config_data(parse_yaml_text(text, source), source)


def load_config(path: str | Path) -> KindConfig:
    """Read, parse and validate the config file at ``path``."""
    return parse_config_text(read_config_text(path), str(path))
