"""The fake upstream's JSON documents validate against the schema they were built from."""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import Literal

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from proxy.providers.fake_schema import SchemaError, example_for


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    street: str
    postcode: str = Field(min_length=5, max_length=5)
    country: Literal["FR", "DE"]


class TreeNode(BaseModel):
    label: str
    children: list[TreeNode] = []


class Order(BaseModel):
    id: uuid.UUID
    placed_at: datetime.datetime
    quantity: int = Field(ge=18, le=30, multiple_of=4)
    share: float = Field(gt=0, lt=1)
    price: float = Field(ge=0.25, multiple_of=0.1)
    colour: Colour
    shipping: Address
    billing: Address | None = None
    tags: list[str] = Field(min_length=3, max_length=5)
    notes: dict[str, int] = {}
    tree: TreeNode
    email: str = Field(json_schema_extra={"format": "email"})


STRICT_OBJECT = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "maybe": {"type": ["string", "null"]},
        "codes": {
            "type": "array",
            "items": {"type": "integer"},
            "uniqueItems": True,
            "minItems": 4,
        },
        "nested": {
            "type": "object",
            "properties": {"flag": {"type": "boolean"}, "level": {"enum": [3, 5, 8]}},
            "required": ["flag", "level"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "maybe", "codes", "nested"],
    "additionalProperties": False,
}

SCHEMAS = [
    STRICT_OBJECT,
    {"type": "string", "minLength": 40},
    {"type": "string", "maxLength": 2},
    {"type": "integer", "exclusiveMinimum": 7, "exclusiveMaximum": 9},
    {"type": "number", "minimum": -3, "maximum": -2},
    {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.001},
    {"type": "integer", "multipleOf": 7, "minimum": 100},
    {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
    {"type": "array", "maxItems": 0},
    {"type": "object", "minProperties": 3, "additionalProperties": {"type": "number"}},
    {"allOf": [{"properties": {"a": {"type": "string"}}, "required": ["a"]}, {"required": ["b"]}]},
    {"oneOf": [{"type": "null"}, {"type": "object", "properties": {"x": {"const": 4}}}]},
    {"$defs": {"leaf": {"type": "string", "format": "date"}}, "$ref": "#/$defs/leaf"},
    {"type": "object", "properties": {"when": {"type": "string", "format": "date-time"}}},
    {},
    True,
]


def assert_valid(document, schema) -> None:
    jsonschema.validate(document, schema, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
def test_document_validates_against_its_schema(schema):
    assert_valid(example_for(schema), schema)


def _bounded(kind: str):
    numbers = st.integers(-50, 50) if kind == "integer" else st.floats(-50, 50, width=32)
    return st.builds(
        lambda low, width, step, open_low: {
            "type": kind,
            ("exclusiveMinimum" if open_low else "minimum"): low,
            "maximum": low + width + (step or 1) * 2,
            **({"multipleOf": step} if step else {}),
        },
        numbers,
        st.integers(0, 20),
        st.sampled_from([None, 1, 2, 3, 5] if kind == "integer" else [None, 0.5, 0.25, 2]),
        st.booleans(),
    )


LEAVES = st.one_of(
    st.builds(
        lambda low, extra: {"type": "string", "minLength": low, "maxLength": low + extra},
        st.integers(0, 30),
        st.integers(0, 30),
    ),
    st.sampled_from(["date", "date-time", "email", "uuid", "ipv4", "uri"]).map(
        lambda fmt: {"type": "string", "format": fmt}
    ),
    _bounded("integer"),
    _bounded("number"),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.lists(st.integers(0, 9) | st.text(max_size=5), min_size=1, max_size=4, unique=True).map(
        lambda options: {"enum": options}
    ),
)


def _containers(children):
    names = st.text("abcdefghij_", min_size=1, max_size=8)
    objects = st.builds(
        lambda props, closed, data: {
            "type": "object",
            "properties": props,
            "required": data.draw(st.lists(st.sampled_from(sorted(props)), unique=True))
            if props
            else [],
            **({"additionalProperties": False} if closed else {}),
        },
        st.dictionaries(names, children, max_size=4),
        st.booleans(),
        st.data(),
    )
    arrays = st.builds(
        lambda items, low, extra: {
            "type": "array",
            "items": items,
            "minItems": low,
            "maxItems": low + extra,
        },
        children,
        st.integers(0, 3),
        st.integers(0, 3),
    )
    unions = st.lists(children, min_size=1, max_size=3).map(
        lambda branches: {"anyOf": [*branches, {"type": "null"}]}
    )
    return objects | arrays | unions


@settings(max_examples=300, deadline=None)
@given(st.recursive(LEAVES, _containers, max_leaves=12))
def test_any_schema_of_the_supported_keywords_gets_a_valid_document(schema):
    assert_valid(example_for(schema), schema)


@pytest.mark.parametrize("model", [Order, Address, TreeNode])
def test_pydantic_models_accept_the_document_built_from_their_schema(model):
    schema = model.model_json_schema()
    document = example_for(schema)
    assert_valid(document, schema)
    model.model_validate(document)


def test_every_property_is_filled_in_so_the_shape_shows():
    document = example_for(Order.model_json_schema())
    assert set(document) == set(Order.model_fields)
    assert document["billing"] is not None  # an optional object shows its fields too
    assert len(document["tags"]) == len(set(document["tags"])) == 3


def test_recursive_schema_ends():
    document = example_for(TreeNode.model_json_schema())
    depth = 0
    while document.get("children"):
        document = document["children"][0]
        depth += 1
    assert 1 <= depth <= 10


def test_same_schema_gives_the_same_document():
    assert example_for(Order.model_json_schema()) == example_for(Order.model_json_schema())


@pytest.mark.parametrize(
    "schema",
    [{"$ref": "#/$defs/missing"}, {"$ref": "https://example.com/schema.json"}, "not a schema"],
)
def test_unreadable_schema_is_refused(schema):
    with pytest.raises(SchemaError):
        example_for(schema)
