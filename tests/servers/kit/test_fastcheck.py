"""The compiled contract check agrees with jsonschema, and errors still come from jsonschema."""

from __future__ import annotations

import random
import string
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

import schemas
from servers.kit import ToolError
from servers.kit.contract import ToolContract
from servers.kit.fastcheck import Unsupported, compile_check

INSTANCES_PER_SCHEMA = 40


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    choices: list[Any] = [None, True, False, 0, -3, 2.5, 4.0, "", "x", "wizard"]
    if depth < 2:
        choices += [[], {}, [_random_value(rng, depth + 1)], {"k": _random_value(rng, depth + 1)}]
    return rng.choice(choices)


class _Generator:
    """Values shaped by a schema, each with a fair chance of breaking one of its rules."""

    def __init__(self, root: dict[str, Any], rng: random.Random) -> None:
        self.defs = root.get("$defs", {})
        self.rng = rng

    def value(self, schema: Any, depth: int = 0) -> Any:
        rng = self.rng
        if not isinstance(schema, dict) or depth > 6 or rng.random() < 0.06:
            return _random_value(rng)
        if "$ref" in schema:
            return self.value(self.defs.get(schema["$ref"].removeprefix("#/$defs/"), {}), depth + 1)
        for keyword in ("oneOf", "anyOf", "allOf"):
            if keyword in schema:
                return self.value(rng.choice(schema[keyword]), depth + 1)
        if "const" in schema:
            return schema["const"] if rng.random() < 0.9 else "other"
        if "enum" in schema:
            return rng.choice(schema["enum"]) if rng.random() < 0.9 else "not-listed"
        kind = schema.get("type", rng.choice(["object", "string", "integer"]))
        if isinstance(kind, list):
            kind = rng.choice(kind)
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            low = schema.get("minItems", 0)
            size = max(low + rng.randint(-1, 3), 0)
            return [self.value(schema.get("items", {}), depth + 1) for _ in range(size)]
        if kind == "string":
            low, high = schema.get("minLength", 0), schema.get("maxLength", 12)
            size = max(rng.randint(low - 1, min(max(high, low) + 1, low + 24)), 0)  # near both limits, never huge
            return "".join(rng.choice(string.ascii_lowercase) for _ in range(size))
        if kind in ("integer", "number"):
            low = schema.get("minimum", schema.get("exclusiveMinimum", -5))
            high = schema.get("maximum", schema.get("exclusiveMaximum", low + 10))
            number: Any = rng.randint(int(low) - 1, int(high) + 1)
            roll = rng.random()
            if roll < 0.15:
                number = float(number)  # an integer-valued float is an integer to jsonschema
            elif roll < 0.25 and kind == "number":
                number += 0.5
            elif roll < 0.3:
                number = bool(number % 2)  # never a number
            return number
        if kind == "boolean":
            return rng.random() < 0.5
        return None

    def object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        rng = self.rng
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        out: dict[str, Any] = {}
        for name, sub in properties.items():
            wanted = rng.random() < (0.93 if name in required else 0.4)
            if wanted:
                out[name] = self.value(sub, depth + 1)
        if rng.random() < 0.08:
            out["unexpected_field"] = _random_value(rng)
        return out


def _schemas() -> list[tuple[str, dict[str, Any], bool]]:
    found = []
    for domain in schemas.domains():
        for tool in schemas.load(domain)["tools"]:
            found.append((f"{domain}-{tool['name']}-input", tool["inputSchema"], True))
            if "outputSchema" in tool:
                found.append((f"{domain}-{tool['name']}-output", tool["outputSchema"], False))
    return found


def test_compiled_check_gives_jsonschemas_verdict_on_every_contract() -> None:
    compiled = 0
    both_verdicts = 0
    for name, schema, formats in _schemas():
        try:
            check = compile_check(schema, assert_formats=formats)
        except Unsupported:
            continue  # the contract falls back to jsonschema alone
        compiled += 1
        validator = Draft202012Validator(schema, format_checker=FormatChecker() if formats else None)
        generator = _Generator(schema, random.Random(name))
        verdicts = set()
        for _ in range(INSTANCES_PER_SCHEMA):
            instance = generator.value(schema)
            expected = validator.is_valid(instance)
            verdicts.add(expected)
            assert check(instance) is expected, f"{name}: {instance!r}"
        both_verdicts += verdicts == {True, False}
    assert compiled >= 0.8 * len(_schemas())
    assert both_verdicts >= 0.8 * compiled  # the generated values really exercise both answers
    assert ToolContract.from_dict(schemas.tool("models", "chat")).fast_path == (True, True)


@pytest.mark.parametrize(
    ("schema", "value", "valid"),
    [
        ({"type": "integer"}, 3.0, True),
        ({"type": "integer"}, 3.5, False),
        ({"type": "integer"}, True, False),
        ({"type": "number"}, False, False),
        ({"type": ["string", "null"]}, None, True),
        ({"minimum": 1}, "zero", True),  # bounds ignore other types
        ({"exclusiveMaximum": 2}, 2, False),
        ({"enum": ["a", None]}, None, True),
        ({"enum": ["a"]}, ["a"], False),
        ({"pattern": "^a+$"}, "aaa", True),
        ({"pattern": "^a+$"}, "ab", False),
        ({"properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "integer"}}, {"b": 1}, True),
        ({"properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "integer"}}, {"b": "x"}, False),
        ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 2, False),  # both match: not exactly one
        ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, 2, True),
        ({"not": {"type": "string"}}, 1, True),
        ({"items": {"type": "string"}, "minItems": 1}, [], False),
        ({"items": {"type": "string"}, "maxItems": 1}, ["a", "b"], False),
        (
            {"$defs": {"n": {"type": "object", "properties": {"next": {"$ref": "#/$defs/n"}}}}, "$ref": "#/$defs/n"},
            {"next": {"next": {"next": 1}}},
            False,
        ),
        (False, {}, False),
    ],
)
def test_compiled_check_follows_jsonschema_rules(schema: Any, value: Any, valid: bool) -> None:
    assert Draft202012Validator(schema).is_valid(value) is valid  # the reference agrees
    assert compile_check(schema)(value) is valid


@pytest.mark.parametrize(
    "schema",
    [
        {"uniqueItems": True},
        {"enum": [1, 2]},  # numbers and bools compare by subtler rules
        {"$ref": "https://example.com/schema"},
        {"type": "string", "format": "date"},
        {"$schema": "http://json-schema.org/draft-07/schema#"},
        {"prefixItems": [{"type": "string"}]},
    ],
)
def test_keywords_without_a_compiled_rule_leave_the_schema_to_jsonschema(schema: dict[str, Any]) -> None:
    with pytest.raises(Unsupported):
        compile_check(schema, assert_formats=True)


def test_format_is_an_annotation_when_formats_are_not_asserted() -> None:
    assert compile_check({"type": "string", "format": "date"}, assert_formats=False)("not a date") is True


def test_invalid_chat_arguments_are_still_refused_naming_the_field() -> None:
    contract = ToolContract.from_dict(schemas.tool("models", "chat"))
    messages = [{"role": "user", "content": "hi"}] * 30 + [{"role": "wizard", "content": "x"}]
    with pytest.raises(ToolError) as caught:
        contract.validate_input({"model": "main", "messages": messages})
    assert caught.value.field == "messages.30.role"
    assert caught.value.message.startswith("invalid arguments: field 'messages.30.role': 'wizard' is not one of")
    with pytest.raises(ToolError) as caught:
        contract.validate_input({"model": "main", "messages": messages[:1], "temperature": 2.5})
    assert caught.value.field == "temperature" and "(rule: maximum)" in caught.value.message
    with pytest.raises(ToolError) as caught:
        contract.validate_input({"messages": messages[:1]})
    assert caught.value.field == "model" and "missing required field 'model'" in caught.value.message
    contract.validate_input({"model": "main", "messages": messages[:30], "temperature": 1})


def test_a_chat_answer_outside_the_output_schema_is_still_described() -> None:
    contract = ToolContract.from_dict(schemas.tool("models", "chat"))
    answer = {"id": "c", "object": "chat.completion", "model": "m", "choices": [], "toolmux": {}}
    assert contract.output_problem(answer) is None
    problem = contract.output_problem({**answer, "choices": [{"index": "zero"}]})
    assert problem is not None and "choices.0.index" in problem
