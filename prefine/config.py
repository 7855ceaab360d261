"""Dataclass configs as the single source of truth for CLI flags, saved JSON and presets.

Every configurable stage declares a dataclass whose fields carry their documentation in
`field(metadata={"help": ...})`. This module turns such a dataclass into argparse flags
(`--max-steps` for `max_steps`), reads the parsed namespace back into the dataclass, and
round-trips it through JSON, so a flag, its help text, its default and its saved value can
never drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args, get_origin

from prefine.errors import PrefineError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def option(default: Any, help: str, **metadata: Any) -> Any:
    """A dataclass field with its help text (and optional `choices`, `flag` name, or `positional=True`)."""
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help, **metadata})
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


def _renamed(field: dataclasses.Field, flag: str) -> dataclasses.Field:
    renamed = dataclasses.field(metadata={**field.metadata, "flag": flag})
    renamed.name = field.name
    return renamed


def _flag_name(field: dataclasses.Field, prefix: str) -> str:
    return "--" + prefix + field.metadata.get("flag", field.name).replace("_", "-")


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1 and len(get_args(annotation)) == 2:
            return members[0], True
    return annotation, False


def _resolved_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def add_dataclass_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    prefix: str = "",
    skip: tuple[str, ...] = (),
    defaults: Any = None,
    flags: dict[str, str] | None = None,
    show_defaults: bool = True,
    unset: Any = None,
) -> None:
    """Add one flag per field of `cls`; defaults are left as None so explicit flags can be told apart.

    `defaults` is an instance whose values the help text shows (a recipe's own defaults, which
    `from_args(..., base=defaults)` then applies); `flags` renames fields on the command line
    (e.g. {"paths": "corpus"} gives `--corpus` for the field `paths`). `unset` is what an absent
    flag leaves in the namespace: None, or argparse.SUPPRESS for a subcommand whose parent
    parser has the same flag (`runs --registry P show X` must keep P).
    """
    hints = _resolved_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip or field.metadata.get("cli") is False:
            continue
        annotation, _ = _unwrap_optional(hints[field.name])
        if defaults is not None:
            default = getattr(defaults, field.name)
        elif field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            raise TypeError(f"{cls.__name__}.{field.name} has no default; pass `defaults` to show one")
        if field.metadata.get("positional"):
            positional: dict[str, Any] = {"nargs": "+"} if get_origin(annotation) is list else {}
            parser.add_argument(field.name, help=field.metadata.get("help", ""), **positional)
            continue
        if flags and field.name in flags:
            field = _renamed(field, flags[field.name])
        help_text = field.metadata.get("help", "")
        if show_defaults and default not in (None, "", []) and annotation is not bool:
            help_text += f" (default: {default})"
        kwargs: dict[str, Any] = {"dest": prefix.replace("-", "_") + field.name, "default": unset, "help": help_text}
        origin = get_origin(annotation)
        if annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
            if show_defaults:
                kwargs["help"] += f" (default: {'on' if default else 'off'})"
        elif origin is Literal:
            kwargs["choices"] = list(get_args(annotation))
            kwargs["type"] = type(get_args(annotation)[0])
        elif origin is list:
            item_type = get_args(annotation)[0] if get_args(annotation) else str
            kwargs["type"] = item_type
            kwargs["nargs"] = "+"
        elif annotation in (int, float, str):
            kwargs["type"] = annotation
        else:
            kwargs["type"] = str
        if "choices" in field.metadata:
            kwargs["choices"] = field.metadata["choices"]
        if "metavar" in field.metadata:
            kwargs["metavar"] = field.metadata["metavar"]
        parser.add_argument(_flag_name(field, prefix), **kwargs)


def explicit_overrides(args: argparse.Namespace, cls: type, prefix: str = "") -> dict[str, Any]:
    """The fields of `cls` that were given on the command line (flags default to None)."""
    values = {}
    for field in dataclasses.fields(cls):
        value = getattr(args, prefix.replace("-", "_") + field.name, None)
        if value is not None:
            values[field.name] = value
    return values


def from_args(cls: type[T], args: argparse.Namespace, base: T | None = None, prefix: str = "") -> T:
    """Build `cls` from parsed flags, starting from `base` (a preset or saved config) when given."""
    overrides = explicit_overrides(args, cls, prefix)
    if base is None:
        return cls(**overrides)
    return dataclasses.replace(base, **overrides)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def from_dict(cls: type[T], values: dict[str, Any], source: str = "config") -> T:
    """Rebuild a dataclass from saved JSON; unknown keys are an error so typos do not vanish."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise PrefineError(f"{source}: unknown field(s) {', '.join(unknown)} for {cls.__name__}; remove them or upgrade prefine")
    return cls(**values)
