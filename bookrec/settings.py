"""One loader of settings from the environment, for the server and the trainer.

A configuration is a frozen dataclass (server/config.py ServerConfig, trainer/config.py
TrainerConfig). ``from_env`` sets each field from the variable PREFIX + FIELD (upper
case), parsed by the field's type: bool (1/0, true/false, yes/no, on/off), int, float
(finite), Path, str, or str | None. ``check`` holds every field to the ``Bounds`` in its
metadata (``port``, ``at_least``, ``above``, ``one_of``): ports 1..65535, with 0 where
0 means off; a worker or thread count >= 1 ... A bad value is one ``SettingError``
naming the variable or flag, the value and what it takes, which each program prints as
one line.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

C = TypeVar("C")
BOUNDS = "bounds"  # the key of a field's Bounds in its metadata
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class SettingError(ValueError):
    """A setting's value is not one it takes; the message names the setting."""


@dataclass(frozen=True)
class Bounds:
    """The values a number (or word) setting takes: ``low``..``high`` (``low`` excluded
    when ``above``), plus ``special`` with its meaning (0 = "off"), or one of ``choices``."""

    low: float | None = None
    high: float | None = None
    above: bool = False
    special: float | None = None
    means: str = ""
    choices: tuple[str, ...] = ()
    what: str = ""  # "a port"

    def allows(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices
        if self.special is not None and value == self.special:
            return True
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or value <= self.high

    def describe(self, kind: type) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        noun = self.what or ("a whole number" if kind is int else "a number")
        if self.low is not None and self.high is not None:
            text = f"{noun} {_num(self.low)}..{_num(self.high)}"
        elif self.low is not None:
            text = f"{noun} {'>' if self.above else '>='} {_num(self.low)}"
        else:
            text = noun
        if self.special is not None:
            text += f", or {_num(self.special)} ({self.means})"
        return text


def _num(x: float) -> str:
    return f"{x:g}"


def port(default: int, zero_means: str) -> Any:
    """A TCP port field: 1..65535, or 0 with the given meaning ("off", "any free port")."""
    bounds = Bounds(1, 65535, special=0, means=zero_means, what="a port")
    return field(default=default, metadata={BOUNDS: bounds})


def at_least(default: float, low: float, zero_means: str = "") -> Any:
    """A number >= ``low``; with ``zero_means``, 0 is allowed too and means that."""
    bounds = Bounds(low, special=0 if zero_means else None, means=zero_means)
    return field(default=default, metadata={BOUNDS: bounds})


def above(default: float, low: float) -> Any:
    """A number > ``low`` (a period or a budget that must pass)."""
    return field(default=default, metadata={BOUNDS: Bounds(low, above=True)})


def one_of(default: str, choices: tuple[str, ...]) -> Any:
    return field(default=default, metadata={BOUNDS: Bounds(choices=choices)})


def env_name(prefix: str, name: str) -> str:
    return prefix + name.upper()


def parse(kind: Any, raw: str, label: str) -> Any:
    """``raw`` as a value of ``kind`` (a field's resolved type); SettingError naming ``label``."""
    if kind is bool:
        word = raw.strip().lower()
        if word in _TRUE | _FALSE:
            return word in _TRUE
        raise SettingError(f"{label}={raw!r}: expected 1/0, true/false, yes/no or on/off")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise SettingError(f"{label}={raw!r}: expected a whole number") from None
    if kind is float:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise SettingError(f"{label}={raw!r}: expected a number")
        return value
    return Path(raw) if kind is Path else raw


def from_env(cls: type[C], prefix: str, environ: Mapping[str, str]) -> C:
    """``cls``'s defaults with every field its variable sets; values checked (``check``)."""
    hints = typing.get_type_hints(cls)
    updates: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        label = env_name(prefix, f.name)
        raw = environ.get(label)
        if raw is not None:
            updates[f.name] = parse(_kind(hints[f.name]), raw, label)
    cfg: C = replace(cls(), **updates)  # type: ignore[type-var]
    check(cfg, {name: env_name(prefix, name) for name in updates})
    return cfg


def _kind(hint: Any) -> Any:
    """The type a field's value is parsed as (``str | None`` is read as ``str``)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def check(cfg: Any, labels: Mapping[str, str]) -> None:
    """Every field named in ``labels`` (field -> the variable or flag that set it) within
    its bounds; SettingError naming the first that is not."""
    hints = typing.get_type_hints(type(cfg))
    for f in fields(cfg):
        bounds: Bounds | None = f.metadata.get(BOUNDS)
        label = labels.get(f.name)
        if bounds is None or label is None:
            continue
        value = getattr(cfg, f.name)
        if not bounds.allows(value):
            kind = _kind(hints[f.name])
            raise SettingError(f"{label}={value!r}: expected {bounds.describe(kind)}")
