"""Nested, frozen configuration: an experiment's ``Config`` holds one frozen dataclass per study.

Overrides name a setting by its path, ``STUDY.SETTING`` (``--set
monte_carlo.samples=2048``), or set a setting of one name in every study
that has it (``--seeds 8``: every study's ``seeds``). Values are parsed by
the type of the setting's current value: integers, floats, strings, ``none``
for an optional one, and comma-separated tuples of those.
"""
from __future__ import annotations

import dataclasses
from typing import Any


class ConfigError(ValueError):
    """A setting that does not exist, or a value that does not parse; the message is one line."""


def paths(config, prefix: str = "") -> dict[str, Any]:
    """Every leaf setting as ``{"study.setting": value}``."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.update(paths(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = value
    return out


def replace_path(config, path: str, value):
    """``config`` with the setting at ``path`` (dotted) replaced by ``value``."""
    head, _, rest = path.partition(".")
    names = {f.name for f in dataclasses.fields(config)}
    if head not in names:
        raise ConfigError(f"no setting {path!r}")
    if rest:
        inner = getattr(config, head)
        if not dataclasses.is_dataclass(inner):
            raise ConfigError(f"no setting {path!r}")
        value = replace_path(inner, rest, value)
    elif dataclasses.is_dataclass(getattr(config, head)):
        raise ConfigError(f"{path!r} is a study, not a setting; name one of its settings")
    return dataclasses.replace(config, **{head: value})


def with_everywhere(config, name: str, value) -> tuple[Any, list[str]]:
    """``config`` with every setting called ``name`` (at any depth) set to ``value``; the paths set."""
    found = [p for p in paths(config) if p.rpartition(".")[2] == name]
    for p in found:
        config = replace_path(config, p, coerce(value, paths(config)[p], p))
    return config, found


def coerce(value, current, path: str = "value"):
    """``value`` shaped like ``current``: a scalar for a tuple setting becomes a one-element tuple."""
    if isinstance(current, tuple) and not isinstance(value, tuple):
        return (value,)
    return value


def parse(text: str, current, path: str):
    """The value ``text`` means for the setting at ``path``, whose current value is ``current``."""
    if isinstance(current, tuple):
        items = [t.strip() for t in text.split(",") if t.strip()]
        example = current[0] if current else ""
        return tuple(_scalar(t, example, path) for t in items)
    return _scalar(text.strip(), current, path)


def _scalar(text: str, current, path: str):
    if text.lower() == "none":
        return None
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
        if current is None:
            for kind in (int, float):
                try:
                    return kind(text)
                except ValueError:
                    pass
        return text
    except ValueError:
        raise ConfigError(f"{path}={text!r} is not a {type(current).__name__}") from None


def override(config, assignment: str):
    """``config`` with ``STUDY.SETTING=VALUE`` applied."""
    path, eq, text = assignment.partition("=")
    if not eq or not path.strip():
        raise ConfigError(f"--set takes STUDY.SETTING=VALUE, got {assignment!r}")
    path = path.strip()
    current = paths(config)
    if path not in current:
        raise ConfigError(f"no setting {path!r}; settings: {', '.join(current)}")
    return replace_path(config, path, parse(text, current[path], path))
