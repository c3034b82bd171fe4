"""A JSON value that satisfies a JSON schema, built deterministically: the fake upstream's
structured outputs (``response_format`` json_schema) and tool-call arguments.

It covers what OpenAI's structured outputs and function schemas use, and what Pydantic
writes: ``type`` (one or a list), ``properties``/``required``/``additionalProperties``,
``items``/``prefixItems`` with ``minItems``/``maxItems``/``uniqueItems``, ``enum``,
``const``, ``anyOf``/``oneOf`` (the first branch that is not ``null``), ``allOf``
(merged), local ``$ref`` (``#/$defs/...``, recursive ones cut off by depth), string
``format``, ``minLength``/``maxLength``, and numeric bounds with ``multipleOf``. A
``pattern`` is not solved: the value is the usual one whether or not it matches.

Every optional property is filled in while the depth allows, so a developer sees the
whole shape of their schema; the same schema always gives the same value.
"""

from __future__ import annotations

import hashlib
import math
import uuid

# Below this depth optional properties and array items are left out, so a recursive
# schema ($ref to itself) ends; past the hard limit a required cycle gets null.
OPTIONAL_DEPTH = 6
HARD_DEPTH = 24

_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00Z",
    "duration": "P1D",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "https://example.com/",
}
_KEYWORD_TYPES = (
    (("properties", "required", "additionalProperties", "minProperties"), "object"),
    (("items", "prefixItems", "minItems", "maxItems", "uniqueItems"), "array"),
    (("minLength", "maxLength", "pattern", "format"), "string"),
    (("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"), "number"),
)


class SchemaError(ValueError):
    """A schema the fake cannot read (a $ref that points nowhere, a non-object schema)."""


def example_for(schema: dict | bool, *, root: dict | None = None) -> object:
    """A value valid under ``schema``; ``root`` is the document its ``$ref``s point into."""
    if not isinstance(schema, dict | bool):
        raise SchemaError("a JSON schema must be an object")
    return _Builder(root if root is not None else schema).value(schema, key="value", depth=0)


class _Builder:
    def __init__(self, root) -> None:
        self.root = root

    def resolve(self, schema: dict) -> dict:
        seen = 0
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
            seen += 1
            if seen > 32:
                raise SchemaError("a $ref chain does not end")
            ref = schema["$ref"]
            if not ref.startswith("#"):
                raise SchemaError(f"only local $ref are supported, not {ref!r}")
            target = self.root
            for part in [p for p in ref[1:].split("/") if p]:
                part = part.replace("~1", "/").replace("~0", "~")
                if isinstance(target, dict) and part in target:
                    target = target[part]
                elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                    target = target[int(part)]
                else:
                    raise SchemaError(f"$ref {ref!r} points nowhere in the schema")
            # Sibling keywords of a $ref (a description, a default) apply alongside it.
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **siblings} if isinstance(target, dict) else target
        return schema

    def value(self, schema, *, key: str, depth: int, variant: int = 0):
        if schema is True or schema == {}:
            return f"fake {key}" + (f" {variant + 1}" if variant else "")
        if schema is False or depth > HARD_DEPTH:
            return None
        schema = self.resolve(schema)
        if not isinstance(schema, dict):
            raise SchemaError("a JSON schema must be an object")
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            options = schema["enum"]
            return options[variant % len(options)]
        if isinstance(schema.get("allOf"), list):
            return self.value(self._merged(schema), key=key, depth=depth, variant=variant)
        for union in ("anyOf", "oneOf"):
            if isinstance(schema.get(union), list) and schema[union]:
                branch = self._branch(schema[union], depth)
                rest = {k: v for k, v in schema.items() if k != union}
                chosen = {**rest, **branch} if isinstance(branch, dict) else branch
                return self.value(chosen, key=key, depth=depth, variant=variant)
        kind = self._type(schema)
        if kind == "object":
            return self._object(schema, key=key, depth=depth, variant=variant)
        if kind == "array":
            return self._array(schema, key=key, depth=depth)
        if kind == "string":
            return _string(schema, key=key, variant=variant)
        if kind in ("integer", "number"):
            return _number(schema, integer=kind == "integer", variant=variant)
        if kind == "boolean":
            return variant % 2 == 0
        if kind == "null":
            return None
        return f"fake {key}"

    def _type(self, schema: dict) -> str:
        declared = schema.get("type")
        if isinstance(declared, list):
            concrete = [t for t in declared if t != "null"]
            return concrete[0] if concrete else "null"
        if isinstance(declared, str):
            return declared
        for keywords, kind in _KEYWORD_TYPES:
            if any(word in schema for word in keywords):
                return kind
        return "string"

    def _branch(self, branches: list, depth: int):
        """The first branch that is not null, preferring one that does not recurse when
        the optional depth is past (a tree's leaf instead of another node)."""
        candidates = [b for b in branches if self._type_of(b) != "null"] or branches
        if depth >= OPTIONAL_DEPTH:
            for branch in branches:
                if self._type_of(branch) == "null":
                    return branch
        return candidates[0]

    def _type_of(self, schema) -> str:
        if not isinstance(schema, dict):
            return "any"
        resolved = self.resolve(schema)
        return self._type(resolved) if isinstance(resolved, dict) else "any"

    def _merged(self, schema: dict) -> dict:
        merged: dict = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = self.resolve(part) if isinstance(part, dict) else {}
            if isinstance(part.get("allOf"), list):
                part = self._merged(part)
            for name, value in part.items():
                if name == "properties" and isinstance(value, dict):
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif name == "required" and isinstance(value, list):
                    merged["required"] = list(dict.fromkeys([*merged.get("required", []), *value]))
                else:
                    merged.setdefault(name, value)
        return merged

    def _object(self, schema: dict, *, key: str, depth: int, variant: int) -> dict:
        properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        result: dict = {}
        for name, subschema in properties.items():
            if name in required or depth < OPTIONAL_DEPTH:
                result[name] = self.value(subschema, key=name, depth=depth + 1, variant=variant)
        extra = schema.get("additionalProperties", True)
        for name in required:
            if name not in result:  # required but not described: any value will do
                sub = extra if isinstance(extra, dict) else True
                result[name] = self.value(sub, key=name, depth=depth + 1, variant=variant)
        minimum = schema.get("minProperties")
        if isinstance(minimum, int) and extra is not False:
            sub = extra if isinstance(extra, dict) else True
            number = 1
            while len(result) < minimum:
                name = f"{key}_{number}"
                if name not in result:
                    result[name] = self.value(sub, key=name, depth=depth + 1, variant=variant)
                number += 1
        return result

    def _array(self, schema: dict, *, key: str, depth: int) -> list:
        minimum = schema.get("minItems") if isinstance(schema.get("minItems"), int) else 0
        maximum = schema.get("maxItems") if isinstance(schema.get("maxItems"), int) else None
        prefix = schema.get("prefixItems")
        items = schema.get("items", True)
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, schema.get("additionalItems", True)
        prefix = prefix if isinstance(prefix, list) else []
        count = max(minimum, len(prefix), 1 if depth < OPTIONAL_DEPTH else 0)
        if items is False:
            count = min(count, len(prefix))
        if maximum is not None:
            count = min(count, maximum)
        name = key[:-1] if key.endswith("s") and len(key) > 3 else key
        values = []
        for index in range(count):
            subschema = prefix[index] if index < len(prefix) else items
            # Each item is another variant, so uniqueItems holds and a list reads as one.
            values.append(self.value(subschema, key=name, depth=depth + 1, variant=index))
        return values


def _string(schema: dict, *, key: str, variant: int) -> str:
    fmt = schema.get("format")
    if fmt == "uuid":
        digest = hashlib.sha256(f"{key}:{variant}".encode()).digest()[:16]
        return str(uuid.UUID(bytes=digest, version=4))
    if isinstance(fmt, str) and fmt in _FORMATS:
        text = _FORMATS[fmt]
        if variant and fmt in ("email", "idn-email"):
            text = f"user{variant + 1}@example.com"
        elif variant and fmt in ("uri", "url", "iri", "uri-reference"):
            text = f"https://example.com/{variant + 1}"
        return text
    text = f"fake {key}".replace("_", " ") + (f" {variant + 1}" if variant else "")
    minimum = schema.get("minLength") if isinstance(schema.get("minLength"), int) else 0
    maximum = schema.get("maxLength") if isinstance(schema.get("maxLength"), int) else None
    if len(text) < minimum:
        text += "x" * (minimum - len(text))
    if maximum is not None and len(text) > maximum:
        text = text[:maximum]
        if variant and maximum:
            # Keep the variants apart when the limit cuts their suffixes off.
            text = text[:-1] + "abcdefghijklmnopqrstuvwxyz0123456789"[variant % 36]
    return text


def _bounds(schema: dict) -> tuple[float | None, float | None, bool, bool]:
    """(lower, upper, lower exclusive, upper exclusive) in either draft's spelling."""
    low, high = schema.get("minimum"), schema.get("maximum")
    low_open = high_open = False
    exclusive_low, exclusive_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(exclusive_low, bool):  # draft 4: a flag on minimum
        low_open = exclusive_low
    elif isinstance(exclusive_low, int | float) and (low is None or exclusive_low >= low):
        low, low_open = exclusive_low, True
    if isinstance(exclusive_high, bool):
        high_open = exclusive_high
    elif isinstance(exclusive_high, int | float) and (high is None or exclusive_high <= high):
        high, high_open = exclusive_high, True
    low = low if isinstance(low, int | float) and not isinstance(low, bool) else None
    high = high if isinstance(high, int | float) and not isinstance(high, bool) else None
    return low, high, low_open, high_open


def _is_multiple(value: float, step: float) -> bool:
    # The exact test validators apply (a float quotient must be whole), so a value that
    # passes here passes there.
    quotient = value / step
    return math.isfinite(quotient) and int(quotient) == quotient


def _number(schema: dict, *, integer: bool, variant: int) -> int | float:
    low, high, low_open, high_open = _bounds(schema)
    step = schema.get("multipleOf")
    if isinstance(step, bool) or not isinstance(step, int | float) or step <= 0:
        step = None

    def fits(value: float) -> bool:
        if low is not None and (value < low or (low_open and value == low)):
            return False
        if high is not None and (value > high or (high_open and value == high)):
            return False
        if integer and value != int(value):
            return False
        return step is None or _is_multiple(value, step)

    wanted = (1 if integer else 1.5) + variant
    start = min(
        max(wanted, low if low is not None else wanted), high if high is not None else wanted
    )
    candidates: list[float] = [start]
    if step is not None:
        # Multiples of the step nearest the wanted value, each also rounded (0.1 * 3 is
        # 0.30000000000000004), outwards.
        first = round(start / step)
        for distance in range(0, 400):
            for k in (first + distance, first - distance):
                candidates += [k * step, round(k * step, 10), float(round(k * step))]
    else:
        if integer:
            candidates += [math.ceil(start), math.floor(start)]
        if low is not None and high is not None:
            candidates.append((low + high) / 2)
        if low is not None:
            candidates += [low + 1, math.floor(low) + 1]
        if high is not None:
            candidates += [high - 1, math.ceil(high) - 1]
    for value in candidates:
        if fits(value):
            return int(value) if integer else value
    return int(start) if integer else start  # contradictory bounds: nothing fits
