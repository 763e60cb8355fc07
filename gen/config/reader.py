"""Read a config file's text and parse its YAML strictly: the first step of every config loader.

``gen/config/loader.py`` (hardware kinds), ``gen/config/moevit.py`` (model configs) and
``sim/fault/config.py`` (campaigns) all read files through here, so size limits, encoding and
duplicate keys are rejected the same way, with one line.
"""

from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .messages import show_value

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


_StrictYamlLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


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
