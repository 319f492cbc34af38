"""The published JSON schemas: generated from the typed results, checked in, shipped.

`storm --json` (tcpip6lab.storm.StormResult.json()) and the HTTP service's `/status.json`
(tcpip6lab.status.ServeStatus) are described by JSON Schema (draft 2020-12) files in
tcpip6lab/schemas/, generated here from the dataclasses and TypedDicts that produce them — not
written by hand; `bench` adds its cell records' schema the same way (bench/schema.py). Each
JSON document carries `schema_version`, the integer its schema pins with `const`: a script can
check it and notice a change of shape. A test checks that the checked-in files equal what this
module generates; `python -m bench.schema --update` rewrites them (and the version constant is
raised by hand when the shape changes).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import operator
import types
import typing
from collections.abc import Mapping
from importlib import resources
from typing import Any

from .status import SERVE_SCHEMA_VERSION, ServeStatus
from .storm import END_REASONS, STORM_SCHEMA_VERSION, StormResult

DRAFT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://tcpip6-lab.invalid/schemas/"  # an identifier, not a place to fetch from


def schema_of(tp: Any, *, overrides: Mapping[str, dict[str, Any]] | None = None,
              exclude: frozenset[str] = frozenset(), optional: frozenset[str] = frozenset(),
              omitted_when_none: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The JSON Schema of values of the Python type `tp`.

    Dataclasses and TypedDicts become closed objects (`additionalProperties: false`), their
    properties in declaration order; `overrides`, `exclude`, `optional` and
    `omitted_when_none` apply to the outermost object's fields only (the JSON form's own
    rules: fields left out, fields present only sometimes, fields left out rather than null)."""
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = typing.get_type_hints(tp)
        fields = [(f.name, hints[f.name], True)  # a default does not leave a key out
                  for f in dataclasses.fields(tp) if not f.name.startswith("_")]
        return _object(fields, overrides, exclude, optional, omitted_when_none)
    if typing.is_typeddict(tp):
        hints = typing.get_type_hints(tp)
        required = getattr(tp, "__required_keys__", frozenset(hints))
        return _object([(k, v, k in required) for k, v in hints.items()], overrides,
                       exclude, optional, omitted_when_none)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        members = [schema_of(a) for a in args if a is not type(None)]
        if type(None) in args:
            members.append({"type": "null"})
        return members[0] if len(members) == 1 else {"anyOf": members}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, tuple) or tp in (list, tuple):
        item = args[0] if args else Any
        return {"type": "array", "items": schema_of(item)} if item is not Any \
            else {"type": "array"}
    if origin is dict or tp is dict:
        value = args[1] if len(args) == 2 else Any
        return {"type": "object"} if value is Any \
            else {"type": "object", "additionalProperties": schema_of(value)}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    if tp is type(None):
        return {"type": "null"}
    if tp is Any:
        return {}
    raise TypeError(f"no JSON Schema for {tp!r}")


def _object(fields: list[tuple[str, Any, bool]], overrides: Mapping[str, dict[str, Any]] | None,
            exclude: frozenset[str], optional: frozenset[str],
            omitted_when_none: frozenset[str]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required: list[str] = []
    for name, tp, needed in fields:
        if name in exclude:
            continue
        if overrides and name in overrides:
            props[name] = overrides[name]
        elif name in omitted_when_none:
            props[name] = schema_of(_without_none(tp))
        else:
            props[name] = schema_of(tp)
        if needed and name not in optional and name not in omitted_when_none:
            required.append(name)
    return {"type": "object", "properties": props, "required": required,
            "additionalProperties": False}


def _without_none(tp: Any) -> Any:
    args = tuple(a for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and args:
        return functools.reduce(operator.or_, args)
    return tp


def document(name: str, version: int, title: str, body: dict[str, Any]) -> dict[str, Any]:
    """A schema document: `body` (an object schema) with the header and `schema_version`."""
    props = {"schema_version": {"const": version,
                                "description": "the version of this schema; raised when the "
                                               "shape changes"},
             **body["properties"]}
    return {"$schema": DRAFT, "$id": f"{ID_BASE}{name}-v{version}.json", "title": title,
            **{k: v for k, v in body.items() if k not in ("properties", "required")},
            "properties": props, "required": ["schema_version", *body["required"]]}


def storm_schema() -> dict[str, Any]:
    """`storm --json`: StormResult.json() (the texts for a person and the DOT left out)."""
    body = schema_of(
        StormResult,
        exclude=frozenset({"schema_version", "deadlock_text", "stalls_text", "dot"}),
        overrides={"end_reason": {"enum": list(END_REASONS)}},
        optional=frozenset({"stalls", "failures"}),
        omitted_when_none=frozenset({"deadlock", "faults", "trace_hash"}))
    return document("storm", STORM_SCHEMA_VERSION,
                    "tcpip6-lab storm --json: one bind storm's result", body)


def serve_schema() -> dict[str, Any]:
    """The HTTP service's /status.json (tcpip6lab.services.status)."""
    body = schema_of(ServeStatus, exclude=frozenset({"schema_version"}))
    return document("serve-status", SERVE_SCHEMA_VERSION,
                    "tcpip6-lab serve: an emulated host's /status.json", body)


#: the schemas this package publishes: name -> (generator, file in tcpip6lab/schemas/)
SCHEMAS = {"storm": (storm_schema, "storm.schema.json"),
           "serve": (serve_schema, "serve.schema.json")}


def render(schema: dict[str, Any]) -> str:
    """The text of a schema file (stable: what the checked-in files hold)."""
    return json.dumps(schema, indent=2) + "\n"


def shipped(package: str, filename: str) -> str:
    """A checked-in schema file's text, as installed with `package`."""
    return (resources.files(package) / "schemas" / filename).read_text(encoding="utf-8")
