"""Typed records stored as Redis hashes: a frozen dataclass per record, one codec per field type.

A record class declares every field it stores once, with its type and its default; the codecs
below turn each declared type into the hash's string values and back. Updates name fields by
keyword and are checked against the declaration (an unknown name or a value of the wrong type is a
``TypeError``), so a misspelt field can never be written and then read back as its default.

A ``dict[int, int]`` field declared with :func:`keyed` is stored as one hash field per key
(``<prefix><key>``), so each entry can be compare-and-set on its own.
"""

from __future__ import annotations

import dataclasses
import json
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self, Union, get_args, get_origin, get_type_hints

from fdbcore.keys import KeyRange
from workers import codecs

_KEYED = "fdbbr.keyed_prefix"


def keyed(prefix: str) -> Any:
    """A ``dict[int, int]`` field stored as hash fields ``<prefix><key>`` (default: empty)."""
    return dataclasses.field(default_factory=dict, metadata={_KEYED: prefix})


@dataclass(frozen=True, slots=True)
class Codec:
    encode: Callable[[Any], str]
    decode: Callable[[str], Any]
    accepts: tuple[type, ...]


def _scalar(tp: Any) -> Codec:
    if tp is str:
        return Codec(str, str, (str,))
    if tp is bool:
        return Codec(lambda v: "1" if v else "0", lambda s: s == "1", (bool,))
    if tp is int:
        return Codec(str, int, (int,))
    if tp is float:
        return Codec(repr, float, (int, float))
    if tp is bytes:
        return Codec(bytes.hex, bytes.fromhex, (bytes,))
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return Codec(lambda v: tp(v).value, tp, (tp, str))
    origin, args = get_origin(tp), get_args(tp)
    if origin is list and args == (KeyRange,):
        return Codec(
            lambda v: json.dumps(codecs.ranges_to_json(v)), lambda s: codecs.ranges_from_json(json.loads(s)), (list,)
        )
    if origin is list and args in ((str,), (int,)):
        return Codec(json.dumps, json.loads, (list,))
    raise TypeError(f"no record codec for {tp!r}")


def _ranges_text(ranges: list[KeyRange]) -> str:
    return json.dumps(codecs.ranges_to_json(ranges))


def _codec(tp: Any) -> Codec:
    """``X | None`` stores None as the empty string; everything else has a scalar codec."""
    if get_origin(tp) in (Union, types.UnionType):
        inner = [a for a in get_args(tp) if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"no record codec for {tp!r}")
        base = _scalar(inner[0])
        return Codec(
            lambda v: "" if v is None else base.encode(v),
            lambda s: None if s == "" else base.decode(s),
            (*base.accepts, type(None)),
        )
    return _scalar(tp)


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    codec: Codec
    default: Callable[[], Any] | None  # None: required
    prefix: str = ""  # keyed dict fields only


class Record:
    """Base of the job records (subclasses are frozen dataclasses)."""

    @classmethod
    def from_fields(cls, raw: Mapping[str, str]) -> Self:
        values: dict[str, Any] = {}
        for f in _schema(cls):
            if f.prefix:
                values[f.name] = {int(k[len(f.prefix) :]): int(v) for k, v in raw.items() if k.startswith(f.prefix)}
            elif f.name in raw:
                values[f.name] = f.codec.decode(raw[f.name])
            elif f.default is None:
                raise KeyError(f"{cls.__name__} record has no {f.name!r} field")
        return cls(**values)

    def to_fields(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in _schema(type(self)):
            value = getattr(self, f.name)
            if f.prefix:
                out.update({f"{f.prefix}{k}": str(v) for k, v in value.items()})
            else:
                out[f.name] = f.codec.encode(value)
        return out

    @classmethod
    def encode_changes(cls, changes: Mapping[str, object]) -> dict[str, str]:
        """Hash fields for ``changes``; a keyed field takes ``{key: value}`` and sets those entries."""
        schema = {f.name: f for f in _schema(cls)}
        out: dict[str, str] = {}
        for name, value in changes.items():
            f = schema.get(name)
            if f is None:
                raise TypeError(f"{cls.__name__} has no updatable field {name!r}")
            if f.prefix:
                if not isinstance(value, dict):
                    raise TypeError(f"{cls.__name__}.{name} takes a dict of entries, not {value!r}")
                out.update({f"{f.prefix}{int(k)}": str(int(v)) for k, v in value.items()})
                continue
            if not isinstance(value, f.codec.accepts) or (isinstance(value, bool) and bool not in f.codec.accepts):
                raise TypeError(f"{cls.__name__}.{name} cannot hold {value!r}")
            out[name] = f.codec.encode(value)
        return out

    @classmethod
    def field_name(cls, name: str, key: int | None = None) -> str:
        """The hash field holding ``name`` (or entry ``key`` of a keyed field), checked to exist."""
        f = {f.name: f for f in _schema(cls)}.get(name)
        if f is None or (key is None) == bool(f.prefix):
            raise TypeError(f"{cls.__name__} has no field {name!r}" + (f"[{key}]" if key is not None else ""))
        return f"{f.prefix}{key}" if f.prefix else name

    @classmethod
    def encode_value(cls, name: str, value: object) -> str:
        """One field's stored form (for compare-and-set expectations)."""
        return cls.encode_changes({name: value})[name]


_SCHEMAS: dict[type, tuple[_Field, ...]] = {}


def _schema(cls: type[Record]) -> tuple[_Field, ...]:
    """The record class's fields with their codecs (computed once per class)."""
    found = _SCHEMAS.get(cls)
    if found is None:
        found = _SCHEMAS[cls] = _build_schema(cls)
    return found


def _build_schema(cls: type[Record]) -> tuple[_Field, ...]:
    hints = get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        prefix = f.metadata.get(_KEYED, "")
        default: Callable[[], Any] | None = None
        if f.default is not dataclasses.MISSING:
            default = _constant(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory
        codec = _codec(int) if prefix else _codec(hints[f.name])
        out.append(_Field(f.name, codec, default, prefix))
    return tuple(out)


def _constant(value: object) -> Callable[[], object]:
    return lambda: value
