"""Turn pydantic validation errors into one line: file, field path, bad value, what is allowed."""

import difflib
import types
import typing
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo


def show_value(value: Any) -> str:
    """A short YAML-flavoured rendering of a value a user wrote."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and abs(value) >= 10**30:
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def quote(text: str) -> str:
    """``text`` whole, quoted, with newlines and other unprintable characters escaped (a file path, say)."""
    return repr(str(text))


def show_path(loc: tuple) -> str:
    """``('operand', 'width')`` -> ``operand.width``; list indices as ``[i]``."""
    text = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        elif isinstance(part, str) and part and part.isprintable() and not any(c in part for c in " .[]"):
            text += ("." if text else "") + part
        else:  # a key a user could not read back plainly (newline, dot, empty, ...): quoted, shortened
            text += ("." if text else "") + show_value(part)
    return text or "top level"


def _strip_optional(annotation):
    """``int | None`` -> (``int``, True); anything else -> (annotation, False)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def model_of(annotation):
    annotation, _ = _strip_optional(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def describe_field(field: FieldInfo) -> str:
    """What values a field accepts, in words, derived from its type and constraints."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if "allowed" in extra:
        return str(extra["allowed"])
    annotation, optional = _strip_optional(field.annotation)
    text = _describe_type(annotation, field.metadata)
    if optional and not extra.get("per_arch"):
        text += " (or leave it out for the default)"
    return text


def _describe_type(annotation, metadata) -> str:
    if typing.get_origin(annotation) is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(annotation))
    if annotation is bool:
        return "true or false"
    if annotation is int:
        lo = hi = None
        for item in metadata:
            if isinstance(item, annotated_types.Ge):
                lo = item.ge
            elif isinstance(item, annotated_types.Le):
                hi = item.le
        if lo is not None and hi is not None:
            return f"an integer from {lo} to {hi}"
        if lo is not None:
            return f"an integer >= {lo}"
        if hi is not None:
            return f"an integer <= {hi}"
        return "an integer"
    if annotation is str:
        return "a string"
    model = model_of(annotation)
    if model is not None:
        return "a mapping with keys " + ", ".join(model.model_fields)
    if typing.get_origin(annotation) is list and typing.get_args(annotation):
        item = typing.get_args(annotation)[0]
        item_model = model_of(item)
        if item_model is not None:
            return "a list of mappings with keys " + ", ".join(item_model.model_fields)
        each = _describe_type(item, ())
        if each in ("an integer", "a string"):
            return f"a list of {each.split()[-1]}s"
        return f"a list, each item {each}"
    return str(annotation)


def _list_item_model(annotation):
    """``list[Model]`` (or ``list[Model] | None``) -> ``Model``; anything else -> None."""
    annotation, _ = _strip_optional(annotation)
    if typing.get_origin(annotation) is not list:
        return None
    args = typing.get_args(annotation)
    return model_of(args[0]) if args else None


def _walk(model: type[BaseModel], loc: tuple) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model that owns ``loc[-1]`` and that field (either may be None if loc leaves the models).

    A list index steps into the list's item model: ``('protect', 0, 'match')`` is the field
    ``match`` of the item model of ``protect``; ``('protect', 0)`` gives that model and no field.
    """
    field = None
    owner: type[BaseModel] | None = model
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(part, int) and not isinstance(part, bool) and field is not None:
            owner, field = _list_item_model(field.annotation), None
            if owner is None:
                return None, None
            continue
        if owner is None or part not in owner.model_fields:
            return (owner if last else None), None
        field = owner.model_fields[part]
        following = loc[index + 1] if not last else None
        if not last and not (isinstance(following, int) and not isinstance(following, bool)):
            owner = model_of(field.annotation)
    return owner, field


def suggest_key(key: Any, choices) -> str:
    close = difflib.get_close_matches(str(key), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def format_validation_error(error: ValidationError, model: type[BaseModel], source: str) -> str:
    """One line for the first error of ``error``; the count of the others is appended."""
    errors = error.errors(include_url=False)
    # A misspelt key also shows up as a missing one; the misspelling is the useful report.
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = tuple(first["loc"])
    path = show_path(loc)
    kind = first["type"]
    owner, field = _walk(model, loc)

    if kind == "extra_forbidden":
        choices = list(owner.model_fields) if owner is not None else []
        line = (f"{source}: {path}: unknown key{suggest_key(loc[-1], choices)}; "
                f"allowed keys: {', '.join(choices)}")
    elif kind == "missing":
        allowed = describe_field(field) if field is not None else "a value"
        line = f"{source}: {path}: missing required key; allowed: {allowed}"
    elif kind == "missing_for_arch":
        allowed = describe_field(field) if field else "a value"
        line = f"{source}: {path}: missing required key for arch '{first['ctx']['arch']}'; allowed: {allowed}"
    elif kind in ("value_error", "assertion_error") and not loc:
        # A check across several keys (a model validator) names its own fields, values and
        # what is allowed; "top level: got a mapping" would only hide that.
        cause = first.get("ctx", {}).get("error")
        line = f"{source}: {cause if cause is not None else first['msg']}"
    elif kind in ("value_error", "assertion_error"):
        cause = first.get("ctx", {}).get("error")
        allowed = str(cause) if cause is not None else first["msg"]
        line = f"{source}: {path}: got {show_value(first.get('input'))}; allowed: {allowed}"
    else:
        if field is not None:
            allowed = describe_field(field)
        elif owner is not None and loc and owner is not model:  # a list item: its model
            allowed = "a mapping with keys " + ", ".join(owner.model_fields)
        else:
            allowed = first["msg"]
        line = f"{source}: {path}: got {show_value(first.get('input'))}; allowed: {allowed}"

    if len(errors) > 1:
        more = len(errors) - 1
        line += f" (and {more} more error{'s' if more > 1 else ''})"
    return line
