"""Read a YAML config file into the validated model of its kind."""

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import ConfigError
from .base import KindConfig
from .messages import format_validation_error, show_path, show_value

MAX_CONFIG_BYTES = 1 << 20


class _StrictYamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects duplicate keys instead of keeping the last one."""


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_unique_mapping(loader: _StrictYamlLoader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _value_node in node.value:
        if key_node.tag == _MERGE_TAG:  # "<<: *defaults" is merged by PyYAML; explicit keys win
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {show_value(key)}", key_node.start_mark)
            seen.add(key)
        except TypeError:  # unhashable key: PyYAML reports it below
            break
    return loader.construct_mapping(node, deep=deep)


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


_StrictYamlLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


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
    from .moevit import MODEL_KINDS  # late: it imports this module

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


def parse_yaml_text(text: str, source: str) -> Any:
    """YAML text -> data with the strict loader (duplicate keys rejected); one-line :class:`ConfigError`."""
    try:
        data = yaml.load(text, Loader=_StrictYamlLoader)  # noqa: S506 -- a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = error.problem or error.context or "syntax error"
        raise ConfigError(f"{source}{where}: not valid YAML: {problem}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {str(error).splitlines()[0]}") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid YAML: nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as error:
        # PyYAML's own constructors can raise these, e.g. int() of a 5000-digit number.
        raise ConfigError(f"{source}: not valid YAML: {str(error).splitlines()[0]}") from None
    return data


def load_config(path: str | Path) -> KindConfig:
    """Read, parse and validate the config file at ``path``."""
    return parse_config_text(read_config_text(path), str(path))


def read_config_text(path: str | Path) -> str:
    """The text of the config file at ``path`` (size-limited UTF-8); one-line :class:`ConfigError`."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a directory; allowed: a YAML config file") from None
    except OSError as error:
        raise ConfigError(f"{source}: cannot read: {error.strerror or error}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: {len(raw)} bytes; allowed: a config of at most {MAX_CONFIG_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{source}: not UTF-8 text (byte {error.start}); allowed: a UTF-8 YAML file") from None
    return text
