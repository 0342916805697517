"""A fast yes/no JSON Schema check for the keywords tool contracts use, compiled once per schema.

`jsonschema` walks a schema by building a validator object per keyword and per nested value;
on a chat request with a long conversation that costs milliseconds. `compile_check(schema)`
turns a schema into plain closures that answer only "valid or not" for the same instance,
with jsonschema's (draft 2020-12) rules: the same type predicates (an integer-valued float is an
integer, a bool is never a number), keywords ignored for values of other types, enum/const by
jsonschema's equality for strings and null. Any keyword it does not implement, anywhere in the
schema, makes it raise `Unsupported`: the caller then keeps using jsonschema alone.

The contract uses it as a fast path only: a `True` answer skips jsonschema, a `False` answer
runs jsonschema to find and word the error, so messages and the field named are unchanged.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable
from typing import Any, overload

Check = Callable[[Any], bool]

# Keywords with no say on validity (annotations), ignored as jsonschema ignores them.
_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "$comment",
        "deprecated",
        "readOnly",
        "writeOnly",
        "contentEncoding",
        "contentMediaType",
    }
)
_SUPPORTED = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "$ref",
        "$defs",
    }
)


class Unsupported(Exception):
    """The schema uses something this checker does not implement."""


def _is_number(value: Any) -> bool:
    kind = type(value)
    if kind is int or kind is float:
        return True
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    kind = type(value)
    if kind is int:
        return True
    if kind is float:
        return bool(value.is_integer())
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


_TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": _is_number,
    "integer": _is_integer,
}


def _always(_: Any) -> bool:
    return True


def _never(_: Any) -> bool:
    return False


class _Compiler:
    def __init__(self, root: Any, *, assert_formats: bool) -> None:
        self.defs: dict[str, Any] = root.get("$defs", {}) if isinstance(root, dict) else {}
        self.compiled_defs: dict[str, Check] = {}
        # `format` is only an annotation unless the validator was given a format checker.
        self.annotations = _ANNOTATIONS if assert_formats else _ANNOTATIONS | {"format"}

    def ref(self, target: Any) -> Check:
        if not isinstance(target, str) or not target.startswith("#/$defs/"):
            raise Unsupported(f"$ref {target!r}")
        name = target.removeprefix("#/$defs/")
        if "/" in name or "~" in name or "%" in name or name not in self.defs:
            raise Unsupported(f"$ref {target!r}")
        if name not in self.compiled_defs:
            slot: list[Check] = []

            def deferred(value: Any) -> bool:  # late bound: a definition may refer to itself
                return slot[0](value)

            self.compiled_defs[name] = deferred
            slot.append(self.compile(self.defs[name]))
        return self.compiled_defs[name]

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return _always
        if schema is False:
            return _never
        if not isinstance(schema, dict):
            raise Unsupported(f"schema of type {type(schema).__name__}")
        unknown = set(schema) - _SUPPORTED - self.annotations
        if unknown:
            raise Unsupported(", ".join(sorted(unknown)))
        checks: list[Check] = []
        if "type" in schema:
            checks.append(self._type(schema["type"]))
        if "enum" in schema:
            checks.append(self._enum(schema["enum"]))
        if "const" in schema:
            checks.append(self._enum([schema["const"]]))
        object_check = self._object(schema)
        if object_check is not None:
            checks.append(object_check)
        array_check = self._array(schema)
        if array_check is not None:
            checks.append(array_check)
        checks.extend(self._scalars(schema))
        for keyword in ("allOf", "anyOf", "oneOf"):
            if keyword in schema:
                if not isinstance(schema[keyword], list) or not schema[keyword]:
                    raise Unsupported(keyword)
                checks.append(self._combined(keyword, [self.compile(s) for s in schema[keyword]]))
        if "not" in schema:
            negated = self.compile(schema["not"])
            checks.append(lambda v: not negated(v))
        if "$ref" in schema:
            checks.append(self.ref(schema["$ref"]))
        if "$defs" in schema and not isinstance(schema["$defs"], dict):
            raise Unsupported("$defs")
        if not checks:
            return _always
        if len(checks) == 1:
            return checks[0]
        if len(checks) == 2:
            first, second = checks
            return lambda v: first(v) and second(v)
        bound = tuple(checks)

        def all_of(value: Any) -> bool:
            for check in bound:  # noqa: SIM110 - a plain loop is cheaper than all() over a generator
                if not check(value):
                    return False
            return True

        return all_of

    @staticmethod
    def _type(spec: Any) -> Check:
        names = [spec] if isinstance(spec, str) else spec
        if not isinstance(names, list) or not names or any(n not in _TYPES for n in names):
            raise Unsupported(f"type {spec!r}")
        predicates = tuple(_TYPES[n] for n in names)
        if len(predicates) == 1:
            return predicates[0]
        return lambda v: any(p(v) for p in predicates)

    @staticmethod
    def _enum(values: Any) -> Check:
        # jsonschema compares strings only with strings, and null only with null; other values
        # (numbers, bools, containers) have subtler rules: left to jsonschema.
        if not isinstance(values, list) or any(v is not None and not isinstance(v, str) for v in values):
            raise Unsupported("enum/const with values other than strings and null")
        strings = frozenset(v for v in values if isinstance(v, str))
        allows_null = None in values
        return lambda v: (isinstance(v, str) and v in strings) or (allows_null and v is None)

    def _object(self, schema: dict[str, Any]) -> Check | None:
        properties = schema.get("properties")
        required = schema.get("required")
        additional = schema.get("additionalProperties", True)
        if properties is None and required is None and additional is True:
            return None
        if properties is not None and not isinstance(properties, dict):
            raise Unsupported("properties")
        if required is not None and (not isinstance(required, list) or not all(isinstance(r, str) for r in required)):
            raise Unsupported("required")
        by_name = {name: self.compile(sub) for name, sub in (properties or {}).items()}
        needed = tuple(required or ())
        closed = additional is False
        extra = None if additional is True or additional is False else self.compile(additional)

        def check_object(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            for name in needed:
                if name not in value:
                    return False
            for name, item in value.items():
                check = by_name.get(name)
                if check is not None:
                    if not check(item):
                        return False
                elif closed or (extra is not None and not extra(item)):
                    return False
            return True

        return check_object

    def _array(self, schema: dict[str, Any]) -> Check | None:
        if not any(k in schema for k in ("items", "minItems", "maxItems")):
            return None
        items = self.compile(schema["items"]) if "items" in schema else None
        if isinstance(schema.get("items"), list):
            raise Unsupported("items as a list")
        low = self._count(schema, "minItems", 0)
        high = self._count(schema, "maxItems", None)

        def check_array(value: Any) -> bool:
            if not isinstance(value, list):
                return True
            if len(value) < low or (high is not None and len(value) > high):
                return False
            if items is not None:
                for item in value:
                    if not items(item):
                        return False
            return True

        return check_array

    @overload
    @staticmethod
    def _count(schema: dict[str, Any], keyword: str, default: int) -> int: ...

    @overload
    @staticmethod
    def _count(schema: dict[str, Any], keyword: str, default: None) -> int | None: ...

    @staticmethod
    def _count(schema: dict[str, Any], keyword: str, default: int | None) -> int | None:
        if keyword not in schema or schema[keyword] is default:
            return default
        value = schema[keyword]
        if not _is_integer(value) or value < 0:
            raise Unsupported(keyword)
        return int(value)

    def _scalars(self, schema: dict[str, Any]) -> list[Check]:
        checks: list[Check] = []
        low = self._count(schema, "minLength", 0)
        high = self._count(schema, "maxLength", None)
        if low or high is not None:
            checks.append(
                lambda v: not isinstance(v, str) or (len(v) >= (low or 0) and (high is None or len(v) <= high))
            )
        if "pattern" in schema:
            if not isinstance(schema["pattern"], str):
                raise Unsupported("pattern")
            pattern = re.compile(schema["pattern"])
            checks.append(lambda v: not isinstance(v, str) or pattern.search(v) is not None)
        bounds = [(k, schema[k]) for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") if k in schema]
        if bounds:
            if not all(_is_number(limit) for _, limit in bounds):
                raise Unsupported("a bound that is not a number")
            found = dict(bounds)
            minimum, maximum = found.get("minimum"), found.get("maximum")
            above, below = found.get("exclusiveMinimum"), found.get("exclusiveMaximum")

            def check_number(value: Any) -> bool:
                if not _is_number(value):
                    return True
                return not (
                    (minimum is not None and value < minimum)
                    or (maximum is not None and value > maximum)
                    or (above is not None and value <= above)
                    or (below is not None and value >= below)
                )

            checks.append(check_number)
        return checks

    @staticmethod
    def _combined(keyword: str, subs: list[Check]) -> Check:
        parts = tuple(subs)
        if keyword == "allOf":
            return lambda v: all(s(v) for s in parts)
        if keyword == "anyOf":
            return lambda v: any(s(v) for s in parts)
        return lambda v: sum(1 for s in parts if s(v)) == 1


def compile_check(schema: Any, *, assert_formats: bool = False) -> Check:
    """A `value -> bool` check equal to jsonschema's (2020-12) verdict, or `Unsupported`.

    `assert_formats`: the jsonschema validator it stands in for has a FormatChecker, so `format`
    constrains values (not implemented here: such schemas raise `Unsupported`).
    """
    if isinstance(schema, dict) and schema.get("$schema") not in (None, "https://json-schema.org/draft/2020-12/schema"):
        raise Unsupported("$schema other than draft 2020-12")
    if isinstance(schema, dict) and "$id" in schema:
        raise Unsupported("$id")
    root = {k: v for k, v in schema.items() if k != "$schema"} if isinstance(schema, dict) else schema
    return _Compiler(root, assert_formats=assert_formats).compile(root)


__all__ = ["Check", "Unsupported", "compile_check"]
