"""The strict rendering of a tool contract: what OpenAI strict function calling accepts, listed to
clients, while the hub keeps validating against the contract as written.

OpenAI's strict mode wants every object closed (`additionalProperties: false`), every property
required (optional ones nullable instead), and no keywords it does not support (`default`,
`minLength`, `uniqueItems`, …). Rewriting the contracts themselves would change what callers
must send and what the domain servers accept, so the strict form is a *view*:

- listed: optional properties become required and nullable; a string-keyed map
  (`additionalProperties: {schema}`) becomes a list of `{key, value}` pairs; a free-form object
  (no properties) becomes a JSON-encoded string; unsupported keywords are dropped (the hub still
  enforces them, since it validates against the original);
- called: `Shape.apply` turns such arguments back (a null for an optional field is dropped, pairs
  become a map, a JSON string becomes the object) before validation, so callers following either
  form are served, and existing callers that omit fields see no change.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from aggregator.protocol import jsonrpc

# Keywords OpenAI strict mode does not support; the hub still checks them against the original.
UNSUPPORTED = frozenset(
    {
        "default",
        "examples",
        "minLength",
        "maxLength",
        "minProperties",
        "maxProperties",
        "propertyNames",
        "patternProperties",
        "unevaluatedProperties",
        "uniqueItems",
        "contains",
        "minContains",
        "maxContains",
        "unevaluatedItems",
        "dependentRequired",
        "dependentSchemas",
        "not",
        "if",
        "then",
        "else",
        "readOnly",
        "writeOnly",
        "deprecated",
        "$comment",
        "$schema",
        "contentEncoding",
        "contentMediaType",
        "title",
    }
)


@dataclass
class Shape:
    """How to turn strict-form arguments back into the contract's form, per schema node."""

    drop_null: frozenset[str] = frozenset()
    properties: dict[str, Shape] = field(default_factory=dict)
    items: Shape | None = None
    pairs: Shape | None = None  # a map listed as [{key, value}]; the value's own shape
    json_text: bool = False  # a free-form object listed as a JSON string

    @property
    def idle(self) -> bool:
        return not (self.drop_null or self.properties or self.items or self.pairs or self.json_text)

    def apply(self, value: Any) -> Any:
        if self.json_text and isinstance(value, str):
            try:
                value = jsonrpc.loads(value) if value.strip() else {}
            except ValueError:
                return value  # the contract's validation names the field
        if self.pairs is not None and isinstance(value, list):
            if all(isinstance(p, dict) and isinstance(p.get("key"), str) for p in value):
                value = {p["key"]: self.pairs.apply(p.get("value")) for p in value}
            return value
        if isinstance(value, dict):
            if self.pairs is not None:
                return {k: self.pairs.apply(v) for k, v in value.items()}
            out = {}
            for key, item in value.items():
                if item is None and key in self.drop_null:
                    continue
                sub = self.properties.get(key)
                out[key] = sub.apply(item) if sub is not None else item
            return out
        if isinstance(value, list) and self.items is not None:
            return [self.items.apply(v) for v in value]
        return value


class NotStrict(ValueError):
    """A schema the strict view cannot express."""


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` accepting null too."""
    typ = schema.get("type")
    if isinstance(typ, str):
        out = {**schema, "type": [typ, "null"]} if typ != "null" else schema
    elif isinstance(typ, list):
        out = schema if "null" in typ else {**schema, "type": [*typ, "null"]}
    elif "anyOf" in schema:
        variants = schema["anyOf"]
        has_null = any(isinstance(v, dict) and v.get("type") == "null" for v in variants)
        out = schema if has_null else {**schema, "anyOf": [*variants, {"type": "null"}]}
    else:
        # A bare `$ref` (or an enum without a type): wrap it.
        desc = {"description": schema["description"]} if "description" in schema else {}
        inner = {k: v for k, v in schema.items() if k != "description"}
        return {**desc, "anyOf": [inner, {"type": "null"}]}
    if isinstance(out.get("enum"), list) and None not in out["enum"]:
        out = {**out, "enum": [*out["enum"], None]}
    return out


def _accepts_null(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    typ = schema.get("type")
    if typ == "null" or (isinstance(typ, list) and "null" in typ):
        return True
    return any(_accepts_null(v) for v in schema.get("anyOf", []) if isinstance(v, dict))


def _view(schema: Any, defs: dict[str, Any], depth: int = 0) -> tuple[dict[str, Any], Shape]:
    if depth > 64 or not isinstance(schema, dict):
        raise NotStrict("schema too deep or not an object")
    ref = schema.get("$ref")
    if isinstance(ref, str):
        name = ref.removeprefix("#/$defs/")
        if name not in defs:
            raise NotStrict(f"unresolvable $ref {ref}")
        # Inline the reference: its siblings (description) win, as a $ref with siblings cannot be strict.
        merged = {**defs[name], **{k: v for k, v in schema.items() if k != "$ref"}}
        return _view(merged, defs, depth + 1)
    out: dict[str, Any] = {}
    shape = Shape()
    for key, value in schema.items():
        if key in UNSUPPORTED or key == "$defs":
            continue
        if key in ("properties", "additionalProperties", "required", "items", "anyOf", "oneOf", "allOf"):
            continue
        out[key] = copy.deepcopy(value)
    if "allOf" in schema:
        raise NotStrict("allOf")
    variants = schema.get("anyOf", schema.get("oneOf"))
    if isinstance(variants, list):
        rendered = [_view(v, defs, depth + 1) for v in variants]
        out["anyOf"] = [r[0] for r in rendered]
        for _, sub in rendered:  # a value matches one variant: their fixes never conflict in practice
            shape.drop_null |= sub.drop_null
            shape.properties.update(sub.properties)
            shape.items = shape.items or sub.items
    typ = schema.get("type")
    is_object = typ == "object" or (isinstance(typ, list) and "object" in typ) or "properties" in schema
    if isinstance(schema.get("items"), dict):
        out["items"], items = _view(schema["items"], defs, depth + 1)
        shape.items = None if items.idle else items
    if is_object:
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        if isinstance(properties, dict) and properties:
            required = set(schema.get("required", []))
            rendered_props: dict[str, Any] = {}
            drop: set[str] = set()
            for name, prop in properties.items():
                view, sub = _view(prop, defs, depth + 1)
                if name not in required and not _accepts_null(view):
                    view = _nullable(view)
                    drop.add(name)
                rendered_props[name] = view
                if not sub.idle:
                    shape.properties[name] = sub
            out["properties"] = rendered_props
            out["required"] = list(properties)
            out["additionalProperties"] = False
            shape.drop_null = shape.drop_null | frozenset(drop)
        elif isinstance(extra, dict):
            # A map: strict mode has no open objects, so it is listed as [{key, value}] pairs.
            value_view, value_shape = _view(extra, defs, depth + 1)
            pair = {
                "type": "object",
                "properties": {"key": {"type": "string"}, "value": value_view},
                "required": ["key", "value"],
                "additionalProperties": False,
            }
            description = schema.get("description")
            out = {"type": "array", "items": pair}
            if description:
                out["description"] = f"{description} (as a list of {{key, value}} pairs)"
            if isinstance(typ, list) and "null" in typ:
                out["type"] = ["array", "null"]
            shape.pairs = value_shape
        elif extra is False and not properties:
            out["properties"] = {}
            out["required"] = []
            out["additionalProperties"] = False
        else:
            # Anything goes: listed as a JSON-encoded string, decoded back before validation.
            description = schema.get("description")
            out = {"type": ["string", "null"] if isinstance(typ, list) and "null" in typ else "string"}
            out["description"] = f"{description + ' ' if description else ''}(a JSON object, encoded as a string)"
            shape.json_text = True
    return out, shape


def strict_view(schema: dict[str, Any]) -> tuple[dict[str, Any], Shape]:
    """The strict rendering of an input schema and the shape that maps strict arguments back.
    Raises NotStrict when the schema cannot be rendered (the tool is then listed as it is)."""
    defs = schema.get("$defs") if isinstance(schema.get("$defs"), dict) else {}
    view, shape = _view(schema, defs or {})
    if view.get("type") != "object" or "anyOf" in view:
        raise NotStrict("the root must be a plain object")
    return view, shape


# What an output schema keeps when listed: its structure and types. Constraints and nested
# descriptions only narrow what the server already guarantees, so dropping them leaves a schema
# every result still conforms to, at a third less of the listing.
_OUTPUT_DROPS = UNSUPPORTED | {
    "description",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "format",
    "pattern",
    "minItems",
    "maxItems",
}


def lean_output(schema: Any, top: bool = True) -> Any:
    """An output schema as listed: types and structure, the top-level description, nothing else."""
    if isinstance(schema, dict):
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key in _OUTPUT_DROPS and not (top and key == "description"):
                continue
            if key in ("properties", "$defs") and isinstance(value, dict):
                out[key] = {name: lean_output(sub, False) for name, sub in value.items()}
            else:
                out[key] = lean_output(value, False)
        return out
    if isinstance(schema, list):
        return [lean_output(item, False) for item in schema]
    return schema
