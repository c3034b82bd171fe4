"""What a request says about who and what its spend is for: OpenAI's ``user`` field, its
``metadata`` object and the ``x-synthlang-tags`` header. Recorded on the usage event, so an
organization can charge back per end user, feature or team.

``user`` is passed upstream; ``metadata`` only with ``store: true``, the one case OpenAI
takes it ("The 'metadata' parameter is only allowed when 'store' is enabled"); the header
never. Bad values are the client's error (400), named by the field.
"""

from __future__ import annotations

import re

from common.errors import InvalidRequest

# OpenAI's limits on ``metadata``: 16 pairs, keys up to 64 characters, string values up to 512.
METADATA_MAX_PAIRS = 16
METADATA_KEY_MAX = 64
METADATA_VALUE_MAX = 512
END_USER_MAX = 256
TAGS_MAX = 10
_TAG = re.compile(r"^[A-Za-z0-9_.:/@=+\-]{1,64}$")


def end_user_from(body: dict) -> str:
    value = body.get("user")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRequest("'user' must be a string.", param="user")
    if len(value) > END_USER_MAX:
        raise InvalidRequest(f"'user' is longer than {END_USER_MAX} characters.", param="user")
    return value


def metadata_from(body: dict) -> dict[str, str]:
    value = body.get("metadata")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("'metadata' must be an object.", param="metadata")
    if len(value) > METADATA_MAX_PAIRS:
        raise InvalidRequest(
            f"'metadata' may hold at most {METADATA_MAX_PAIRS} pairs.", param="metadata"
        )
    for key, item in value.items():
        if len(key) > METADATA_KEY_MAX:
            raise InvalidRequest(
                f"metadata keys are at most {METADATA_KEY_MAX} characters.", param="metadata"
            )
        if not isinstance(item, str) or len(item) > METADATA_VALUE_MAX:
            raise InvalidRequest(
                f"metadata values must be strings of at most {METADATA_VALUE_MAX} characters.",
                param="metadata",
            )
    return dict(value)


def without_recorded_metadata(body: dict) -> dict:
    """The body for the upstream: ``metadata`` is the proxy's to record unless the client
    asks OpenAI to store the completion, which is when OpenAI accepts it."""
    if "metadata" in body and body.get("store") is not True:
        return {name: value for name, value in body.items() if name != "metadata"}
    return body


def tags_from(header: str) -> tuple[str, ...]:
    """``x-synthlang-tags: team-search, feature:summary``: distinct tags, in order."""
    tags: list[str] = []
    for part in (header or "").split(","):
        tag = part.strip()
        if not tag:
            continue
        if not _TAG.match(tag):
            raise InvalidRequest(
                "x-synthlang-tags takes comma-separated tags of 1 to 64 letters, digits and "
                "_ . : / @ = + -",
                param="x-synthlang-tags",
            )
        if tag not in tags:
            tags.append(tag)
    if len(tags) > TAGS_MAX:
        raise InvalidRequest(
            f"x-synthlang-tags takes at most {TAGS_MAX} tags.", param="x-synthlang-tags"
        )
    return tuple(tags)
